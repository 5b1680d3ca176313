package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

func (m *Main) newAppendCmd(g *globals) *cobra.Command {
	var typ, id, actor, expect, source, contentType, batch string
	var dedup bool
	var expectFilters []string
	cmd := &cobra.Command{
		Use:   "append SUBJECT [DATA|-] | append --batch FILE|-",
		Short: "Append one event, or a file of events as one transaction",
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
it once and prints the original sequence. The same --id with different
content (type, subject, content type or data) is refused as a conflict
(exit 3) naming the stored event's sequence: nothing is written.

Subjects outside the stream's subjects, system subjects ($JS.>, $KV.>, $O.>,
$SYS.>, _INBOX.>, anything starting with $) and the command bus prefix
(cmd.>) are refused before anything is sent (exit 2).

--batch FILE ("-": standard input) appends every event of an NDJSON file
(one CloudEvent per line, as "jetsource events --output json" prints them;
see "jetsource import --help" for the format) as ONE transaction: all of
them or none, contiguous in the stream, with one transaction id, never half
visible to a reader. At most 1000 events fit a transaction; a larger file is
refused and nothing is written (use "jetsource import" for bulk loads). Any
bad line is reported with its number and nothing is written. --expect SEQ
applies to the whole transaction: without --expect-filter every event must
belong to one aggregate, whose last sequence must be SEQ; with
--expect-filter, SEQ is the read position of the filters. Each event's
stream sequence is printed (a table: LINE SEQ SUBJECT ID; with --output json
one object per event). Re-sending a stored transaction (same ids) writes
nothing and prints the original sequences.`,
		Example: `  jetsource append users.A.added '{"name":"Ann"}'
  jetsource append users.A.renamed '{"name":"Anne"}' --expect 1 --actor alice
  echo '{"name":"Bob"}' | jetsource append users.B.added - --id evt-42
  jetsource append groups.G.joined '{"user":"A"}' --expect 7 --expect-filter 'groups.G.>' --expect-filter 'users.A.>'
  jetsource append --batch order-42.ndjson --expect 0
  generate-order-events | jetsource append --batch - --expect 7 --expect-filter 'orders.O42.>' --expect-filter 'stock.>'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("batch") {
				if len(args) > 0 {
					return usagef("--batch FILE takes no SUBJECT or DATA: the events come from the file")
				}
				return nil
			}
			return cobra.RangeArgs(1, 2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("batch") {
				for _, name := range []string{"type", "id", "actor", "source", "content-type"} {
					if cmd.Flags().Changed(name) {
						return usagef("--%s cannot be used with --batch: each line of the file names its own attributes", name)
					}
				}
				if len(expectFilters) > 0 && !cmd.Flags().Changed("expect") {
					return usagef("--expect-filter needs --expect SEQ, the read position")
				}
				var seq *uint64
				if cmd.Flags().Changed("expect") {
					n, err := strconv.ParseUint(expect, 10, 64)
					if err != nil {
						return usagef("--expect must be a sequence number (0 for a new aggregate), not %q", expect)
					}
					seq = &n
				}
				fs, err := parseFilters(expectFilters)
				if err != nil {
					return err
				}
				return m.appendBatch(cmd, g, batch, seq, fs, dedup)
			}
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
			var st jetsource.Store = c.store
			if dedup {
				st, _ = jetsource.WithContentDedup(st)
			}
			ack, err := st.Append(cmd.Context(), e, opts...)
			if errors.Is(err, jetsource.ErrForbiddenSubject) {
				return usageError{err}
			}
			if re := (*jetsource.IDReusedError)(nil); errors.As(err, &re) {
				return m.idReused(g, re, err)
			}
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
				what := "an event with this id"
				if dedup {
					what = "an event with this id, or the latest event on the subject with the same content,"
				}
				fmt.Fprintf(m.Stderr, "duplicate: %s was already stored at sequence %d; nothing written\n", what, ack.Sequence)
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
	f.StringVar(&batch, "batch", "", "append the events of this NDJSON file (- for standard input) as one transaction")
	f.BoolVar(&dedup, "dedup", false, "write nothing when the event's content (type, content type, schema, data) equals that of the latest event on its subject; print that event's sequence")
	return cmd
}

// idReused reports an event id stored before with other content: a
// conflict (exit 3) naming the stored sequence, which is printed.
func (m *Main) idReused(g *globals, re *jetsource.IDReusedError, err error) error {
	if g.output == "json" {
		m.writeJSON(map[string]any{"error": "id_reused", "message": re.Error(), "id": re.ID, "stream": re.Stream, "sequence": re.Sequence, "differs": re.Differs})
	} else {
		fmt.Fprintln(m.Stdout, re.Sequence)
	}
	fmt.Fprintf(m.Stderr, "conflict: event id %q is already stored at sequence %d with other content (it differs in %s); nothing written (give new content a new --id)\n", re.ID, re.Sequence, strings.Join(re.Differs, ", "))
	return exitCodeError{code: exitConflict, err: err}
}

func (m *Main) writeJSON(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(m.Stdout, "%s\n", b)
}

// batchAck is one line of "append --batch --output json".
type batchAck struct {
	Line          int64  `json:"line"`
	Stream        string `json:"stream"`
	Sequence      uint64 `json:"sequence"`
	Subject       string `json:"subject"`
	ID            string `json:"id"`
	TransactionID string `json:"transactionid"`
	Duplicate     bool   `json:"duplicate,omitempty"`
}

// appendBatch is "append --batch": the events of an NDJSON file as one
// transaction (see the command's help). expect is the --expect sequence,
// nil without one.
func (m *Main) appendBatch(cmd *cobra.Command, g *globals, name string, expect *uint64, filters []subjects.Filter, dedup bool) error {
	ctx := cmd.Context()
	var in io.Reader = cmd.InOrStdin()
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var bads []lineError
	code := exitError // exitUsage once a line names a forbidden subject
	bad := func(line int64, err error) {
		bads = append(bads, lineError{Line: line, Error: err.Error()})
		if errors.Is(err, jetsource.ErrForbiddenSubject) {
			code = exitUsage
		}
	}
	// nothing reports the bad lines in file order and refuses the batch.
	nothing := func() error {
		slices.SortStableFunc(bads, func(a, b lineError) int { return cmp.Compare(a.Line, b.Line) })
		for i, b := range bads {
			if i == maxReportedErrors {
				fmt.Fprintf(m.Stderr, "(%d more bad lines not shown)\n", len(bads)-i)
				break
			}
			fmt.Fprintf(m.Stderr, "line %d: %s\n", b.Line, b.Error)
		}
		return exitCodeError{code: code, err: fmt.Errorf("%d bad line(s) in %s; nothing written", len(bads), name)}
	}

	// Read and parse every line before connecting; stop as soon as the
	// file holds more events than a transaction.
	var events []jetsource.Event
	var lines []int64
	count := 0
	lr := newLineReader(in)
	for {
		line, num, _, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, errLineTooLong) {
			return fmt.Errorf("read %s line %d: %w", name, num+1, err)
		}
		if err == nil && isBlank(line) {
			continue
		}
		if count++; count > jetsource.MaxBatch {
			return fmt.Errorf("%w: %s holds more than %d events, the most one transaction holds; nothing written (jetsource import loads any number of events, not atomically)", jetsource.ErrBatchTooLarge, name, jetsource.MaxBatch)
		}
		if err != nil {
			bad(num, err)
			continue
		}
		e, err := parseEventLine(line)
		if err != nil {
			bad(num, err)
			continue
		}
		events = append(events, e)
		lines = append(lines, num)
	}
	if len(bads) == 0 && len(events) == 0 {
		return fmt.Errorf("%w: %s holds no events; nothing written", jetsource.ErrInvalidEvent, name)
	}

	// Check the parsed lines against the stream even when some did not
	// parse, so that one run reports every bad line.
	c, err := m.connect(ctx, g)
	if err == nil {
		defer c.Close()
	}
	var check *eventChecker
	if err == nil {
		check, err = m.newEventChecker(ctx, c)
	}
	if err != nil {
		if len(bads) > 0 {
			fmt.Fprintf(m.Stderr, "the lines that parsed were not checked against the stream: %v\n", err)
			return nothing()
		}
		return err
	}
	// Check each event as the store will, naming lines: attributes,
	// stream, size, one transaction id, no id twice.
	tx, txLine := "", int64(0)
	ids := make(map[string]int64, len(events))
	now := time.Now()
	for i, e := range events {
		p, err := check.check(e, now)
		if err != nil {
			bad(lines[i], err)
			continue
		}
		if p.TransactionID != "" {
			if tx == "" {
				tx, txLine = p.TransactionID, lines[i]
			} else if p.TransactionID != tx {
				bad(lines[i], fmt.Errorf("%w: transaction id %q differs from %q of line %d: one transaction has one id", jetsource.ErrInvalidEvent, p.TransactionID, tx, txLine))
				continue
			}
		}
		if first, dup := ids[p.ID]; dup {
			bad(lines[i], fmt.Errorf("%w: id %q repeats line %d: the events of a transaction need distinct ids", jetsource.ErrInvalidEvent, p.ID, first))
			continue
		}
		ids[p.ID] = lines[i]
		events[i] = p
	}
	if len(bads) > 0 {
		return nothing()
	}
	if tx == "" {
		tx = jetsource.NewID()
	}
	opts := []jetsource.AppendOption{jetsource.WithTransactionID(tx)}
	if expect != nil {
		if len(filters) == 0 {
			agg := events[0].Aggregate()
			for i, e := range events {
				if e.Aggregate() != agg {
					return usagef("--expect without --expect-filter expects the last sequence of one aggregate, but line %d is on %s and line %d on %s: name the filters with --expect-filter", lines[0], agg, lines[i], e.Aggregate())
				}
			}
			f, err := jetsource.AggregateFilter(agg)
			if err != nil {
				return err
			}
			opts = append(opts, jetsource.ExpectLast(f, *expect))
		} else {
			opts = append(opts, jetsource.ExpectNoneAfter(*expect, filters...))
		}
	}
	var st jetsource.Store = c.store
	if dedup {
		st, _ = jetsource.WithContentDedup(st)
	}
	acks, err := st.AppendBatch(ctx, events, opts...)
	if re := (*jetsource.IDReusedError)(nil); errors.As(err, &re) {
		for i, e := range events {
			if e.ID == re.ID {
				fmt.Fprintf(m.Stderr, "line %d: ", lines[i])
			}
		}
		return m.idReused(g, re, err)
	}
	var ce *jetsource.ConflictError
	if errors.As(err, &ce) {
		if g.output == "json" {
			m.writeJSON(map[string]any{"error": "conflict", "message": ce.Error(), "filter": ce.Filter, "expected": ce.Expected, "current": ce.Current})
		} else {
			fmt.Fprintln(m.Stdout, ce.Current)
		}
		fmt.Fprintln(m.Stderr, "conflict:", ce, "(nothing written)")
		return exitCodeError{code: exitConflict, err: err}
	}
	if errors.Is(err, jetsource.ErrForbiddenSubject) {
		return usageError{fmt.Errorf("%w (nothing written)", err)}
	}
	if err != nil {
		return fmt.Errorf("%w (nothing written)", err)
	}
	w := bufio.NewWriter(m.Stdout)
	defer w.Flush()
	var tw *tabwriter.Writer
	if g.output != "json" {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LINE\tSEQ\tSUBJECT\tID")
	}
	dups := 0
	for i, a := range acks {
		if a.Duplicate {
			dups++
		}
		if tw == nil {
			b, _ := json.Marshal(batchAck{Line: lines[i], Stream: a.Stream, Sequence: a.Sequence, Subject: events[i].Subject.String(), ID: events[i].ID, TransactionID: tx, Duplicate: a.Duplicate})
			w.Write(b)
			w.WriteByte('\n')
			continue
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", lines[i], a.Sequence, events[i].Subject, events[i].ID)
	}
	if tw != nil {
		tw.Flush()
	}
	if dups == len(acks) {
		fmt.Fprintf(m.Stderr, "duplicate: this transaction (the same event ids) was stored before; nothing written, the original sequences are printed\n")
	}
	return nil
}
