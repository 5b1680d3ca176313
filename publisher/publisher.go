package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// Publisher appends events with many in flight, coalescing them into
// atomic batches. It is safe for concurrent use; Close must be called to
// stop its goroutines.
type Publisher struct {
	store *jetstore.Store
	o     options
	log   *slog.Logger

	window  chan struct{} // one token per append queued or in flight
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	senders sync.WaitGroup

	mu       sync.Mutex
	aggs     map[subjects.Subject]*aggregate
	ready    []*aggregate // aggregates with queued appends and no batch in flight
	inFlight int
	pending  []*Future // since the last Flush
	closed   bool
}

// aggregate is the pipeline state of one aggregate.
type aggregate struct {
	key      subjects.Subject
	filter   subjects.Filter
	queue    []*item
	busy     bool // a batch with its events is in flight
	isReady  bool // in Publisher.ready
	appended bool // an append was made since the last Flush
	last     uint64
	failed   error
}

type item struct {
	e     jetsource.Event
	conds []jetsource.Condition
	prev  bool
	fut   *Future
}

// Future is the result of one append, available once Done is closed.
type Future struct {
	id      string
	subject subjects.Subject
	done    chan struct{}
	ack     jetsource.Ack
	err     error
}

// Done is closed when the result is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait waits for the result of the append or the end of ctx.
func (f *Future) Wait(ctx context.Context) (jetsource.Ack, error) {
	select {
	case <-f.done:
		return f.ack, f.err
	case <-ctx.Done():
		return jetsource.Ack{}, ctx.Err()
	}
}

// Result is the outcome of one append, as Flush and Close report it.
type Result struct {
	ID      string
	Subject subjects.Subject
	Ack     jetsource.Ack
	Err     error
}

// New returns a Publisher appending to store. Options: [WithWindow],
// [WithMaxBatch], [WithMaxInFlight], [WithTimeout], [WithLogger]. It
// returns an error matching [ErrInvalidOption] for a bad option.
func New(store *jetstore.Store, opts ...Option) (*Publisher, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidOption)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	p := &Publisher{
		store: store, o: o, log: o.logger,
		window: make(chan struct{}, o.window), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		aggs: map[subjects.Subject]*aggregate{},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	go p.dispatch()
	return p, nil
}

// Append queues one event and returns its future at once, or blocks while
// the window is full. The event is prepared and validated now: an invalid
// event is an error here and never queued.
//
// Options: the conditions of [jetsource.Store.Append]
// ([jetsource.ExpectSequence], [jetsource.ExpectLast],
// [jetsource.ExpectNoneAfter]) and [ExpectPrevious]. Errors: those of
// [jetsource.Prepare], [jetsource.ErrForbiddenSubject] for a subject no
// append may write (see jetstore's Store.CheckSubject), [ErrClosed], ctx's
// error; the future reports the
// store's errors and [ErrAggregateFailed].
func (p *Publisher) Append(ctx context.Context, e jetsource.Event, opts ...jetsource.AppendOption) (*Future, error) {
	o, err := jetsource.ApplyAppendOptions(opts...)
	if err != nil {
		return nil, err
	}
	prev := false
	conds := o.Conditions[:0:0]
	for _, c := range o.Conditions {
		if c.Filter.IsZero() && c.Sequence == expectPreviousMarker {
			prev = true
			continue
		}
		conds = append(conds, c)
	}
	o.Conditions = conds
	if e, err = jetsource.Prepare(e, p.store.Source(), time.Now()); err != nil {
		return nil, err
	}
	if err := p.store.CheckSubject(ctx, e.Subject); err != nil {
		return nil, err
	}
	if conds, err = jetsource.EventConditions(e, o); err != nil {
		return nil, err
	}
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	key := e.Subject.Aggregate()
	fut := &Future{id: e.ID, subject: e.Subject, done: make(chan struct{})}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.window
		return nil, ErrClosed
	}
	agg := p.aggs[key]
	if agg == nil {
		f, err := jetsource.AggregateFilter(key)
		if err != nil {
			p.mu.Unlock()
			<-p.window
			return nil, err
		}
		agg = &aggregate{key: key, filter: f}
		p.aggs[key] = agg
	}
	if prev && !agg.appended {
		p.mu.Unlock()
		<-p.window
		return nil, fmt.Errorf("%w: ExpectPrevious on %s, which has no earlier append through this publisher", jetsource.ErrInvalidOption, key)
	}
	p.pending = append(p.pending, fut)
	if agg.failed != nil {
		p.finishLocked(fut, jetsource.Ack{}, fmt.Errorf("%w: %w", ErrAggregateFailed, agg.failed))
		p.mu.Unlock()
		return fut, nil
	}
	agg.appended = true
	agg.queue = append(agg.queue, &item{e: e, conds: conds, prev: prev, fut: fut})
	p.markReadyLocked(agg)
	p.mu.Unlock()
	p.signal()
	return fut, nil
}

