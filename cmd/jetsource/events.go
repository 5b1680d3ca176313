package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

func parseFilters(args []string) ([]subjects.Filter, error) {
	var fs []subjects.Filter
	for _, a := range args {
		f, err := subjects.ParseFilter(a)
		if err != nil {
			return nil, usageError{err}
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// parseSince takes a duration back from now (1h) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, usagef("--since %q: the duration must be positive", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usagef("--since %q is neither a duration (like 1h) nor an RFC 3339 time", s)
	}
	return t, nil
}

// printer writes events as a table or as JSON lines.
type printer struct {
	json bool
	w    *bufio.Writer
	tw   *tabwriter.Writer
}

func (m *Main) newPrinter(g *globals) *printer {
	p := &printer{json: g.output == "json", w: bufio.NewWriter(m.Stdout)}
	if !p.json {
		p.tw = tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(p.tw, "SEQ\tTIME\tSUBJECT\tTYPE\tACTOR\tDATA")
	}
	return p
}

func (p *printer) print(e jetsource.Event) error {
	if p.json {
		ce, err := e.ToCloudEvent()
		if err != nil {
			return err
		}
		b, err := json.Marshal(ce)
		if err != nil {
			return err
		}
		p.w.Write(b)
		p.w.WriteByte('\n')
		return nil
	}
	data := string(e.Data)
	if !strings.HasPrefix(e.DataContentType, "application/json") && !strings.HasPrefix(e.DataContentType, "text/") && len(e.Data) > 0 {
		data = fmt.Sprintf("(%d bytes %s)", len(e.Data), e.DataContentType)
	}
	data = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		return r
	}, data)
	if len(data) > 80 {
		data = data[:77] + "..."
	}
	actor := e.Actor
	if actor == "" {
		actor = "-"
	}
	fmt.Fprintf(p.tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Sequence, e.Time.UTC().Format(time.RFC3339), e.Subject, e.Type, actor, data)
	return nil
}

func (p *printer) flush() error {
	if p.tw != nil {
		if err := p.tw.Flush(); err != nil {
			return err
		}
	}
	return p.w.Flush()
}

func (m *Main) newEventsCmd(g *globals) *cobra.Command {
	var from uint64
	var since string
	var limit int
	var skipInvalid bool
	cmd := &cobra.Command{
		Use:   "events [FILTER...] [--from SEQ] [--since DURATION|RFC3339] [--limit N] [--skip-invalidated]",
		Short: "Print stored events",
		Long: `events prints the stored events matching any FILTER (all events without
one) in sequence order. Filters are NATS subject filters: users.A.> is one
aggregate, *.*.added every added event.

With --output json each event is one CloudEvents JSON object (structured mode)
per line, with the extension attribute "sequence" (a string) holding its
stream sequence.

Events of invalidated transactions (see "jetsource invalidate") are printed
like any other unless --skip-invalidated is given.`,
		Example: `  jetsource events
  jetsource events users.A.> --output json
  jetsource events '*.*.added' --since 1h --limit 10`,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs, err := parseFilters(args)
			if err != nil {
				return err
			}
			q := jetsource.Query{Filters: fs, FromSequence: from, Limit: limit}
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			if since != "" {
				if q.Since, err = parseSince(since, time.Now()); err != nil {
					return err
				}
			}
			c, err := m.connect(cmd.Context(), g)
			if err != nil {
				return err
			}
			defer c.Close()
			var st jetsource.Store = c.store
			if skipInvalid {
				st = jetsource.WithoutInvalidated(st)
			}
			p := m.newPrinter(g)
			for e, err := range st.Read(cmd.Context(), q) {
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
	f := cmd.Flags()
	f.Uint64Var(&from, "from", 0, "first stream sequence to print")
	f.StringVar(&since, "since", "", "only events stored since then: a duration back from now (1h) or an RFC 3339 time")
	f.IntVar(&limit, "limit", 0, "print at most N events (0: all)")
	f.BoolVar(&skipInvalid, "skip-invalidated", false, "leave out the events of invalidated transactions")
	return cmd
}

func (m *Main) newTailCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tail [FILTER...]",
		Short: "Print new events as they are stored, until interrupted",
		Long: `tail follows the stream and prints every new event matching any FILTER
(all events without one) until interrupted. With --output json each event is
a CloudEvents JSON object per line.`,
		Example: `  jetsource tail 'users.>'`,
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
			head, err := c.store.LastSequence(cmd.Context(), subjects.All())
			if err != nil {
				return err
			}
			p := m.newPrinter(g)
			if !p.json {
				p.flush()
			}
			for e, err := range c.store.Read(cmd.Context(), jetsource.Query{Filters: fs, FromSequence: head + 1, Follow: true}) {
				if err != nil {
					p.flush()
					return err
				}
				if err := p.print(e); err != nil {
					return err
				}
				if err := p.flush(); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
