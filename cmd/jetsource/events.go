package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
	"github.com/jetsource/jetsource/subscriber"
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

// printer writes events as a table or as JSON lines. It never fails on
// an event's content: a malformed event (or one the CloudEvents SDK
// refuses) is printed with a MALFORMED marker, its reason and its raw
// subject. With dead set it prints dead letters: the reason columns of
// the dead-letter headers.
type printer struct {
	json bool
	dead bool
	w    *bufio.Writer
	tw   *tabwriter.Writer
}

func (m *Main) newPrinter(g *globals) *printer { return m.newEventPrinter(g, false) }

func (m *Main) newEventPrinter(g *globals, dead bool) *printer {
	p := &printer{json: g.output == "json", dead: dead, w: bufio.NewWriter(m.Stdout)}
	if !p.json {
		p.tw = tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
		if dead {
			fmt.Fprintln(p.tw, "SEQ\tDEAD-LETTERED\tSTREAM\tSEQUENCE\tSUBJECT\tCONSUMER\tDELIVERIES\tERROR")
		} else {
			fmt.Fprintln(p.tw, "SEQ\tTIME\tSUBJECT\tTYPE\tACTOR\tDATA")
		}
	}
	return p
}

// print writes one event.
func (p *printer) print(e jetsource.Event) error { return p.printWith(e, nil) }

// printWith writes one event; h, when not nil, holds the headers of a
// dead letter.
func (p *printer) printWith(e jetsource.Event, h nats.Header) error {
	var line []byte
	if p.json && e.Malformed == nil {
		var err error
		if line, err = cloudEventJSON(e); err != nil {
			// The SDK refuses what DecodeMsg accepted: show it raw.
			e = asMalformed(e, err)
		}
	}
	if p.json {
		if e.Malformed != nil {
			var err error
			if line, err = json.Marshal(malformedJSON(e)); err != nil {
				return err
			}
		}
		if h != nil {
			// The dead-letter member, after the attributes.
			d, err := json.Marshal(deadLetterJSON(h))
			if err != nil {
				return err
			}
			line = append(append(append(bytes.TrimSuffix(line, []byte("}")), `,"deadletter":`...), d...), '}')
		}
		p.w.Write(line)
		p.w.WriteByte('\n')
		return nil
	}
	if p.dead && h != nil {
		fmt.Fprintf(p.tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Sequence, cell(h.Get(subscriber.HeaderTime)),
			cell(h.Get(subscriber.HeaderStream)), cell(h.Get(subscriber.HeaderSequence)), cell(h.Get(subscriber.HeaderSubject)),
			cell(h.Get(subscriber.HeaderConsumer)), cell(h.Get(subscriber.HeaderDeliveries)), cell(shorten(h.Get(subscriber.HeaderError), 200)))
		return nil
	}
	if e.Malformed != nil {
		fmt.Fprintf(p.tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Sequence, e.Stored.UTC().Format(time.RFC3339), cell(e.Malformed.Subject),
			"MALFORMED", "-", cell(shorten(e.Malformed.Reason, 120)))
		return nil
	}
	data := string(e.Data)
	if !strings.HasPrefix(e.DataContentType, "application/json") && !strings.HasPrefix(e.DataContentType, "text/") && len(e.Data) > 0 {
		data = fmt.Sprintf("(%d bytes %s)", len(e.Data), e.DataContentType)
	}
	fmt.Fprintf(p.tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Sequence, e.Time.UTC().Format(time.RFC3339), cell(e.Subject.String()), cell(e.Type), cell(e.Actor), cell(shorten(data, 80)))
	return nil
}

// shorten cuts s to at most n bytes (at a rune boundary), marking the cut
// with "...".
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// cloudEventJSON returns the CloudEvents JSON object of a valid event.
func cloudEventJSON(e jetsource.Event) ([]byte, error) {
	ce, err := e.ToCloudEvent()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(ce)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", jetsource.ErrInvalidEvent, err)
	}
	return b, nil
}

// asMalformed turns an event the CloudEvents SDK refused into a malformed
// one, keeping what the store read.
func asMalformed(e jetsource.Event, err error) jetsource.Event {
	m := &jetsource.Malformed{Subject: e.Subject.String(), Header: jetsource.EncodeHeader(e), Reason: err.Error()}
	return jetsource.Event{ID: e.ID, Subject: e.Subject, Data: e.Data, Sequence: e.Sequence, Stream: e.Stream, Stored: e.Stored, Malformed: m}
}

// malformedJSON is the JSON line of a malformed event: the CloudEvents
// attributes it has (id and source from the stream, the raw subject, the
// stored time, the sequence), the raw data (as JSON when it is JSON, a
// string when it is UTF-8, else data_base64) and "malformed" with the raw
// subject, the reason and the headers as stored.
func malformedJSON(e jetsource.Event) map[string]any {
	m := map[string]any{
		"specversion": jetsource.SpecVersion,
		"id":          e.ID,
		"source":      "/streams/" + e.Stream,
		"type":        "jetsource.malformed",
		"subject":     e.Malformed.Subject,
		"sequence":    strconv.FormatUint(e.Sequence, 10),
		"malformed": map[string]any{
			"subject": e.Malformed.Subject,
			"reason":  e.Malformed.Reason,
			"headers": headersJSON(e.Malformed.Header),
		},
	}
	if !e.Stored.IsZero() {
		m["time"] = e.Stored.UTC().Format(time.RFC3339Nano)
	}
	switch {
	case len(e.Data) == 0:
	case json.Valid(e.Data):
		m["data"] = json.RawMessage(e.Data)
	case utf8.Valid(e.Data):
		m["data"] = string(e.Data)
	default:
		m["data_base64"] = base64.StdEncoding.EncodeToString(e.Data)
	}
	return m
}