func (p *Publisher) markReadyLocked(a *aggregate) {
	if !a.busy && !a.isReady && len(a.queue) > 0 {
		a.isReady = true
		p.ready = append(p.ready, a)
	}
}

func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// finishLocked settles a future and frees its place in the window.
func (p *Publisher) finishLocked(f *Future, ack jetsource.Ack, err error) {
	f.ack, f.err = ack, err
	close(f.done)
	<-p.window
}

// Flush waits until every append made since the previous Flush has a
// result and returns the results in the order the appends were made. It
// clears the failures of aggregates (see [ErrAggregateFailed]) and forgets
// the aggregates it no longer needs, so [ExpectPrevious] does not reach
// across a Flush. On ctx's end it returns the results known so far with
// ctx's error.
func (p *Publisher) Flush(ctx context.Context) ([]Result, error) {
	p.mu.Lock()
	futs := p.pending
	p.pending = nil
	p.mu.Unlock()
	results := make([]Result, 0, len(futs))
	for _, f := range futs {
		select {
		case <-f.done:
			results = append(results, Result{ID: f.id, Subject: f.subject, Ack: f.ack, Err: f.err})
		case <-ctx.Done():
			p.mu.Lock()
			p.pending = append(futs[len(results):len(futs):len(futs)], p.pending...)
			p.mu.Unlock()
			return results, ctx.Err()
		}
	}
	p.mu.Lock()
	for k, a := range p.aggs {
		a.failed = nil
		a.appended = false
		if !a.busy && len(a.queue) == 0 {
			delete(p.aggs, k)
		}
	}
	p.mu.Unlock()
	return results, nil
}

// Close stops accepting appends, flushes and stops the Publisher's
// goroutines. It returns the results of the appends made since the last
// Flush. It is safe to call more than once.
func (p *Publisher) Close(ctx context.Context) ([]Result, error) {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	results, err := p.Flush(ctx)
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	return results, err
}

// batch is a set of units sent as one atomic batch.
type batch struct {
	units  []*unit
	events []jetsource.Event
	conds  []jetsource.Condition

	subjects  map[string]struct{}
	prefixes  map[string]struct{} // proper prefixes of the subjects
	condAggs  map[string]struct{} // literal P of conditions on P.>
	condLits  map[string]struct{} // literal conditions
	condOther []subjects.Filter
}

// unit is an aggregate's head append with the appends chained to it.
type unit struct {
	agg   *aggregate
	items []*item
	conds []jetsource.Condition // the head's conditions, resolved
}

func newBatch() *batch {
	return &batch{subjects: map[string]struct{}{}, prefixes: map[string]struct{}{}, condAggs: map[string]struct{}{}, condLits: map[string]struct{}{}}
}

// dispatch forms batches from ready aggregates while batch slots are free.
func (p *Publisher) dispatch() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for p.inFlight < p.o.maxInFlight && len(p.ready) > 0 {
			b := p.formBatchLocked()
			if b == nil {
				break
			}
			p.inFlight++
			p.senders.Add(1)
			go p.send(b)
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-p.stop:
			p.senders.Wait()
			return
		}
	}
}

