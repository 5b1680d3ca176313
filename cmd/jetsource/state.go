package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

// parseAt takes a stream sequence or an RFC 3339 time.
func parseStateAt(s string) (state.Option, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return state.AtSequence(n), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, usagef("--at %q is neither a stream sequence (like 42) nor an RFC 3339 time (like 2026-01-02T15:04:05Z)", s)
	}
	return state.AtTime(t), nil
}

func (m *Main) newStateCmd(g *globals) *cobra.Command {
	var at, bucket string
	var every int
	cmd := &cobra.Command{
		Use:   "state AGGREGATE [--at SEQ|RFC3339]",
		Short: "Print the state of an aggregate, folded with JSON merge patch",
		Long: `state folds the data of every event of AGGREGATE (the subjects under
AGGREGATE.>) into one JSON document with JSON merge patch (RFC 7396): each
event's data is merged into the document, a member set to null is removed.
It prints the document and the sequence of the last event folded (0 and {}
for an aggregate without events).

With --at SEQ the state is as of that stream sequence, with --at TIME as of
that time (RFC 3339). Snapshots are kept in the key-value bucket
--snapshot-bucket (default STATE_<stream>; "" for none): a load at the head
starts from the aggregate's snapshot and reads only the events after it, and
writes a new snapshot after --snapshot-every events or when it had to scan the
stream. A load with --at writes none. The default bucket is used only when it
exists: state creates nothing on the server unless --snapshot-bucket names a
bucket, which is then created when missing (and said so on standard error).

Malformed messages on the aggregate's subjects (published by other clients,
see "jetsource events") and events whose data is not JSON are skipped, each
with a warning, and their number is reported on standard error.

With --output json the result is one object: {"aggregate", "sequence", "state"}.`,
		Example: `  jetsource state users.A
  jetsource state users.A --at 42
  jetsource state users.A --at 2026-01-02T15:04:05Z -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			agg, err := subjects.Parse(args[0])
			if err != nil {
				return usageError{fmt.Errorf("aggregate: %w", err)}
			}
			opts := []state.Option{state.WithTimeout(g.timeout)}
			if at != "" {
				o, err := parseStateAt(at)
				if err != nil {
					return err
				}
				opts = append(opts, o)
			}
			if every <= 0 {
				return usagef("--snapshot-every must be positive")
			}
			opts = append(opts, state.WithSnapshotEvery(every))
			explicit := cmd.Flags().Changed("snapshot-bucket")
			if !explicit {
				bucket = "STATE_" + g.stream
			}
			logger := m.logger(g.logLvl, "text")
			var malformed, notJSON int
			opts = append(opts, state.WithLogger(logger), state.OnMalformed(func(jetsource.Event) { malformed++ }))
			ctx := cmd.Context()
			c, err := m.connect(ctx, g)
			if err != nil {
				return err
			}
			defer c.Close()
			js, err := jetstream.New(c.nc, jetstream.WithDefaultTimeout(g.timeout))
			if err != nil {
				return err
			}
			opts = append(opts, state.WithJetStream(js, g.stream))
			if bucket != "" {
				snaps, err := state.OpenKVSnapshots(ctx, js, bucket)
				switch {
				case errors.Is(err, state.ErrBucketNotFound) && !explicit:
					// Read only: no snapshots rather than a new bucket.
					logger.Debug("no snapshot bucket: folding every event", "bucket", bucket)
				case errors.Is(err, state.ErrBucketNotFound):
					if snaps, err = state.NewKVSnapshots(ctx, js, bucket); err != nil {
						return err
					}
					fmt.Fprintf(m.Stderr, "created snapshot bucket %s\n", bucket)
				case err != nil:
					return err
				}
				if snaps != nil {
					opts = append(opts, state.WithSnapshots(snaps))
				}
			}
			s, seq, err := state.Load(ctx, c.store, lenientMerge(logger, &notJSON), agg, opts...)
			if err != nil {
				return err
			}
			if malformed > 0 || notJSON > 0 {
				fmt.Fprintf(m.Stderr, "warning: skipped %d malformed events and %d events whose data is not JSON\n", malformed, notJSON)
			}
			w := bufio.NewWriter(m.Stdout)
			defer w.Flush()
			if g.output == "json" {
				b, err := json.Marshal(struct {
					Aggregate string `json:"aggregate"`
					Sequence  uint64 `json:"sequence"`
					State     any    `json:"state"`
				}{agg.String(), seq, s})
				if err != nil {
					return err
				}
				w.Write(b)
				w.WriteByte('\n')
				return nil
			}
			b, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "aggregate: %s\nsequence:  %d\n%s\n", agg, seq, b)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&at, "at", "", "state as of a stream sequence or an RFC 3339 time")
	f.StringVar(&bucket, "snapshot-bucket", "", `key-value bucket of snapshots, created when missing (default STATE_<stream> if it exists; "" for none)`)
	f.IntVar(&every, "snapshot-every", state.DefaultSnapshotEvery, "write a snapshot after this many events on top of the last one")
	return cmd
}

// lenientMerge is [state.MergeReducer], except that an event whose data is
// not JSON (binary data published by another client, say) is skipped with
// a warning and counted in *skipped instead of failing the fold.
func lenientMerge(logger *slog.Logger, skipped *int) state.Reducer[any] {
	r := state.MergeReducer()
	apply := r.Apply
	r.Apply = func(s any, e jetsource.Event) (any, error) {
		next, err := apply(s, e)
		if errors.Is(err, jetsource.ErrInvalidData) {
			logger.Warn("state: skipping event whose data is not JSON", "subject", e.Subject.String(), "sequence", e.Sequence, "content_type", e.DataContentType)
			*skipped++
			return s, nil
		}
		return next, err
	}
	return r
}
