package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource/projections"
)

func (m *Main) newProjectionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Show the status of projections and rebuild them",
		Long: `projections reports on and rebuilds the read models configured in the
projections section of a configuration file (see "jetsource project --help").`,
	}
	cmd.AddCommand(m.newProjectionsStatusCmd(g), m.newProjectionsRebuildCmd(g))
	return cmd
}

func (m *Main) newProjectionsStatusCmd(g *globals) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "status [--config FILE]",
		Short: "Print each projection's checkpoint, lag and last error",
		Long: `status prints, for every configured projection, its read model, the
checkpoint (the stream sequence of the last event applied), the head (the
last matching sequence in the stream), the lag between the two (0: caught
up) and the last error a runner recorded in the read model. With --output
json each projection is one JSON line.

A relative database path is relative to the configuration file. A database
that does not exist is an error (status creates nothing).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, set, err := m.openConfiguredProjections(cmd, g, configFile, true)
			if err != nil {
				return err
			}
			defer c.Close()
			defer set.Close()
			var sts []projections.Status
			for _, p := range set.projs {
				st, err := projections.StatusOf(ctx, c.store, p)
				if err != nil {
					return fmt.Errorf("projection %s: %w", p.Name(), err)
				}
				sts = append(sts, st)
			}
			if g.output == "json" {
				for _, st := range sts {
					m.writeJSON(st)
				}
				return nil
			}
			tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREAD MODEL\tGEN\tCHECKPOINT\tHEAD\tLAG\tUPDATED\tLAST ERROR")
			for _, st := range sts {
				lastErr := "-"
				if st.LastError != "" {
					lastErr = fmt.Sprintf("%s (at %s, event %d)", oneLine(st.LastError), st.LastErrorAt.Format(time.RFC3339), st.ErrorSequence)
				}
				updated := "-"
				if !st.Updated.IsZero() {
					updated = st.Updated.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", st.Name, st.Location, st.Generation, st.Checkpoint, st.Head, st.Lag, updated, lastErr)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "YAML configuration file with a projections section (required)")
	return cmd
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// rebuildResult is the JSON output of "projections rebuild".
type rebuildResult struct {
	Name       string  `json:"name"`
	Events     uint64  `json:"events"`
	Checkpoint uint64  `json:"checkpoint"`
	Generation uint64  `json:"generation"`
	Skipped    uint64  `json:"skipped"`
	ReadModel  string  `json:"read_model"`
	Seconds    float64 `json:"seconds"`
}

func (m *Main) newProjectionsRebuildCmd(g *globals) *cobra.Command {
	var configFile string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "rebuild NAME [--config FILE]",
		Short: "Rebuild a projection's read model from the whole stream and swap it in",
		Long: `rebuild builds the projection's read model afresh from every matching event
(new tables in the SQLite file, or a new KV bucket), then swaps it in: in one
SQL transaction the old tables are dropped and the new ones renamed, or the
KV pointer (bucket jetsource_projections, key NAME) is moved to the new
bucket and the old bucket deleted. Readers see the old read model until the
swap and the new one after it. Runners of the projection (jetsource project
or serve) may keep running; they continue from the new checkpoint.

Progress goes to standard error: a bar with the rate and the time left on a
terminal, a plain line every second otherwise. Progress is measured in
stream positions up to the last matching event when the rebuild began.

A relative database path is relative to the configuration file; the
database must exist (serve or project creates it), so that a wrong path is
an error instead of a new read model in an unexpected place.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, set, err := m.openConfiguredProjections(cmd, g, configFile, true)
			if err != nil {
				return err
			}
			defer c.Close()
			defer set.Close()
			p, err := set.byName(args[0])
			if err != nil {
				return err
			}
			var bar *progress
			var shown uint64
			report := func(pr projections.Progress) {
				if bar == nil {
					bar = newProgress(m.Stderr, int64(pr.Target), "rebuild "+p.Name(), withProgressUnit("events"), withProgressDisabled(quiet))
				}
				if pr.Checkpoint > shown {
					bar.Add(int64(pr.Checkpoint - shown))
					shown = pr.Checkpoint
				}
			}
			start := time.Now()
			final, err := projections.Rebuild(ctx, c.store, p, projections.WithProgress(report, 100*time.Millisecond),
				projections.WithRebuildLogger(m.logger(g.logLvl, "text")))
			if bar != nil {
				bar.Finish()
			}
			if err != nil {
				return err
			}
			info, err := p.Info(ctx)
			if err != nil {
				return err
			}
			res := rebuildResult{Name: p.Name(), Events: final.Applied, Checkpoint: final.Checkpoint, Generation: info.Generation, Skipped: final.Skipped, ReadModel: info.Location, Seconds: time.Since(start).Seconds()}
			if g.output == "json" {
				m.writeJSON(res)
				return nil
			}
			fmt.Fprintf(m.Stdout, "rebuilt %s: %d events up to sequence %d in %.1fs; generation %d is live (%s)\n",
				res.Name, res.Events, res.Checkpoint, res.Seconds, res.Generation, res.ReadModel)
			if res.Skipped > 0 {
				fmt.Fprintf(m.Stdout, "skipped %d events that are malformed or were refused (see the warnings above)\n", res.Skipped)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "YAML configuration file with a projections section (required)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress report")
	return cmd
}

// openConfiguredProjections loads the configuration, connects, and opens
// its projections; the caller closes both.
func (m *Main) openConfiguredProjections(cmd *cobra.Command, g *globals, configFile string, mustExist bool) (*client, *projectionSet, error) {
	cfg, err := m.projectionConfig(cmd, g, configFile)
	if err != nil {
		return nil, nil, err
	}
	c, err := m.connect(cmd.Context(), g)
	if err != nil {
		return nil, nil, err
	}
	js, _ := jetstream.New(c.nc, jetstream.WithDefaultTimeout(g.timeout))
	set, err := openProjections(cmd.Context(), cfg, js, mustExist)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, set, nil
}
