package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/migrate"
	"github.com/jetsource/jetsource/subjects"
)

// migrateFlags are the flags migrate and sync share.
type migrateFlags struct {
	mapping    string
	source     string
	onError    string
	noProgress bool
	index      string
	noIndex    bool
}

func (f *migrateFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.mapping, "mapping", "", "mapping file (YAML): source, tables, subject templates, data columns (required)")
	fl.StringVar(&f.source, "source", "", "read the rows from this source instead of the mapping's (sqlite:PATH, postgres://..., csv:DIR)")
	fl.StringVar(&f.onError, "on-error", onErrorAbort, "what a bad row does: abort (check every row first, write nothing if one is bad) or skip (write the good rows, report the bad ones)")
	fl.BoolVar(&f.noProgress, "no-progress", false, "do not report progress on standard error")
	fl.StringVar(&f.index, "index", "", "directory of the surface index files (default: jetsource/surface-SERVER in the user's cache directory)")
	fl.BoolVar(&f.noIndex, "no-index", false, "read the surface of each table from the stream instead of a local index")
	_ = cmd.MarkFlagRequired("mapping")
}

const mappingHelp = `The mapping file (YAML; relative paths resolve against its directory):

  source: sqlite:./shop.db          # or postgres://user@host/db, or csv:./dir
  actor: migrate                    # actor of the events (default migrate)
  tables:
    - table: customers              # a table, or a CSV file name without .csv
      subject: customers.{id}       # key columns in braces, escaped as subject tokens
      data: [name, email]           # columns that become the event data (default: all but the key)
      type: imported                # event name of a first import (default imported)
      transforms:                   # optional, per column, applied in order
        email: [trim, lower]

Transforms: trim, lower, upper, string, int, number, bool, json, base64,
omit_empty. A row's data is a JSON object of its data columns; NULL columns
(and empty CSV fields) are left out. Key values are escaped with the subject
escaping of "jetsource append" (ann@x.org becomes ann=40x=2Eorg).

Each row's aggregate is the subject template (customers.42); its events are
customers.42.imported (the whole row), customers.42.changed (a JSON merge
patch of what changed) and customers.42.deleted (sync only). Every event
carries the extension statehash, the hash of the aggregate's state after
it; event ids derive from the table, the key, the change and that hash.

--on-error abort (default) reads and checks every row before writing
anything (what to write waits in a temporary file): a row with a NULL key
or a value that does not map to JSON (a BLOB, say) is reported with its
table and row, and nothing is written. A source that
drops mid-run or a failed write stops the run; the events written are
whole, and running the command again resumes (rows already stored count
as unchanged).

The surface of each table (the sequence, statehash and state of each
aggregate's latest event) is kept in a local index file,
surface-STREAM-FILTER.idx in --index (default: jetsource/surface-SERVER in
the user's cache directory, $XDG_CACHE_HOME or the system's); each run
reads only the events stored since the last one. It is rebuilt from the
stream when missing or damaged, when it is of another stream (one created
again under the same name), or when messages were removed from the stream
since; an aggregate that moved meanwhile is folded afresh before its change
is written. Deleting it is always safe; --no-index reads the surface from
the stream instead.

With --output json the summary is one object:
{"new":N,"changed":N,"deleted":N,"unchanged":N} (and "bad":N with
--on-error skip).`