// formBatchLocked takes units from ready aggregates until the batch is full.
// A unit whose conditions could see an event of the batch, or whose events
// a condition of the batch could see, waits for a later batch: conditions
// are checked against the state before the batch, and the result must be
// what appending one after the other would give.
func (p *Publisher) formBatchLocked() *batch {
	b := newBatch()
	var skipped []*aggregate
	for len(p.ready) > 0 && len(b.events) < p.o.maxBatch {
		a := p.ready[0]
		p.ready = p.ready[1:]
		u := p.takeUnit(a, p.o.maxBatch-len(b.events))
		if len(b.units) > 0 && !b.fits(u) {
			skipped = append(skipped, a)
			continue
		}
		b.add(u)
		a.queue = a.queue[len(u.items):]
		a.busy = true
		a.isReady = false
	}
	p.ready = append(skipped, p.ready...)
	if len(b.units) == 0 {
		return nil
	}
	return b
}

// takeUnit returns the head of a's queue and the appends that chain to it
// (ExpectPrevious or no condition), at most max of them.
func (p *Publisher) takeUnit(a *aggregate, max int) *unit {
	head := a.queue[0]
	u := &unit{agg: a, items: []*item{head}, conds: head.conds}
	if head.prev {
		u.conds = append(append([]jetsource.Condition(nil), head.conds...), jetsource.Condition{Filter: a.filter, Sequence: a.last, Exact: true})
	}
	for _, it := range a.queue[1:] {
		if len(u.items) >= max || len(it.conds) > 0 {
			break
		}
		u.items = append(u.items, it)
	}
	return u
}

func (b *batch) fits(u *unit) bool {
	if len(b.conds)+len(u.conds) > len(b.events)+len(u.items)+1 {
		return false
	}
	for _, c := range u.conds {
		if b.seesSubjects(c.Filter) {
			return false
		}
	}
	for _, it := range u.items {
		if b.conditionsSee(it.e.Subject.String()) {
			return false
		}
	}
	return true
}

// seesSubjects reports whether f matches a subject of the batch.
func (b *batch) seesSubjects(f subjects.Filter) bool {
	if s, ok := f.Subject(); ok {
		_, hit := b.subjects[s.String()]
		return hit
	}
	if p, ok := aggPrefix(f); ok {
		_, hit := b.prefixes[p]
		return hit
	}
	for s := range b.subjects {
		if f.MatchString(s) {
			return true
		}
	}
	return false
}

// conditionsSee reports whether a condition of the batch matches s.
func (b *batch) conditionsSee(s string) bool {
	if _, hit := b.condLits[s]; hit {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			if _, hit := b.condAggs[s[:i]]; hit {
				return true
			}
		}
	}
	for _, f := range b.condOther {
		if f.MatchString(s) {
			return true
		}
	}
	return false
}

func (b *batch) add(u *unit) {
	b.units = append(b.units, u)
	for _, it := range u.items {
		b.events = append(b.events, it.e)
		s := it.e.Subject.String()
		b.subjects[s] = struct{}{}
		for i := 0; i < len(s); i++ {
			if s[i] == '.' {
				b.prefixes[s[:i]] = struct{}{}
			}
		}
	}
	for _, c := range u.conds {
		b.conds = append(b.conds, c)
		switch s, lit := c.Filter.Subject(); {
		case lit:
			b.condLits[s.String()] = struct{}{}
		default:
			if p, ok := aggPrefix(c.Filter); ok {
				b.condAggs[p] = struct{}{}
			} else {
				b.condOther = append(b.condOther, c.Filter)
			}
		}
	}
}

// aggPrefix returns P for a filter P.> whose P has no wildcard.
func aggPrefix(f subjects.Filter) (string, bool) {
	s := f.String()
	if !strings.HasSuffix(s, ".>") {
		return "", false
	}
	p := s[:len(s)-2]
	if strings.ContainsAny(p, "*>") {
		return "", false
	}
	return p, true
}

