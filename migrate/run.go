package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/publisher"
	"github.com/jetsource/jetsource/subjects"
)

// ExtStateHash is the extension attribute that carries, on every event a
// [Runner] writes, the hash of the aggregate's state after the event
// ("deleted" on a deleted event).
const ExtStateHash = "statehash"

// deletedHash is the statehash of a deleted event.
const deletedHash = "deleted"

// Mode selects what [Runner.Run] writes.
type Mode int

const (
	// Migrate writes new rows (imported) and changed rows (changed), never
	// deletions: the first import, and its resumption.
	Migrate Mode = iota + 1
	// Sync writes new, changed and deleted rows: the aggregates of the
	// surface whose row is gone get a deleted event.
	Sync
)

func (m Mode) String() string {
	switch m {
	case Migrate:
		return "migrate"
	case Sync:
		return "sync"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Counts tells what a run did with the rows.
type Counts struct {
	// New rows got an imported event.
	New int64 `json:"new"`
	// Changed rows got a changed event.
	Changed int64 `json:"changed"`
	// Deleted counts the aggregates whose row is gone that got a deleted
	// event.
	Deleted int64 `json:"deleted"`
	// Unchanged rows wrote nothing.
	Unchanged int64 `json:"unchanged"`
	// Bad rows were skipped ([WithSkipBadRows]).
	Bad int64 `json:"bad,omitempty"`
}

func (c *Counts) add(o Counts) {
	c.New += o.New
	c.Changed += o.Changed
	c.Deleted += o.Deleted
	c.Unchanged += o.Unchanged
	c.Bad += o.Bad
}

// Runner reads the tables of a mapping from a source and appends their
// rows as events. It is used for one run at a time.
type Runner struct {
	store *jetstore.Store
	m     *Mapping
	src   Source
	cfg   config
	plans []*plan
}

// NewRunner returns a runner that writes to store the rows that src holds
// for the tables of m. Options: [WithJetStream], [WithFoldConcurrency], [WithValidation],
// [WithSkipBadRows], [WithBadRowHandler], [WithProgress], [WithTimeout],
// [WithFlushEvery], [WithPublisherOptions].
//
// Errors: [ErrInvalidOption], and [ErrInvalidMapping] from
// [Mapping.Validate].
func NewRunner(store *jetstore.Store, m *Mapping, src Source, opts ...Option) (*Runner, error) {
	if store == nil || m == nil || src == nil {
		return nil, fmt.Errorf("%w: NewRunner needs a store, a mapping and a source", ErrInvalidOption)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &Runner{store: store, m: m, src: src, cfg: cfg}, nil
}

// Check reads the columns of every mapped table and checks the mapping
// against them. It returns every problem joined: [ErrUnknownTable],
// [ErrUnknownColumn], [ErrSource].
func (r *Runner) Check(ctx context.Context) error {
	var errs []error
	var plans []*plan
	for i := range r.m.Tables {
		t := &r.m.Tables[i]
		cols, err := r.src.Columns(ctx, t.Table)
		if err != nil {
			errs = append(errs, fmt.Errorf("table %s: %w", t.Table, err))
			continue
		}
		types := map[string]string{}
		var names []string
		for _, c := range cols {
			types[c.Name] = c.Type
			names = append(names, c.Name)
		}
		p := &plan{t: t, nkeys: len(t.tmpl.keys), filter: t.tmpl.filter(), ntokens: len(t.tmpl.tokens)}
		unknown := func(what, c string) {
			errs = append(errs, fmt.Errorf("%w: table %s has no column %q (%s); its columns: %s", ErrUnknownColumn, t.Table, c, what, strings.Join(names, ", ")))
		}
		for _, k := range t.tmpl.keys {
			if _, ok := types[k]; !ok {
				unknown("a key column of subject "+t.Subject, k)
			}
		}
		data := t.Data
		if len(data) == 0 {
			for _, c := range names {
				if !slices.Contains(t.tmpl.keys, c) {
					data = append(data, c)
				}
			}
		}
		for _, c := range data {
			if _, ok := types[c]; !ok {
				unknown("in data", c)
			}
		}
		for c := range t.Transforms {
			if _, ok := types[c]; !ok {
				unknown("in transforms", c)
			}
		}
		p.columns = append(slices.Clone(t.tmpl.keys), data...)
		p.members = data
		for _, c := range p.columns {
			p.types = append(p.types, types[c])
			var fs []transform
			for _, n := range t.Transforms[c] {
				fs = append(fs, transforms[n])
			}
			p.tr = append(p.tr, fs)
		}
		plans = append(plans, p)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.plans = plans
	return nil
}

// Total returns the number of rows of all tables, or -1 when a source
// cannot tell. It calls [Runner.Check] first if needed.
func (r *Runner) Total(ctx context.Context) (int64, error) {
	if r.plans == nil {
		if err := r.Check(ctx); err != nil {
			return -1, err
		}
	}
	var total int64
	for _, p := range r.plans {
		n, err := r.src.Count(ctx, p.t.Table)
		if err != nil {
			return -1, err
		}
		if n < 0 {
			return -1, nil
		}
		total += n
	}
	return total, nil
}

// Validate converts every row of every table without writing anything,
// and reports each bad row to the handler of [WithBadRowHandler]. It
// returns the number of bad rows and, when there are some, an error
// wrapping the first one ([*RowError]).
func (r *Runner) Validate(ctx context.Context) (int64, error) {
	if r.plans == nil {
		if err := r.Check(ctx); err != nil {
			return 0, err
		}
	}
	var bad int64
	var first error
	for _, p := range r.plans {
		var num int64
		for vals, err := range r.src.Rows(ctx, p.t.Table, p.columns, p.columns[:p.nkeys]) {
			if err != nil {
				return bad, fmt.Errorf("table %s after row %d: %w", p.t.Table, num, err)
			}
			num++
			r.tick()
			if _, err := p.convert(num, vals); err != nil {
				bad++
				if first == nil {
					first = err
				}
				r.reportBad(err)
			}
		}
	}
	if bad > 0 {
		return bad, fmt.Errorf("%d bad row(s), nothing written; the first: %w", bad, first)
	}
	return 0, nil
}

func (r *Runner) tick() {
	if r.cfg.progress != nil {
		r.cfg.progress(1)
	}
}

func (r *Runner) reportBad(err error) {
	var re *RowError
	if r.cfg.onBadRow != nil && errors.As(err, &re) {
		r.cfg.onBadRow(re)
	}
}

// Run writes the differences between the rows and the surface of each
// table, as the [Mode] says, and returns the counts. With validation on
// (the default) it first converts every row and writes nothing if one is
// bad. A failed append, a bad row in the run, or a source that fails stop
// it: the events written so far are whole, and running again resumes.
//
// Errors: those of [Runner.Check] and [Runner.Validate], [*RowError]
// (wrapping [ErrNullKey], [ErrUnsupportedType], or the store's error such
// as [jetsource.ErrConflict] when another writer moved the aggregate),
// [ErrSource], ctx's error.
func (r *Runner) Run(ctx context.Context, mode Mode) (counts Counts, err error) {
	if mode != Migrate && mode != Sync {
		return counts, fmt.Errorf("%w: mode %v", ErrInvalidOption, mode)
	}
	if r.plans == nil {
		if err := r.Check(ctx); err != nil {
			return counts, err
		}
	}
	if r.cfg.validate {
		if _, err := r.Validate(ctx); err != nil {
			return counts, err
		}
	}
	pub, err := publisher.New(r.store, append([]publisher.Option{publisher.WithTimeout(r.cfg.timeout)}, r.cfg.pubOpts...)...)
	if err != nil {
		return counts, err
	}
	w := &writer{r: r, pub: pub}
	if r.cfg.js != nil {
		w.direct = newDirectFolder(r.cfg.js, r.store.Stream())
	}
	defer func() {
		// Collect what was sent, with a fresh context: an interrupted
		// run still learns which of its appends were stored.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*r.cfg.timeout)
		defer cancel()
		results, cerr := pub.Close(cctx)
		w.collect(results)
		counts = w.counts
		if err == nil {
			err = w.err
		}
		if err == nil && cerr != nil {
			err = cerr
		}
	}()
	for _, p := range r.plans {
		if err := w.table(ctx, p, mode); err != nil {
			return counts, err
		}
		if w.err != nil {
			return counts, w.err
		}
	}
	return counts, nil
}

// kind of an append, for the counts.
type kind int

const (
	kindNew kind = iota
	kindChanged
	kindDeleted
)

type pending struct {
	kind kind
	p    *plan
	num  int64
	key  string
	agg  string
}

// writer is the write side of one run.
type writer struct {
	r       *Runner
	pub     *publisher.Publisher
	pending []pending
	changes []changeJob   // changed rows waiting for their folds
	direct  *directFolder // nil: folds through the store
	counts  Counts
	err     error // the first failed append
}

func (w *writer) collect(results []publisher.Result) {
	for i, res := range results {
		pd := w.pending[i]
		switch {
		case res.Err != nil:
			if w.err == nil {
				what := "row " + strconv.FormatInt(pd.num, 10)
				if pd.kind == kindDeleted {
					what = "deletion of " + pd.agg
				}
				w.err = &RowError{Table: pd.p.t.Table, Row: pd.num, Key: pd.key, Err: fmt.Errorf("%s not written: %w; the run stopped, run it again to resume", what, res.Err)}
			}
		case res.Ack.Duplicate:
			w.counts.Unchanged++
		case pd.kind == kindNew:
			w.counts.New++
		case pd.kind == kindChanged:
			w.counts.Changed++
		case pd.kind == kindDeleted:
			w.counts.Deleted++
		}
	}
	w.pending = w.pending[len(results):]
}

func (w *writer) append(ctx context.Context, pd pending, e jetsource.Event, prev uint64) error {
	agg, err := subjects.Parse(pd.agg)
	if err != nil {
		return &RowError{Table: pd.p.t.Table, Row: pd.num, Key: pd.key, Err: err}
	}
	f, err := jetsource.AggregateFilter(agg)
	if err != nil {
		return err
	}
	if _, err := w.pub.Append(ctx, e, jetsource.ExpectLast(f, prev)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &RowError{Table: pd.p.t.Table, Row: pd.num, Key: pd.key, Err: err}
	}
	w.pending = append(w.pending, pd)
	if len(w.pending) >= w.r.cfg.flushEvery {
		results, err := w.pub.Flush(ctx)
		w.collect(results)
		if err != nil {
			return err
		}
	}
	return w.err
}

// entry is what the surface says about one aggregate.
type entry struct {
	seq     uint64
	hash    string // "" when unknown: its latest event was not written by a runner
	deleted bool
	seen    bool
}

// surface reads the latest event of every subject under the table; nil
// when the table has no events.
func (w *writer) surface(ctx context.Context, p *plan) (map[string]*entry, error) {
	last, err := w.r.store.LastSequence(ctx, p.filter)
	if err != nil || last == 0 {
		return nil, err
	}
	if w.r.cfg.js != nil {
		return w.surfaceJS(ctx, p, last)
	}
	s := map[string]*entry{}
	for e, err := range w.r.store.Latest(ctx, p.filter) {
		if err != nil {
			return nil, fmt.Errorf("read the surface of %s: %w", p.filter, err)
		}
		if e.Malformed != nil {
			continue
		}
		subj := e.Subject.String()
		agg, n := prefix(subj, p.ntokens)
		en := s[agg]
		if en == nil {
			en = &entry{}
			s[agg] = en
		}
		if e.Sequence < en.seq {
			continue
		}
		h := e.Extensions[ExtStateHash]
		*en = entry{seq: e.Sequence}
		switch {
		case n != p.ntokens+1:
			// An event deeper in the aggregate: fold to know.
		case h == deletedHash:
			en.deleted = true
		default:
			en.hash = h
		}
	}
	return s, nil
}

// prefix returns the first n tokens of subject and how many tokens it has.
func prefix(subject string, n int) (string, int) {
	cut, count := -1, 1
	for i := 0; i < len(subject); i++ {
		if subject[i] == '.' {
			if count == n {
				cut = i
			}
			count++
		}
	}
	if cut < 0 {
		return subject, count
	}
	return subject[:cut], count
}

// eventID derives an event id from what the event says and the sequence it
// is based on.
func eventID(table, agg, name string, prev uint64, hash string) string {
	h := sha256.New()
	for _, s := range []string{table, agg, name, strconv.FormatUint(prev, 10), hash} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "migrate-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (w *writer) event(p *plan, agg, name string, prev uint64, hash string, data []byte) (jetsource.Event, error) {
	subj, err := subjects.Parse(agg + "." + name)
	if err != nil {
		return jetsource.Event{}, err
	}
	return jetsource.Event{
		ID: eventID(p.t.Table, agg, name, prev, hash), Subject: subj, Data: data,
		Actor: w.r.m.Actor, Extensions: map[string]string{ExtStateHash: hash},
	}, nil
}

// table writes the differences of one table.
func (w *writer) table(ctx context.Context, p *plan, mode Mode) error {
	surf, err := w.surface(ctx, p)
	if err != nil {
		return err
	}
	var num int64
	for vals, err := range w.r.src.Rows(ctx, p.t.Table, p.columns, p.columns[:p.nkeys]) {
		if err != nil {
			return fmt.Errorf("table %s after row %d: %w; the rows before it were written, run again to resume", p.t.Table, num, err)
		}
		num++
		w.r.tick()
		row, err := p.convert(num, vals)
		if err != nil {
			if w.r.cfg.skip {
				w.counts.Bad++
				w.r.reportBad(err)
				continue
			}
			return err
		}
		var en *entry
		if surf != nil {
			en = surf[row.aggregate]
		}
		if en != nil {
			if en.seen {
				return &RowError{Table: p.t.Table, Row: num, Key: row.key, Err: fmt.Errorf("%w: a second row with the key of aggregate %s", ErrInvalidMapping, row.aggregate)}
			}
			en.seen = true
		} else if surf != nil {
			surf[row.aggregate] = &entry{seen: true, deleted: true}
		}
		pd := pending{kind: kindNew, p: p, num: num, key: row.key, agg: row.aggregate}
		switch {
		case en == nil || en.deleted:
			var prev uint64
			if en != nil {
				prev = en.seq
			}
			e, err := w.event(p, row.aggregate, p.t.Type, prev, row.hash, row.data)
			if err != nil {
				return &RowError{Table: p.t.Table, Row: num, Key: row.key, Err: err}
			}
			if err := w.append(ctx, pd, e, prev); err != nil {
				return err
			}
		case en.hash == row.hash:
			w.counts.Unchanged++
		default:
			if err := w.queueChange(ctx, pd, row); err != nil {
				return err
			}
		}
	}
	if err := w.flushChanges(ctx); err != nil {
		return err
	}
	if mode != Sync || surf == nil {
		return nil
	}
	var gone []string
	for agg, en := range surf {
		if !en.seen && !en.deleted {
			gone = append(gone, agg)
		}
	}
	slices.Sort(gone)
	for _, agg := range gone {
		en := surf[agg]
		e, err := w.event(p, agg, DeletedType, en.seq, deletedHash, nil)
		if err != nil {
			return err
		}
		if err := w.append(ctx, pending{kind: kindDeleted, p: p, agg: agg, key: agg}, e, en.seq); err != nil {
			return err
		}
	}
	return nil
}
