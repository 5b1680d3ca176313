package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

// defaultAuditIndex is the audit index file of a stream when --index
// names none: audit-<stream>-<server>.db in the jetsource directory of the
// user's cache directory ($XDG_CACHE_HOME, else the system's, see
// os.UserCacheDir), never in the working directory. The server is part of
// the name so that two servers with streams of one name do not share an
// index.
func (m *Main) defaultAuditIndex(server, stream string) (string, error) {
	dir := m.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		var err error
		if dir, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("no cache directory for the audit index (%w): give --index", err)
		}
	}
	host := server
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		host = u.Host
	}
	name := "audit-" + fileSafe(stream) + "-" + fileSafe(host) + ".db"
	return filepath.Join(dir, "jetsource", name), nil
}

// fileSafe keeps letters, digits, '-' and '.' of s and turns anything else
// into '_', so that s can be part of a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// openAuditIndex opens, creating it if needed, the audit index in the
// SQLite file path. The audit command catches it up before each query;
// a long-running process (such as "jetsource serve") keeps it warm by
// adding the index to its projections runner, after which each audit
// query has next to nothing to catch up. Close the database when done.
func openAuditIndex(ctx context.Context, path string) (*projections.AuditIndex, *sql.DB, error) {
	db, err := projections.OpenSQLite(path)
	if err != nil {
		return nil, nil, err
	}
	a, err := projections.NewAuditIndex(ctx, db, projections.WithAuditLocation("sqlite:"+path))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return a, db, nil
}

// auditRequest is a checked audit command line.
type auditRequest struct {
	q        projections.AuditQuery
	useIndex bool
}

// auditFlags are the audit command's flags as given.
type auditFlags struct {
	actor, ip, entity, since, until string
	limit                           int
	index                           bool // --index was given
}

// parseAuditFlags checks the flags: every problem is a usage error.
func parseAuditFlags(f auditFlags, now time.Time) (auditRequest, error) {
	var r auditRequest
	if f.actor == "" && f.ip == "" && f.entity == "" && f.since == "" && f.until == "" {
		return r, usagef("give at least one of --actor, --ip, --entity, --since, --until")
	}
	if f.limit < 0 {
		return r, usagef("--limit must not be negative")
	}
	r.q.Limit = f.limit
	r.q.Actor = f.actor
	if f.ip != "" {
		p, err := parseIPFlag(f.ip)
		if err != nil {
			return r, err
		}
		r.q.ClientIP = p
	}
	if f.entity != "" {
		s, err := subjects.Parse(f.entity)
		if err != nil {
			return r, usagef("--entity: %w", err)
		}
		r.q.Entity = s
	}
	var err error
	if f.since != "" {
		if r.q.Since, err = parseTimeFlag("--since", f.since, now); err != nil {
			return r, err
		}
	}
	if f.until != "" {
		if r.q.Until, err = parseTimeFlag("--until", f.until, now); err != nil {
			return r, err
		}
	}
	if !r.q.Since.IsZero() && !r.q.Until.IsZero() && !r.q.Until.After(r.q.Since) {
		return r, usagef("--until (%s) must be after --since (%s)", r.q.Until.Format(time.RFC3339Nano), r.q.Since.Format(time.RFC3339Nano))
	}
	if err := r.q.Validate(); err != nil {
		return r, usageError{err}
	}
	r.useIndex = f.actor != "" || f.ip != "" || f.index
	return r, nil
}

