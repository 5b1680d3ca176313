package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// DefaultAuditName is the projection name and the table name of an
// [AuditIndex] that names none.
const DefaultAuditName = "audit"

// AuditIndex is an SQL projection that indexes every event of the stream
// (or those matching its filters) for audit queries: one row per event
// with its sequence, stored time, event time, subject, aggregate, type,
// id, actor, client IP, correlation, causation and transaction ids. The
// data is not copied: it stays in the stream.
//
// The table has indexes on the actor, the client IP (as a 16-byte address,
// so that networks are ranges) and the aggregate, each ordered by
// sequence, and on the stored time. A query for one actor, address,
// network or entity is an indexed lookup whatever the size of the stream.
//
// The index is an ordinary [Projection]: a [Runner] keeps it up to date
// and [Rebuild] rebuilds it; [AuditIndex.CatchUp] brings it up to date
// once, for commands that run now and then. Its checkpoint commits with
// the rows, so the rows never disagree with it.
//
// A malformed event (see [jetsource.DecodeStored]) that reaches the index
// is indexed by its raw subject, sequence and stored time, without
// attributes: entity and time queries find it, actor and address queries
// do not; [AuditRecord.RawSubject] holds a subject that does not parse.
type AuditIndex struct {
	*SQLProjection
	table string
}

var _ Projection = (*AuditIndex)(nil)

type auditOptions struct {
	name     string
	filters  []subjects.Filter
	location string
}

// AuditOption configures [NewAuditIndex].
type AuditOption func(*auditOptions) error

// WithAuditName sets the projection name, which is also the table name
// (default [DefaultAuditName]): letters, digits and '_', starting with a
// letter. Several indexes (of several streams) can share a database under
// different names.
func WithAuditName(name string) AuditOption {
	return func(o *auditOptions) error {
		if err := ValidName(name); err != nil {
			return fmt.Errorf("%w: audit name: %w", ErrInvalidOption, err)
		}
		if err := ValidTable(name); err != nil {
			return fmt.Errorf("%w: audit name: %w", ErrInvalidOption, err)
		}
		o.name = name
		return nil
	}
}

// WithAuditFilters indexes only the events matching any of the filters
// (default: every event of the stream).
func WithAuditFilters(filters ...subjects.Filter) AuditOption {
	return func(o *auditOptions) error {
		if len(filters) == 0 {
			return fmt.Errorf("%w: audit filters: none given", ErrInvalidOption)
		}
		for _, f := range filters {
			if f.IsZero() {
				return fmt.Errorf("%w: audit filters: empty filter", ErrInvalidOption)
			}
		}
		o.filters = subjects.Canonical(filters...)
		return nil
	}
}

// WithAuditLocation describes the database for status output, such as
// "sqlite:audit.db".
func WithAuditLocation(location string) AuditOption {
	return func(o *auditOptions) error {
		o.location = location
		return nil
	}
}

// NewAuditIndex prepares the audit index in db (creating its table and
// indexes the first time). db should come from [OpenSQLite]. Options:
// [WithAuditName], [WithAuditFilters], [WithAuditLocation].
//
// Errors: [ErrInvalidOption] for a bad option, and the database's errors.
func NewAuditIndex(ctx context.Context, db *sql.DB, opts ...AuditOption) (*AuditIndex, error) {
	o := auditOptions{name: DefaultAuditName}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	table := o.name
	p, err := NewSQL(ctx, db, SQL{
		Name:     o.name,
		Filters:  o.filters,
		Tables:   []string{table},
		Location: o.location,
		Setup:    func(ctx context.Context, tx *SQLTx) error { return auditSetup(ctx, tx, table) },
		Apply:    func(ctx context.Context, tx *SQLTx, e jetsource.Event) error { return auditApply(ctx, tx, table, e) },
		// The audit index keeps malformed messages too, by subject and time.
		ApplyMalformed: true,
	})
	if err != nil {
		return nil, err
	}
	return &AuditIndex{SQLProjection: p, table: table}, nil
}

// Table returns the name of the index's table.
func (a *AuditIndex) Table() string { return a.table }

