package main

import (
	"github.com/spf13/cobra"
)

func (m *Main) newSurfaceCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "surface FILTER",
		Short: "Print the latest event of every subject matching a filter",
		Long: `surface prints, for every subject matching FILTER, its latest event, in
sequence order: the current surface of a topic such as users.*.profile or
users.A.>. The server answers from its index of the last message per subject
(a consumer delivering the last message per subject), so the cost grows with
the number of matching subjects, not with the stream.

With --output json each event is one CloudEvents JSON object per line, as in
"jetsource events".`,
		Example: `  jetsource surface 'users.*.renamed'
  jetsource surface 'users.A.>' -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs, err := parseFilters(args)
			if err != nil {
				return err
			}
			c, err := m.connect(cmd.Context(), g)
			if err != nil {
				return err
			}
			defer c.Close()
			p := m.newPrinter(g)
			for e, err := range c.store.Latest(cmd.Context(), fs[0]) {
				if err != nil {
					p.flush()
					return err
				}
				if err := p.print(e); err != nil {
					return err
				}
			}
			return p.flush()
		},
	}
}