// parseIPFlag reads --ip: an address (10.0.0.1, 2001:db8::1) or a network
// in CIDR notation (10.0.0.0/8).
func parseIPFlag(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, usagef("--ip %q is not a network such as 10.0.0.0/8 (%v)", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, usagef("--ip %q is not an IP address such as 10.0.0.1 or 2001:db8::1", s)
	}
	a = a.WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseTimeFlag takes a duration back from now (1h) or an RFC 3339 time.
func parseTimeFlag(name, s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, usagef("%s %q: the duration must be positive", name, s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usagef("%s %q is neither a duration (like 1h) nor an RFC 3339 time", name, s)
	}
	if t.IsZero() {
		return time.Time{}, usagef("%s %q: give a time after 0001-01-01T00:00:00Z", name, s)
	}
	return t, nil
}

func (m *Main) newAuditCmd(g *globals) *cobra.Command {
	var f auditFlags
	var index string
	var noCatchUp, noProgress bool
	cmd := &cobra.Command{
		Use:   "audit [--actor NAME] [--ip ADDRESS|NETWORK] [--entity AGGREGATE] [--since T] [--until T] [--limit N] [--index FILE]",
		Short: "Find events by actor, client address, entity or time",
		Long: `audit prints the events that match every criterion given, in sequence order:

  --actor NAME       the event's actor attribute is NAME
  --ip ADDRESS       the event's clientip attribute is this address, or is in
                     this network (10.0.0.0/8, 2001:db8::/32); an address
                     with a port counts as the address, an IPv4-mapped IPv6
                     address as the IPv4 address
  --entity AGGREGATE the events of the aggregate: users.A selects the
                     subjects users.A.>, nested aggregates (users.A.B) too
  --since/--until T  stored at or after / before T: a duration back from now
                     (1h) or an RFC 3339 time; the stream's timestamps count

With only --entity and time bounds the stream is read directly: the server
selects the aggregate's subjects (and seeks to --since by time), and the read
stops at the first event stored at or after --until.

--actor and --ip use a local audit index: an SQLite file (--index, default
jetsource/audit-<stream>-<server>.db in the user's cache directory, such as
~/.cache; its path is printed on standard error when it is created) with
one row per event
(sequence, times, subject, type, id, actor, client address, correlation,
causation and transaction ids; not the data), indexed by actor, address,
aggregate and stored time. Before answering, the command brings the index
up to date from its checkpoint: the first run reads the whole stream once
(with progress on standard error), later runs read only the events stored
since. Each query is then an indexed lookup, whatever the stream's size. The
index takes roughly 200-300 bytes per event on disk. --no-catch-up answers
from the index as it is, without the server (table output). Giving --index
also routes --entity and time queries through the index.

The rows and the index's checkpoint commit together, so a run interrupted
at any point (Ctrl-C) leaves a consistent index that the next run continues.
The index must belong to the stream: a file built from another stream (or
from a stream deleted and created again) is refused. Events later deleted
from the stream stay in the index; --output json then prints their indexed
attributes without data, with a warning.

Malformed messages (published by other clients, see "jetsource events") never
stop audit: they are indexed by their raw subject and sequence, without
attributes, so --entity and time queries find them (TYPE MALFORMED when read
from the stream) and --actor and --ip do not.

The table shows SEQ, TIME (when the stream stored the event), SUBJECT, TYPE,
ACTOR and IP. With --output json each event is printed in full as
CloudEvents JSON, one per line, exactly as "jetsource events -o json" does;
events found in the index are fetched from the stream by sequence.`,
		Example: `  jetsource audit --actor alice
  jetsource audit --ip 10.0.0.0/8 --since 24h -o json
  jetsource audit --entity users.A --since 2025-01-01T00:00:00Z --until 2025-02-01T00:00:00Z
  jetsource audit --actor alice --entity users.A --limit 20 --index /var/lib/jetsource/audit.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.index = cmd.Flags().Changed("index")
			if f.index && index == "" {
				return usagef("--index needs a file name")
			}
			req, err := parseAuditFlags(f, time.Now())
			if err != nil {
				return err
			}
			if noCatchUp && !req.useIndex {
				return usagef("--no-catch-up needs the index: give --actor, --ip or --index")
			}
			if index == "" && req.useIndex {
				if index, err = m.defaultAuditIndex(g.server, g.stream); err != nil {
					return err
				}
			}
			run := &auditRun{m: m, g: g, req: req, index: index, noCatchUp: noCatchUp, noProgress: noProgress}
			return run.run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.actor, "actor", "", "events whose actor is NAME")
	fl.StringVar(&f.ip, "ip", "", "events whose client address is ADDRESS or lies in NETWORK (CIDR)")
	fl.StringVar(&f.entity, "entity", "", "events of the aggregate AGGREGATE (users.A: the subjects users.A.>)")
	fl.StringVar(&f.since, "since", "", "only events stored since then: a duration back from now (1h) or an RFC 3339 time")
	fl.StringVar(&f.until, "until", "", "only events stored before then: a duration back from now or an RFC 3339 time")
	fl.IntVar(&f.limit, "limit", 0, "print at most N events (0: all)")
	fl.StringVar(&index, "index", "", "the audit index file (default <cache dir>/jetsource/audit-<stream>-<server>.db)")
	fl.BoolVar(&noCatchUp, "no-catch-up", false, "answer from the index as it is, without reading new events")
	fl.BoolVar(&noProgress, "no-progress", false, "do not report the index's catch-up on standard error")
	return cmd
}

// auditRun is one run of the audit command.
type auditRun struct {
	m          *Main
	g          *globals
	req        auditRequest
	index      string
	noCatchUp  bool
	noProgress bool
}

func (r *auditRun) run(ctx context.Context) error {
	if !r.req.useIndex {
		return r.fromStream(ctx)
	}
	return r.fromIndex(ctx)
}

// fromStream answers an entity or time query by reading the stream.
func (r *auditRun) fromStream(ctx context.Context) error {
	c, err := r.m.connect(ctx, r.g)
	if err != nil {
		return err
	}
	defer c.Close()
	q := jetsource.Query{Since: r.req.q.Since}
	if !r.req.q.Entity.IsZero() {
		f, err := jetsource.AggregateFilter(r.req.q.Entity)
		if err != nil {
			return usageError{err}
		}
		q.Filters = []subjects.Filter{f}
	}
	out := r.newOutput()
	n := 0
	for e, err := range c.store.Read(ctx, q) {
		if err != nil {
			out.flush()
			return err
		}
		if !r.req.q.Until.IsZero() && !e.Stored.Before(r.req.q.Until) {
			break
		}
		if err := out.event(e); err != nil {
			out.flush()
			return err
		}
		if n++; r.req.q.Limit > 0 && n == r.req.q.Limit {
			break
		}
	}
	return out.flush()
}

// fromIndex catches the index up (unless told not to) and answers from
// it.
func (r *auditRun) fromIndex(ctx context.Context) error {
	var c *client
	if !r.noCatchUp || r.g.output == "json" {
		var err error
		if c, err = r.m.connect(ctx, r.g); err != nil {
			return err
		}
		defer c.Close()
	}
	if r.noCatchUp {
		if _, err := os.Stat(r.index); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no audit index at %s: run the command without --no-catch-up once to build it", r.index)
		}
	}
	_, statErr := os.Stat(r.index)
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(r.index), 0o700); err != nil {
			return fmt.Errorf("audit index: %w", err)
		}
	}
	a, db, err := openAuditIndex(ctx, r.index)
	if err != nil {
		return err
	}
	defer db.Close()
	if errors.Is(statErr, fs.ErrNotExist) {
		fmt.Fprintf(r.m.Stderr, "created audit index %s\n", r.index)
	}
	var stream jetstream.Stream
	if c != nil {
		js, err := jetstream.New(c.nc, jetstream.WithDefaultTimeout(r.g.timeout))
		if err != nil {
			return err
		}
		if stream, err = js.Stream(ctx, r.g.stream); err != nil {
			return fmt.Errorf("stream %s: %w", r.g.stream, err)
		}
	}
	if !r.noCatchUp {
		if err := r.verify(ctx, a, c, stream); err != nil {
			return err
		}
		if err := r.catchUp(ctx, a, c); err != nil {
			return err
		}
	}
	out := r.newOutput()
	for rec, err := range a.Query(ctx, r.req.q) {
		if err != nil {
			out.flush()
			return err
		}
		if !out.json {
			out.record(rec)
			continue
		}
		e, err := r.fetch(ctx, stream, rec)
		if err != nil {
			out.flush()
			return err
		}
		if err := out.event(e); err != nil {
			out.flush()
			return err
		}
	}
	return out.flush()
}

// verify refuses an index built from another stream (or from a stream
// since deleted and created again): its checkpoint lies beyond the
// stream's last event, or its last event has another id than the stream's
// event at that sequence.
func (r *auditRun) verify(ctx context.Context, a *projections.AuditIndex, c *client, stream jetstream.Stream) error {
	cp, err := a.Checkpoint(ctx)
	if err != nil || cp == 0 {
		return err
	}
	head, err := c.store.LastSequence(ctx, subjects.All())
	if err != nil {
		return err
	}
	mismatch := func(why string) error {
		return fmt.Errorf("the audit index %s does not belong to stream %s (%s): delete the file to build it afresh", r.index, r.g.stream, why)
	}
	if cp > head {
		return mismatch(fmt.Sprintf("the index is at sequence %d, the stream ends at %d", cp, head))
	}
	var last projections.AuditRecord
	for rec, err := range a.Query(ctx, projections.AuditQuery{After: cp - 1, Limit: 1}) {
		if err != nil {
			return err
		}
		last = rec
	}
	if last.Sequence != cp || last.ID == "" {
		return nil
	}
	m, err := stream.GetMsg(ctx, cp)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // deleted from the stream: nothing to compare
	}
	if err != nil {
		return fmt.Errorf("stream %s: get message %d: %w", r.g.stream, cp, err)
	}
	e, err := decodeRaw(r.g.stream, m)
	if err != nil {
		return err
	}
	if e.ID != last.ID {
		return mismatch(fmt.Sprintf("event %d is %q in the index and %q in the stream", cp, last.ID, e.ID))
	}
	return nil
}

// catchUp brings the index up to date, reporting progress on standard
// error when there is anything to read.
func (r *auditRun) catchUp(ctx context.Context, a *projections.AuditIndex, c *client) error {
	var prog *progress
	var shown uint64
	report := func(p projections.Progress) {
		if prog == nil {
			if p.Done {
				return // nothing was behind
			}
			prog = newProgress(r.m.Stderr, int64(p.Target-p.Checkpoint), "audit index "+r.index, withProgressUnit("events"), withProgressDisabled(r.noProgress))
		}
		prog.Add(int64(p.Applied - shown))
		shown = p.Applied
		if p.Done {
			prog.Finish()
		}
	}
	_, err := a.CatchUp(ctx, c.store, projections.WithProgress(report, 100*time.Millisecond))
	if prog != nil {
		prog.Finish()
	}
	if err != nil {
		return fmt.Errorf("audit index %s: catch up: %w", r.index, err)
	}
	return nil
}

// fetch reads an indexed event in full from the stream. An event no
// longer in the stream is printed from its indexed attributes, with a
// warning.
func (r *auditRun) fetch(ctx context.Context, stream jetstream.Stream, rec projections.AuditRecord) (jetsource.Event, error) {
	m, err := stream.GetMsg(ctx, rec.Sequence)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		fmt.Fprintf(r.m.Stderr, "warning: event %d is no longer in the stream; printing its indexed attributes without data\n", rec.Sequence)
		e := rec.Event()
		e.Source, e.Stream = "/streams/"+r.g.stream, r.g.stream
		return e, nil
	}
	if err != nil {
		return jetsource.Event{}, fmt.Errorf("stream %s: get message %d: %w", r.g.stream, rec.Sequence, err)
	}
	return decodeRaw(r.g.stream, m)
}

// decodeRaw decodes a message read by sequence; one that is no valid
// event comes back malformed.
func decodeRaw(stream string, m *jetstream.RawStreamMsg) (jetsource.Event, error) {
	return jetsource.DecodeStored(m.Subject, m.Header, m.Data, jetsource.Stored{Stream: stream, Sequence: m.Sequence, Time: m.Time}), nil
}

// auditOutput writes audit results: a table, or CloudEvents JSON lines
// through the events command's printer.
type auditOutput struct {
	json bool
	p    *printer
	w    *bufio.Writer
	tw   *tabwriter.Writer
}

func (r *auditRun) newOutput() *auditOutput {
	if r.g.output == "json" {
		return &auditOutput{json: true, p: r.m.newPrinter(r.g)}
	}
	o := &auditOutput{w: bufio.NewWriter(r.m.Stdout)}
	o.tw = tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(o.tw, "SEQ\tTIME\tSUBJECT\tTYPE\tACTOR\tIP")
	return o
}

func (o *auditOutput) event(e jetsource.Event) error {
	if o.json {
		return o.p.print(e)
	}
	if e.Malformed != nil {
		o.row(e.Sequence, e.Stored, e.Malformed.Subject, "MALFORMED", "", "")
		return nil
	}
	o.row(e.Sequence, e.Stored, e.Subject.String(), e.Type, e.Actor, e.ClientIP)
	return nil
}

func (o *auditOutput) record(r projections.AuditRecord) {
	subject := r.Subject.String()
	if subject == "" {
		subject = r.RawSubject
	}
	o.row(r.Sequence, r.Stored, subject, r.Type, r.Actor, r.ClientIP)
}

func (o *auditOutput) row(seq uint64, stored time.Time, subject, typ, actor, ip string) {
	fmt.Fprintf(o.tw, "%d\t%s\t%s\t%s\t%s\t%s\n", seq, stored.UTC().Format(time.RFC3339), cell(subject), cell(typ), cell(actor), cell(ip))
}

// cell shows an empty value as "-" and control characters as spaces, so
// that no value can break the table.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func (o *auditOutput) flush() error {
	if o.json {
		return o.p.flush()
	}
	if err := o.tw.Flush(); err != nil {
		return err
	}
	return o.w.Flush()
}