// auditSetup creates the table and its indexes. seq is the rowid, so
// every index is ordered by sequence within equal keys: (actor, seq),
// (ip, seq), (aggregate, seq). Events without an actor or an address take
// no room in those indexes (partial indexes).
func auditSetup(ctx context.Context, tx *SQLTx, table string) error {
	t := tx.Table(table)
	idx := func(suffix string) string { return tx.Table(table + "_" + suffix) }
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS ` + t + ` (
	seq INTEGER PRIMARY KEY,
	stored INTEGER NOT NULL,
	time TEXT,
	subject TEXT NOT NULL,
	aggregate TEXT NOT NULL,
	type TEXT,
	id TEXT,
	actor TEXT,
	clientip TEXT,
	ip BLOB,
	correlationid TEXT,
	causationid TEXT,
	transactionid TEXT)`,
		`CREATE INDEX IF NOT EXISTS ` + idx("actor") + ` ON ` + t + ` (actor) WHERE actor IS NOT NULL`,
		`CREATE INDEX IF NOT EXISTS ` + idx("ip") + ` ON ` + t + ` (ip) WHERE ip IS NOT NULL`,
		`CREATE INDEX IF NOT EXISTS ` + idx("aggregate") + ` ON ` + t + ` (aggregate)`,
		`CREATE INDEX IF NOT EXISTS ` + idx("stored") + ` ON ` + t + ` (stored)`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

func auditApply(ctx context.Context, tx *SQLTx, table string, e jetsource.Event) error {
	st, err := tx.Prepared(ctx, `INSERT OR REPLACE INTO `+tx.Table(table)+` (seq, stored, time, subject, aggregate, type, id, actor, clientip, ip, correlationid, causationid, transactionid)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	var evTime any
	if !e.Time.IsZero() {
		evTime = e.Time.UTC().Format(time.RFC3339Nano)
	}
	var ip any
	if a, ok := parseClientIP(e.ClientIP); ok {
		b := a.As16()
		ip = b[:]
	}
	subject, aggregate := e.Subject.String(), e.Aggregate().String()
	if e.Malformed != nil {
		// Indexed by where it is stored, without attributes (a
		// malformed event carries none but its id): an entity or time
		// query finds it, an actor or address query does not.
		subject, aggregate = e.Malformed.Subject, e.Malformed.Subject
		if i := strings.LastIndexByte(subject, '.'); i >= 0 {
			aggregate = subject[:i]
		}
	}
	_, err = st.ExecContext(ctx, int64(e.Sequence), e.Stored.UnixNano(), evTime, subject, aggregate,
		nullable(e.Type), nullable(e.ID), nullable(e.Actor), nullable(e.ClientIP), ip,
		nullable(e.CorrelationID), nullable(e.CausationID), nullable(e.TransactionID))
	return err
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// parseClientIP reads a clientip attribute: an IPv4 or IPv6 address, or
// an address with a port ("10.0.0.1:5000", "[::1]:5000"). IPv4-mapped IPv6
// addresses become IPv4 and zones are dropped, so that each address has
// one form.
func parseClientIP(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

// AuditQuery selects events of an [AuditIndex]. Every criterion given must
// hold; a query without criteria selects every indexed event.
type AuditQuery struct {
	// Actor selects the events whose actor attribute is exactly this.
	Actor string
	// ClientIP selects the events whose clientip attribute is an address
	// in this network: netip.PrefixFrom(addr, addr.BitLen()) for one
	// address. IPv4 networks also match IPv4-mapped IPv6 addresses.
	// Events whose clientip is not an IP address are never selected.
	ClientIP netip.Prefix
	// Entity selects the events of one aggregate: the subjects under
	// Entity.> (users.A selects users.A.added and, as the aggregate
	// filter does, the nested users.A.B.added).
	Entity subjects.Subject
	// Since and Until bound the time the stream stored the event:
	// Since <= stored < Until. Zero: unbounded.
	Since, Until time.Time
	// After skips the events up to this sequence (to page on from the
	// last sequence of the previous page).
	After uint64
	// Limit stops after this many events (0: no limit).
	Limit int
}

// Validate reports a negative limit, an invalid network or a time range
// that ends before it begins.
//
// Errors: [ErrInvalidOption].
func (q AuditQuery) Validate() error {
	var errs []error
	if q.Limit < 0 {
		errs = append(errs, fmt.Errorf("%w: negative limit %d", ErrInvalidOption, q.Limit))
	}
	if q.ClientIP != (netip.Prefix{}) && !q.ClientIP.IsValid() {
		errs = append(errs, fmt.Errorf("%w: invalid client network %s", ErrInvalidOption, q.ClientIP))
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		errs = append(errs, fmt.Errorf("%w: the time range ends (%s) before it begins (%s)", ErrInvalidOption,
			q.Until.Format(time.RFC3339Nano), q.Since.Format(time.RFC3339Nano)))
	}
	return errors.Join(errs...)
}

// AuditRecord is one row of an [AuditIndex]: the attributes of an event
// without its data.
type AuditRecord struct {
	Sequence      uint64           `json:"sequence"`
	Stored        time.Time        `json:"stored"`
	Time          time.Time        `json:"time,omitzero"`
	Subject       subjects.Subject `json:"subject"`
	Aggregate     subjects.Subject `json:"aggregate,omitzero"`
	Type          string           `json:"type,omitempty"`
	ID            string           `json:"id,omitempty"`
	Actor         string           `json:"actor,omitempty"`
	ClientIP      string           `json:"clientip,omitempty"`
	CorrelationID string           `json:"correlationid,omitempty"`
	CausationID   string           `json:"causationid,omitempty"`
	TransactionID string           `json:"transactionid,omitempty"`
	// RawSubject is the subject as stored when it is no valid subject
	// (a malformed event's, such as one with a "*" token); Subject is
	// then zero.
	RawSubject string `json:"raw_subject,omitempty"`
}

// Event returns the record as an event without data (and without the
// source and content type, which the index does not keep).
func (r AuditRecord) Event() jetsource.Event {
	return jetsource.Event{
		ID: r.ID, Type: r.Type, Subject: r.Subject, Time: r.Time, Actor: r.Actor, ClientIP: r.ClientIP,
		CorrelationID: r.CorrelationID, CausationID: r.CausationID, TransactionID: r.TransactionID,
		Sequence: r.Sequence, Stored: r.Stored,
	}
}

// Query yields the indexed events matching q in sequence order, as of the
// index's checkpoint (see [AuditIndex.CatchUp]). One query is one
// consistent snapshot of the index. A lookup by actor, address or entity
// reads only that key's index entries; a query by time alone reads the
// stored-time index.
//
// Errors: [ErrInvalidOption] for a query that fails [AuditQuery.Validate],
// and the database's errors.
func (a *AuditIndex) Query(ctx context.Context, q AuditQuery) iter.Seq2[AuditRecord, error] {
	return func(yield func(AuditRecord, error) bool) {
		if err := q.Validate(); err != nil {
			yield(AuditRecord{}, err)
			return
		}
		query, args := a.sql(q)
		rows, err := a.DB().QueryContext(ctx, query, args...)
		if err != nil {
			yield(AuditRecord{}, fmt.Errorf("projections: %s: query: %w", a.Name(), err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanAudit(rows)
			if err != nil {
				yield(AuditRecord{}, fmt.Errorf("projections: %s: query: %w", a.Name(), err))
				return
			}
			if !yield(r, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(AuditRecord{}, fmt.Errorf("projections: %s: query: %w", a.Name(), err))
		}
	}
}

// sql builds the statement of a query.
func (a *AuditIndex) sql(q AuditQuery) (string, []any) {
	var where []string
	var args []any
	if q.Actor != "" {
		where = append(where, `actor = ?`)
		args = append(args, q.Actor)
	}
	if q.ClientIP.IsValid() {
		lo, hi, single := prefixRange(q.ClientIP)
		if single {
			where = append(where, `ip = ?`)
			args = append(args, lo)
		} else {
			where = append(where, `ip BETWEEN ? AND ?`)
			args = append(args, lo, hi)
		}
	}
	if !q.Entity.IsZero() {
		e := q.Entity.String()
		// The aggregate itself or one nested in it: users.A, users.A.*...
		// every string starting "users.A." sorts in ["users.A.", "users.A/").
		where = append(where, `(aggregate = ? OR (aggregate >= ? AND aggregate < ?))`)
		args = append(args, e, e+".", e+"/")
	}
	if !q.Since.IsZero() {
		where = append(where, `stored >= ?`)
		args = append(args, unixNano(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, `stored < ?`)
		args = append(args, unixNano(q.Until))
	}
	if q.After > 0 {
		where = append(where, `seq > ?`)
		args = append(args, int64(min(q.After, 1<<63-1)))
	}
	s := `SELECT seq, stored, time, subject, aggregate, type, id, actor, clientip, correlationid, causationid, transactionid FROM ` + quoteIdent(a.table)
	if len(where) > 0 {
		s += ` WHERE ` + strings.Join(where, ` AND `)
	}
	s += ` ORDER BY seq`
	if q.Limit > 0 {
		s += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	return s, args
}

// unixNano returns t in nanoseconds since 1970, clamped to the int64
// range (years 1678 to 2262), as the stored times are.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// prefixRange returns the lowest and highest 16-byte address of a network
// (IPv4 networks as IPv4-mapped IPv6, the form the index stores).
func prefixRange(p netip.Prefix) (lo, hi []byte, single bool) {
	p = p.Masked()
	addr, bits := p.Addr(), p.Bits()
	if addr.Is4In6() && bits >= 96 {
		addr, bits = addr.Unmap(), bits-96
	}
	if addr.Is4() {
		bits += 96
	}
	b := addr.WithZone("").As16()
	lo = append([]byte(nil), b[:]...)
	for i := bits; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return lo, b[:], bits == 128
}

func scanAudit(rows *sql.Rows) (AuditRecord, error) {
	var r AuditRecord
	var seq, stored int64
	var evTime, typ, id, actor, ip, corr, caus, tx sql.NullString
	var subj, agg string
	if err := rows.Scan(&seq, &stored, &evTime, &subj, &agg, &typ, &id, &actor, &ip, &corr, &caus, &tx); err != nil {
		return r, err
	}
	r.Sequence, r.Stored = uint64(seq), time.Unix(0, stored).UTC()
	if evTime.Valid {
		r.Time, _ = time.Parse(time.RFC3339Nano, evTime.String)
	}
	var err error
	if r.Subject, err = subjects.Parse(subj); err != nil {
		r.RawSubject = subj
	}
	if agg != "" {
		r.Aggregate, _ = subjects.Parse(agg)
	}
	r.Type, r.ID, r.Actor, r.ClientIP = typ.String, id.String, actor.String, ip.String
	r.CorrelationID, r.CausationID, r.TransactionID = corr.String, caus.String, tx.String
	return r, nil
}

// CatchUp brings the index up to date once: it reads the events stored
// after its checkpoint, up to the last one stored when it began, and
// applies them in transactions that each commit with the checkpoint, then
// returns. The first call reads the whole stream; later calls read only
// the events stored since. It may run while a [Runner] (or another
// CatchUp) feeds the same index: events already applied are skipped.
//
// Options: [WithProgress] (reports, then a last one with Done set),
// [WithRebuildBatchSize] (events per transaction, default 2000).
// Progress.Applied counts the events read and handed to the index.
//
// Errors: [ErrInvalidOption] for a bad option, [ErrCheckpointMoved] when
// the index's checkpoint went backwards meanwhile (a rebuild or an
// operator reset it; call again), the errors of the source (such as
// [jetsource.ErrUnavailable]) and of the database, and ctx's error.
func (a *AuditIndex) CatchUp(ctx context.Context, src Source, opts ...RebuildOption) (Progress, error) {
	return catchUp(ctx, src, a, opts...)
}

// catchUp applies to p the events after its checkpoint up to the head
// found when it began.
func catchUp(ctx context.Context, src Source, p Projection, opts ...RebuildOption) (Progress, error) {
	o := rebuildOptions{batch: 2000, timeout: DefaultTimeout}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return Progress{}, err
		}
	}
	start := time.Now()
	var pr Progress
	report := func(done bool) {
		pr.Elapsed, pr.Done = time.Since(start), done
		if o.progress != nil {
			o.progress(pr)
		}
	}
	cp, err := p.Checkpoint(ctx)
	if err != nil {
		return pr, err
	}
	head, err := Head(ctx, src, p.Filters())
	if err != nil {
		return pr, fmt.Errorf("projections: %s: catch up: %w", p.Name(), err)
	}
	pr.Checkpoint, pr.Target = cp, max(head, cp)
	if head <= cp {
		report(true)
		return pr, nil
	}
	report(false)
	last := time.Now()
	f := startFeed(ctx, src, jetsource.Query{Filters: p.Filters(), FromSequence: cp + 1}, 2*o.batch)
	defer f.stop()
	buf := make([]jetsource.Event, 0, o.batch)
	for {
		batch, ok, err := f.next(ctx, buf, o.batch, nil)
		if err != nil {
			return pr, fmt.Errorf("projections: %s: catch up: read events: %w", p.Name(), err)
		}
		if !ok {
			if err := ctx.Err(); err != nil {
				return pr, err
			}
			break
		}
		next, err := p.Apply(ctx, pr.Checkpoint, batch)
		if err != nil {
			return pr, err
		}
		pr.Applied += uint64(len(batch))
		pr.Checkpoint = next
		if time.Since(last) >= o.every {
			report(false)
			last = time.Now()
		}
	}
	pr.Target = max(pr.Target, pr.Checkpoint)
	report(true)
	return pr, nil
}