func (m *Main) newMigrateCmd(g *globals) *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate --mapping FILE",
		Short: "Turn the rows of a CRUD database or CSV files into events",
		Long: `migrate reads the tables of a mapping file from SQLite, PostgreSQL or CSV
files and appends one event per row through the pipelined publisher, with
a progress bar. Rows are streamed: on a table without events memory stays
constant however many rows it has.

It is idempotent and resumable: each row is compared with the surface of
its subject (the latest event of the aggregate), so a re-run, even long
after the stream's duplicate window, stores nothing for rows already
imported; a row that changed since gets a changed event. migrate never
writes deletions: "jetsource sync" does.

` + mappingHelp,
		Example: `  jetsource migrate --mapping testdata/migrate/mapping.yaml
  jetsource migrate --mapping mapping.yaml --source postgres://app@db/shop -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return m.runMigrate(cmd.Context(), g, f, migrate.Migrate)
		},
	}
	f.register(cmd)
	return cmd
}

// runMigrate is the body of migrate and sync.
func (m *Main) runMigrate(ctx context.Context, g *globals, f migrateFlags, mode migrate.Mode) error {
	if f.onError != onErrorAbort && f.onError != onErrorSkip {
		return usagef("--on-error must be %s or %s, not %q", onErrorAbort, onErrorSkip, f.onError)
	}
	mp, err := migrate.LoadMapping(f.mapping)
	if err != nil {
		return err
	}
	srcDir := mp.Dir
	if f.source != "" {
		mp.Source, srcDir = f.source, "." // relative to the working directory
	}
	src, err := migrate.Open(ctx, mp.Source, srcDir)
	if err != nil {
		return err
	}
	defer src.Close()
	c, err := m.connect(ctx, g)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := m.checkCaptured(ctx, c, mp); err != nil {
		return err
	}
	js, err := jetstream.New(c.nc, jetstream.WithDefaultTimeout(g.timeout))
	if err != nil {
		return err
	}
	var prog *progress
	opts := []migrate.Option{
		migrate.WithJetStream(js), migrate.WithTimeout(g.timeout), migrate.WithValidation(f.onError == onErrorAbort),
		migrate.WithProgress(func(n int64) { prog.Add(n) }),
		migrate.WithBadRowHandler(func(re *migrate.RowError) { prog.Println(re.Error()) }),
	}
	if f.onError == onErrorSkip {
		opts = append(opts, migrate.WithSkipBadRows())
	}
	if !f.noIndex {
		dir := f.index
		if dir == "" {
			if dir, err = m.defaultSurfaceIndex(g.server); err != nil {
				return err
			}
		}
		opts = append(opts, migrate.WithIndex(dir, func(path, what string) {
			prog.Println(fmt.Sprintf("surface index %s %s (delete it to drop it; --no-index to go without)", path, what))
		}))
	}
	r, err := migrate.NewRunner(c.store, mp, src, opts...)
	if err != nil {
		return err
	}
	if err := r.Check(ctx); err != nil {
		return err
	}
	total := int64(-1)
	if !f.noProgress {
		// Counting the rows costs a read of each table: only for the bar.
		if total, err = r.Total(ctx); err != nil {
			return err
		}
	}
	prog = newProgress(m.Stderr, total, mode.String(), withProgressUnit("rows"), withProgressDisabled(f.noProgress))
	counts, err := r.Run(ctx, mode)
	prog.Finish()
	if errors.Is(err, migrate.ErrBadRows) {
		return exitCodeError{code: exitError, err: fmt.Errorf("%w (--on-error=abort)", err)}
	}
	m.printCounts(g, counts)
	if err != nil {
		return exitCodeError{code: exitError, err: err}
	}
	if counts.Bad > 0 {
		return exitCodeError{code: exitError, err: fmt.Errorf("%d bad row(s) skipped (--on-error=skip)", counts.Bad)}
	}
	return nil
}

// defaultSurfaceIndex is the directory of the surface index files when
// --index names none: jetsource/surface-<server> in the user's cache
// directory ($XDG_CACHE_HOME, else the system's, see os.UserCacheDir),
// as the audit index. The server is part of the name so that two servers
// with streams of one name do not share an index.
func (m *Main) defaultSurfaceIndex(server string) (string, error) {
	p, err := m.defaultAuditIndex(server, "x")
	if err != nil {
		return "", fmt.Errorf("no cache directory for the surface index (%w): give --index or --no-index", err)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "audit-x-"), ".db")
	return filepath.Join(filepath.Dir(p), "surface-"+host), nil
}

// checkCaptured makes sure the stream captures the subjects of every
// table, before a row is read.
func (m *Main) checkCaptured(ctx context.Context, c *client, mp *migrate.Mapping) error {
	ch, err := m.newEventChecker(ctx, c)
	if err != nil {
		return err
	}
	if ch.capture == nil {
		return nil
	}
	var errs []error
	for _, t := range mp.Tables {
		tf := t.Filter()
		covered := false
		for _, f := range ch.capture {
			if f.Covers(tf) {
				covered = true
			}
		}
		if !covered {
			errs = append(errs, fmt.Errorf("%w: table %s: the stream %s does not capture %s (its subjects: %v)", jetsource.ErrInvalidSubject, t.Table, ch.stream, tf, filterStrings(ch.capture)))
		}
	}
	return errors.Join(errs...)
}

func filterStrings(fs []subjects.Filter) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

func (m *Main) printCounts(g *globals, c migrate.Counts) {
	if g.output == "json" {
		m.writeJSON(c)
		return
	}
	fmt.Fprintf(m.Stdout, "new        %d\nchanged    %d\ndeleted    %d\nunchanged  %d\n", c.New, c.Changed, c.Deleted, c.Unchanged)
	if c.Bad > 0 {
		fmt.Fprintf(m.Stdout, "bad        %d\n", c.Bad)
	}
}
