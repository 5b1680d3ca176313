package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

func (m *Main) newAppendCmd(g *globals) *cobra.Command {
	var typ, id, actor, expect, source, contentType string
	var expectFilters []string
	cmd := &cobra.Command{
		Use:   "append SUBJECT [DATA|-]",
		Short: "Append one event and print its stream sequence",
		Long: `append stores one event on SUBJECT (such as users.A.added) and prints the
stream sequence it got. DATA is the event's data (JSON by default); "-" reads
it from standard input; without DATA the event has no data.

--expect SEQ makes the append conditional on the subject's aggregate: it
succeeds only if the last event under users.A.> is at sequence SEQ, and 0
means the aggregate must be new. With --expect-filter FILTER (repeatable),
SEQ is instead a read position: the append fails if any event matching a
filter was stored after SEQ (a consistency boundary). On a conflict the
current sequence is printed and the exit status is 3.

Appending the same --id twice (within the stream's duplicate window) stores
it once and prints the original sequence.`,
		Example: `  jetsource append users.A.added '{"name":"Ann"}'
  jetsource append users.A.renamed '{"name":"Anne"}' --expect 1 --actor alice
  echo '{"name":"Bob"}' | jetsource append users.B.added - --id evt-42
  jetsource append groups.G.joined '{"user":"A"}' --expect 7 --expect-filter 'groups.G.>' --expect-filter 'users.A.>'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			subj, err := subjects.Parse(args[0])
			if err != nil {
				return usageError{err}
			}
			var data []byte
			if len(args) == 2 {
				if args[1] == "-" {
					if data, err = io.ReadAll(cmd.InOrStdin()); err != nil {
						return fmt.Errorf("read data from standard input: %w", err)
					}
				} else {
					data = []byte(args[1])
				}
			}
			var opts []jetsource.AppendOption
			if len(expectFilters) > 0 && !cmd.Flags().Changed("expect") {
				return usagef("--expect-filter needs --expect SEQ, the read position")
			}
			if cmd.Flags().Changed("expect") {
				seq, err := strconv.ParseUint(expect, 10, 64)
				if err != nil {
					return usagef("--expect must be a sequence number (0 for a new aggregate), not %q", expect)
				}
				if len(expectFilters) == 0 {
					opts = append(opts, jetsource.ExpectSequence(seq))
				} else {
					fs, err := parseFilters(expectFilters)
					if err != nil {
						return err
					}
					opts = append(opts, jetsource.ExpectNoneAfter(seq, fs...))
				}
			}
			e := jetsource.Event{Subject: subj, Type: typ, ID: id, Actor: actor, Source: source, DataContentType: contentType, Data: data}
			c, err := m.connect(cmd.Context(), g)
			if err != nil {
				return err
			}
			defer c.Close()
			ack, err := c.store.Append(cmd.Context(), e, opts...)
			var ce *jetsource.ConflictError
			if errors.As(err, &ce) {
				if g.output == "json" {
					m.writeJSON(map[string]any{"error": "conflict", "message": ce.Error(), "filter": ce.Filter, "expected": ce.Expected, "current": ce.Current})
				} else {
					fmt.Fprintln(m.Stdout, ce.Current)
				}
				fmt.Fprintln(m.Stderr, "conflict:", ce)
				return exitCodeError{code: exitConflict, err: err}
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				m.writeJSON(ack)
				return nil
			}
			fmt.Fprintln(m.Stdout, ack.Sequence)
			if ack.Duplicate {
				fmt.Fprintf(m.Stderr, "duplicate: an event with this id was already stored at sequence %d; nothing written\n", ack.Sequence)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "event type (default: derived from the subject, users.A.added -> users.added)")
	f.StringVar(&id, "id", "", "event id, also the de-duplication key (default: random)")
	f.StringVar(&actor, "actor", "", "who caused the event")
	f.StringVar(&source, "source", "", "CloudEvents source (default /jetsource)")
	f.StringVar(&contentType, "content-type", "", "content type of DATA (default application/json)")
	f.StringVar(&expect, "expect", "", "expected last sequence of the subject's aggregate (0: must be new)")
	f.StringArrayVar(&expectFilters, "expect-filter", nil, "with --expect SEQ: fail if an event matching this filter was stored after SEQ (repeatable)")
	return cmd
}

func (m *Main) writeJSON(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(m.Stdout, "%s\n", b)
}
