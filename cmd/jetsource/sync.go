package main

import (
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource/migrate"
)

func (m *Main) newSyncCmd(g *globals) *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "sync --mapping FILE",
		Short: "Append what changed in a CRUD database since the last migrate or sync",
		Long: `sync runs the mapping of "jetsource migrate" again against the live upstream
and appends only the differences, so a system that overwrites its rows
becomes a versioned history:

  - a row whose subject has no event yet: imported (the whole row);
  - a row that differs from its subject's current state (the events of
    its aggregate folded by JSON merge patch, other writers' events
    included): changed, with the JSON merge patch from that state to the
    row (a column that became NULL is null in the patch);
  - a subject of the surface whose row no longer exists: deleted;
  - an unchanged row: nothing.

Re-running with no upstream change writes nothing. Each append is
conditional on the aggregate's last sequence as read: when another writer
moved the aggregate meanwhile, its state is folded afresh and the change
computed again (a second conflict makes sync fail; run it again), never a
stale patch. sync takes the surface of each table from its local index
(see below), reading only the events stored since the last run, and holds
one small entry per aggregate.

` + mappingHelp,
		Example: `  jetsource sync --mapping testdata/migrate/mapping.yaml
  jetsource sync --mapping mapping.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return m.runMigrate(cmd.Context(), g, f, migrate.Sync)
		},
	}
	f.register(cmd)
	return cmd
}