// send appends a batch and settles its futures.
func (p *Publisher) send(b *batch) {
	defer p.senders.Done()
	ctx, cancel := context.WithTimeout(context.Background(), p.o.timeout)
	defer cancel()
	acks, err := p.store.AppendPrepared(ctx, b.events, b.conds)
	switch {
	case err == nil:
		p.mu.Lock()
		i := 0
		for _, u := range b.units {
			for _, it := range u.items {
				p.finishLocked(it.fut, acks[i], nil)
				u.agg.last = acks[i].Sequence
				i++
			}
			p.releaseLocked(u.agg)
		}
	case refusedForOne(err):
		// One event's condition, id, size or subject may have refused the
		// whole batch: settle each unit on its own, so that each append
		// gets the result it would have got unbatched.
		p.log.Debug("batch refused, settling its appends one by one", "events", len(b.events), "err", err)
		p.settle(ctx, b)
		p.mu.Lock()
	default:
		p.mu.Lock()
		for _, u := range b.units {
			p.failLocked(u, 0, err)
		}
	}
	p.inFlight--
	p.mu.Unlock()
	p.signal()
}

// refusedForOne reports whether err refused a batch because of what one of
// its events is (a condition, an id, a size, a subject, a permission),
// rather than because the server could not be reached.
func refusedForOne(err error) bool {
	for _, target := range []error{
		jetsource.ErrConflict, jetsource.ErrInvalidEvent, jetsource.ErrPayloadTooLarge,
		jetsource.ErrStreamNotFound, jetsource.ErrInvalidSubject, jetsource.ErrInvalidData,
		jetsource.ErrPermissionDenied, jetsource.ErrForbiddenSubject,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// settle appends the units of a refused batch one event at a time, the
// units in parallel.
func (p *Publisher) settle(ctx context.Context, b *batch) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, u := range b.units {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p.settleUnit(ctx, u)
		}()
	}
	wg.Wait()
}

func (p *Publisher) settleUnit(ctx context.Context, u *unit) {
	var last uint64
	for i, it := range u.items {
		var conds []jetsource.Condition
		switch {
		case i == 0:
			conds = u.conds
		case it.prev:
			conds = []jetsource.Condition{{Filter: u.agg.filter, Sequence: last, Exact: true}}
		}
		ack, err := p.store.Append(ctx, it.e, conditionOptions(conds)...)
		p.mu.Lock()
		if err != nil {
			p.failLocked(u, i, err)
			p.mu.Unlock()
			return
		}
		p.finishLocked(it.fut, ack, nil)
		last = ack.Sequence
		u.agg.last = last
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.releaseLocked(u.agg)
	p.mu.Unlock()
}

// failLocked fails the unit's appends from index from on with err, and
// the aggregate's queued appends with ErrAggregateFailed.
func (p *Publisher) failLocked(u *unit, from int, err error) {
	for i, it := range u.items[from:] {
		if i == 0 {
			p.finishLocked(it.fut, jetsource.Ack{}, err)
		} else {
			p.finishLocked(it.fut, jetsource.Ack{}, fmt.Errorf("%w: %w", ErrAggregateFailed, err))
		}
	}
	for _, it := range u.agg.queue {
		p.finishLocked(it.fut, jetsource.Ack{}, fmt.Errorf("%w: %w", ErrAggregateFailed, err))
	}
	u.agg.queue = nil
	u.agg.failed = err
	u.agg.busy = false
}

// releaseLocked ends an aggregate's batch and queues its next appends.
func (p *Publisher) releaseLocked(a *aggregate) {
	a.busy = false
	p.markReadyLocked(a)
}

// conditionOptions turns resolved conditions back into append options.
func conditionOptions(conds []jetsource.Condition) []jetsource.AppendOption {
	opts := make([]jetsource.AppendOption, 0, len(conds))
	for _, c := range conds {
		if c.Exact {
			opts = append(opts, jetsource.ExpectLast(c.Filter, c.Sequence))
		} else {
			opts = append(opts, jetsource.ExpectNoneAfter(c.Sequence, c.Filter))
		}
	}
	return opts
}