// headersJSON returns headers for JSON output: an object, also when there
// are none.
func headersJSON(h nats.Header) map[string][]string {
	if h == nil {
		return map[string][]string{}
	}
	return h
}

// deadLetterJSON is the "deadletter" member of a dead letter's JSON line:
// where the event came from and why it was given up.
func deadLetterJSON(h nats.Header) map[string]any {
	d := map[string]any{}
	for k, name := range map[string]string{
		"error": subscriber.HeaderError, "deliveries": subscriber.HeaderDeliveries, "stream": subscriber.HeaderStream,
		"sequence": subscriber.HeaderSequence, "subject": subscriber.HeaderSubject, "consumer": subscriber.HeaderConsumer,
		"time": subscriber.HeaderTime, "msgid": subscriber.HeaderMsgID,
	} {
		if v := h.Get(name); v != "" {
			d[k] = v
		}
	}
	return d
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
like any other unless --skip-invalidated is given.

A stored message that is no valid event (published by another NATS client
with an unknown spec version, a bad time, non-JSON data under a JSON content
type, a "*" token in its subject, ...) does not stop the read: it is printed
as MALFORMED with the reason and its raw subject; with --output json as an
object with "type": "jetsource.malformed", its raw data ("data" when JSON or
text, else "data_base64") and "malformed": {"subject", "reason", "headers"}.

With --stream DEADLETTER (a dead-letter stream of durable workers) each dead
letter is printed with where it came from and why: the original stream,
sequence and subject, the consumer, the deliveries and the error (with
--output json in a "deadletter" member).`,
		Example: `  jetsource events
  jetsource events users.A.> --output json
  jetsource events '*.*.added' --since 1h --limit 10
  jetsource events --stream DEADLETTER`,
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
			dead, err := deadLetterStream(cmd.Context(), c, g)
			if err != nil {
				return err
			}
			p := m.newEventPrinter(g, dead != nil)
			for e, err := range st.Read(cmd.Context(), q) {
				if err != nil {
					p.flush()
					return err
				}
				var h nats.Header
				if dead != nil {
					if h, err = deadLetterHeaders(cmd.Context(), dead, e); err != nil {
						p.flush()
						return err
					}
				}
				if err := p.printWith(e, h); err != nil {
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
a CloudEvents JSON object per line. Malformed messages are printed marked, as
"jetsource events" prints them.

When the server goes away (a restart), tail says so on standard error and
keeps trying to reconnect, like "nats sub"; once back it goes on after the
last event printed: no event is printed twice or left out.`,
		Example: `  jetsource tail 'users.>'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs, err := parseFilters(args)
			if err != nil {
				return err
			}
			c, err := m.connectFollow(cmd.Context(), g)
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

// deadLetterStream returns the stream of a dead-letter read (the stream
// named subscriber.DefaultDeadLetterStream, or one created as a
// dead-letter stream), or nil for an event stream.
func deadLetterStream(ctx context.Context, c *client, g *globals) (jetstream.Stream, error) {
	js, err := jetstream.New(c.nc, jetstream.WithDefaultTimeout(g.timeout))
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, g.stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", g.stream, err)
	}
	if g.stream != subscriber.DefaultDeadLetterStream && st.CachedInfo().Config.Description != deadLetterDescription {
		return nil, nil
	}
	return st, nil
}

// deadLetterDescription is the description the subscriber gives the
// dead-letter streams it creates.
const deadLetterDescription = "jetsource dead letters"

// deadLetterHeaders returns the headers of a dead letter as stored (the
// reader keeps only the CloudEvents attributes of a valid event).
func deadLetterHeaders(ctx context.Context, st jetstream.Stream, e jetsource.Event) (nats.Header, error) {
	if e.Malformed != nil && e.Malformed.Header != nil {
		return e.Malformed.Header, nil
	}
	m, err := st.GetMsg(ctx, e.Sequence)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nats.Header{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", e.Sequence, err)
	}
	if m.Header == nil {
		return nats.Header{}, nil
	}
	return m.Header, nil
}

// tailReconnectWait is how long tail waits between attempts to reconnect.
const tailReconnectWait = 250 * time.Millisecond

// connectFollow opens the store like connect does, on a connection that
// reconnects for ever after the server goes away, saying so on standard
// error.
func (m *Main) connectFollow(ctx context.Context, g *globals) (*client, error) {
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(m.Stderr, format, a...)
	}
	return m.connect(ctx, g, nats.MaxReconnects(-1), nats.ReconnectWait(tailReconnectWait),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				say("disconnected from %s (%v); reconnecting\n", g.server, err)
			} else {
				say("disconnected from %s; reconnecting\n", g.server)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { say("reconnected to %s\n", nc.ConnectedUrlRedacted()) }))
}
