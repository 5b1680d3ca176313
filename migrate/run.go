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
	"sync"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/publisher"
	"github.com/jetsource/jetsource/state"
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
	// A copy of its own: Validate fills in defaults and the parsed
	// templates, and runners may share a mapping.
	mc := *m
	mc.Tables = slices.Clone(m.Tables)
	if err := mc.Validate(); err != nil {
		return nil, err
	}
	return &Runner{store: store, m: &mc, src: src, cfg: cfg}, nil
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
// wrapping [ErrBadRows] and the first one ([*RowError]).
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
			if _, err := p.convert(num, vals, nil); err != nil {
				bad++
				if first == nil {
					first = err
				}
				r.reportBad(err)
			}
		}
	}
	if bad > 0 {
		return bad, fmt.Errorf("%w: %d bad row(s), nothing written; the first: %w", ErrBadRows, bad, first)
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
// table, as the [Mode] says, and returns the counts. Rows are read once.
// With validation on (the default) the rows of every table are converted
// and compared before anything is written (what to write waits in a
// temporary file), and nothing is written if one is bad: every bad row is
// reported, and the error wraps the first. A failed append, a bad row in
// a run without validation, or a source that fails stop it: the events
// written so far are whole, and running again resumes.
//
// Errors: those of [Runner.Check], [ErrBadRows], [*RowError] (wrapping [ErrNullKey],
// [ErrUnsupportedType], or the store's error such as
// [jetsource.ErrConflict] when another writer moved an aggregate twice
// while the run wrote it), [ErrSource], ctx's error.
func (r *Runner) Run(ctx context.Context, mode Mode) (counts Counts, err error) {
	if mode != Migrate && mode != Sync {
		return counts, fmt.Errorf("%w: mode %v", ErrInvalidOption, mode)
	}
	if r.plans == nil {
		if err := r.Check(ctx); err != nil {
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
	var runs []*tableRun
	defer func() {
		for _, tr := range runs {
			tr.spool.close()
		}
		// Collect what was sent, with a fresh context: an interrupted
		// run still learns which of its appends were stored.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*r.cfg.timeout)
		defer cancel()
		results, cerr := pub.Close(cctx)
		w.collect(results)
		w.saves.Wait()
		counts = w.counts
		if err == nil {
			err = w.err
		}
		if err == nil && cerr != nil {
			err = cerr
		}
	}()
	var bad int64
	var first error
	for _, p := range r.plans {
		tr := &tableRun{p: p, mode: mode}
		runs = append(runs, tr)
		if err := w.read(ctx, tr); err != nil {
			return counts, err
		}
		if tr.bad > 0 {
			bad += tr.bad
			if first == nil {
				first = tr.firstBad
			}
			continue
		}
		if !r.cfg.validate {
			if err := w.finish(ctx, tr); err != nil {
				return counts, err
			}
		}
	}
	if bad > 0 {
		return counts, fmt.Errorf("%w: %d bad row(s), nothing written; the first: %w", ErrBadRows, bad, first)
	}
	if r.cfg.validate {
		for _, tr := range runs {
			if err := w.finish(ctx, tr); err != nil {
				return counts, err
			}
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
	// row is the row of a new or changed event whose decision rests on
	// the surface; an append of it (or a deletion) that meets a
	// conflict is decided again once, after a fresh fold.
	row     *row
	retry   bool
	retried bool
}

// writer is the write side of one run.
type writer struct {
	r       *Runner
	pub     *publisher.Publisher
	pending []pending
	changes []changeJob   // changed rows waiting for their folds
	direct  *directFolder // nil: folds through the store
	retries []pending     // appends that met a conflict, to decide again
	saves   sync.WaitGroup
	counts  Counts
	err     error // the first failed append
}

func (w *writer) collect(results []publisher.Result) {
	for i, res := range results {
		pd := w.pending[i]
		switch {
		case res.Err != nil && pd.retry && !pd.retried && errors.Is(res.Err, jetsource.ErrConflict):
			w.retries = append(w.retries, pd)
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

// settle waits for the results of the appends sent and decides again the
// rows whose append met a conflict: their aggregate moved since the
// surface was read (another writer, or an index that was stale), so it is
// folded afresh and the change computed against that.
func (w *writer) settle(ctx context.Context) error {
	for {
		results, err := w.pub.Flush(ctx)
		w.collect(results)
		if err != nil {
			return err
		}
		if w.err != nil {
			return w.err
		}
		if len(w.retries) == 0 {
			return nil
		}
		retries := w.retries
		w.retries = nil
		for _, pd := range retries {
			if err := w.redo(ctx, pd); err != nil {
				return err
			}
		}
	}
}

// redo decides a row (or a deletion) again against a fresh fold of its
// aggregate.
func (w *writer) redo(ctx context.Context, pd pending) error {
	p := pd.p
	s, seq, err := w.fold(ctx, pd.agg)
	if err != nil {
		return &RowError{Table: p.t.Table, Row: pd.num, Key: pd.key, Err: fmt.Errorf("fold %s: %w", pd.agg, err)}
	}
	pd.retried = true
	if pd.kind == kindDeleted {
		e, err := w.event(p, pd.agg, DeletedType, seq, deletedHash, nil)
		if err != nil {
			return err
		}
		return w.append(ctx, pd, e, seq)
	}
	if seq == 0 {
		pd.kind = kindNew
		e, err := w.event(p, pd.agg, p.t.Type, 0, pd.row.hash, pd.row.data)
		if err != nil {
			return &RowError{Table: p.t.Table, Row: pd.num, Key: pd.key, Err: err}
		}
		return w.append(ctx, pd, e, 0)
	}
	r := *pd.row
	if r.state == nil {
		if r.state, err = decodeState(r.data); err != nil {
			return err
		}
	}
	return w.change(ctx, &changeJob{pd: pd, row: r, state: s, seq: seq})
}

// decodeState decodes the canonical data of a row into its state.
func decodeState(data []byte) (map[string]any, error) {
	v, err := state.DecodeJSON(data)
	if err != nil {
		return nil, err
	}
	return asObject(v), nil
}

// surface returns the surface of a table: from the index with
// [WithIndex], else read from the stream; nil when the table has no
// events.
func (w *writer) surface(ctx context.Context, p *plan) (*surface, *tableIndex, error) {
	if w.r.cfg.js != nil && w.r.cfg.indexDir != "" {
		s, ix, err := w.indexedSurface(ctx, p)
		if err != nil {
			return nil, nil, err
		}
		if len(s.ents) == 0 {
			return nil, ix, nil
		}
		return s, ix, nil
	}
	last, err := w.r.store.LastSequence(ctx, p.filter)
	if err != nil || last == 0 {
		return nil, nil, err
	}
	if w.r.cfg.js != nil {
		s, err := w.surfaceJS(ctx, p, last)
		return s, nil, err
	}
	s := newSurface()
	for e, err := range w.r.store.Latest(ctx, p.filter) {
		if err != nil {
			return nil, nil, fmt.Errorf("read the surface of %s: %w", p.filter, err)
		}
		if e.Malformed != nil {
			continue
		}
		agg, n := prefix(e.Subject.String(), p.ntokens)
		i := s.put(agg)
		en := &s.ents[i]
		if e.Sequence < en.seq {
			continue
		}
		h := e.Extensions[ExtStateHash]
		*en = entry{agg: en.agg, seq: e.Sequence}
		switch {
		case n != p.ntokens+1:
			// An event deeper in the aggregate: fold to know.
		case h == deletedHash:
			en.deleted = true
		default:
			en.hash = h
		}
	}
	return s, nil, nil
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

// tableRun is one table of a run: its surface, and with validation the
// work its rows ask for, held until every table is read.
type tableRun struct {
	p        *plan
	mode     Mode
	surf     *surface
	ix       *tableIndex // with [WithIndex]
	spool    spool
	bad      int64
	firstBad error
}

// read reads the rows of a table once and compares each with the
// surface: with validation the work is spooled, otherwise done at once.
func (w *writer) read(ctx context.Context, tr *tableRun) error {
	p := tr.p
	rows := startPrefetch(w.r.src.Rows(ctx, p.t.Table, p.columns, p.columns[:p.nkeys]), len(p.columns))
	defer rows.close()
	surf, ix, err := w.surface(ctx, p)
	if err != nil {
		return err
	}
	tr.surf, tr.ix = surf, ix
	if surf != nil {
		surf.seen = make([]bool, len(surf.ents))
	}
	var num int64
	var sc scratch
	for vals, err := range rows.all() {
		if err != nil {
			return fmt.Errorf("table %s after row %d: %w; the rows before it were written, run again to resume", p.t.Table, num, err)
		}
		num++
		w.r.tick()
		row, err := p.convert(num, vals, &sc)
		if err != nil {
			switch {
			case w.r.cfg.skip:
				w.counts.Bad++
				w.r.reportBad(err)
				continue
			case w.r.cfg.validate:
				tr.bad++
				if tr.firstBad == nil {
					tr.firstBad = err
				}
				w.r.reportBad(err)
				continue
			}
			return err
		}
		if tr.bad > 0 {
			continue // nothing is written: only the bad rows are looked for
		}
		wk := work{kind: kindNew, ent: -1, row: row}
		if surf != nil {
			i, ok := surf.pos[row.aggregate]
			dup := false
			if ok {
				dup, surf.seen[i] = surf.seen[i], true
			} else {
				_, dup = surf.added[row.aggregate]
				surf.added[row.aggregate] = struct{}{}
			}
			if dup {
				return &RowError{Table: p.t.Table, Row: num, Key: p.keyed(&row), Err: fmt.Errorf("%w: a second row with the key of aggregate %s", ErrInvalidMapping, row.aggregate)}
			}
			if ok {
				en := &surf.ents[i]
				wk.ent = i
				switch {
				case en.deleted:
					wk.prev = en.seq
				case sc.sameHash(en.hash):
					w.counts.Unchanged++
					continue
				default:
					wk.kind = kindChanged
				}
			}
		}
		sc.keep(&wk.row)
		p.keyed(&wk.row)
		if w.r.cfg.validate {
			if err := tr.spool.add(wk); err != nil {
				return err
			}
			continue
		}
		if err := w.do(ctx, tr, wk); err != nil {
			return err
		}
	}
	return nil
}

// do writes what a row asks for.
func (w *writer) do(ctx context.Context, tr *tableRun, wk work) error {
	p, row := tr.p, wk.row
	pd := pending{kind: wk.kind, p: p, num: row.num, key: row.key, agg: row.aggregate, row: &wk.row, retry: wk.ent >= 0}
	if wk.kind == kindNew {
		e, err := w.event(p, row.aggregate, p.t.Type, wk.prev, row.hash, row.data)
		if err != nil {
			return &RowError{Table: p.t.Table, Row: row.num, Key: row.key, Err: err}
		}
		return w.append(ctx, pd, e, wk.prev)
	}
	en := &tr.surf.ents[wk.ent]
	if st, ok := en.knownState(); ok {
		return w.change(ctx, &changeJob{pd: pd, row: row, state: st, seq: en.seq})
	}
	return w.queueChange(ctx, pd, row)
}

// finish writes the spooled work of a table, the changes waiting for
// folds and, with [Sync], the deletions, and waits for their results.
func (w *writer) finish(ctx context.Context, tr *tableRun) error {
	if err := tr.spool.each(func(wk work) error { return w.do(ctx, tr, wk) }); err != nil {
		return err
	}
	tr.spool.close()
	if err := w.flushChanges(ctx); err != nil {
		return err
	}
	p, surf := tr.p, tr.surf
	if tr.mode == Sync && surf != nil {
		var gone []int
		for i := range surf.ents {
			if !surf.seen[i] && !surf.ents[i].deleted {
				gone = append(gone, i)
			}
		}
		slices.SortFunc(gone, func(a, b int) int { return strings.Compare(surf.ents[a].agg, surf.ents[b].agg) })
		for _, i := range gone {
			en := &surf.ents[i]
			e, err := w.event(p, en.agg, DeletedType, en.seq, deletedHash, nil)
			if err != nil {
				return err
			}
			if err := w.append(ctx, pending{kind: kindDeleted, p: p, agg: en.agg, key: en.agg, retry: true}, e, en.seq); err != nil {
				return err
			}
		}
	}
	if err := w.settle(ctx); err != nil {
		return err
	}
	return w.updateIndex(ctx, tr)
}
