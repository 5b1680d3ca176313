package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Loader loads aggregates with one reducer and a set of options. It is
// safe for concurrent use.
type Loader[S any] struct {
	store jetsource.Store
	r     Reducer[S]
	cfg   config
}

// NewLoader returns a loader that folds the events of store with r.
// Options: [WithSnapshots], [WithSnapshotEvery], [WithSnapshotOnScan],
// [WithJetStream], [WithLogger], [WithTimeout]; [AtSequence] and [AtTime]
// given here apply to every load.
//
// It returns an error matching [jetsource.ErrInvalidOption] for a nil
// store, a reducer without version, Initial or Apply, or a bad option.
func NewLoader[S any](store jetsource.Store, r Reducer[S], opts ...Option) (*Loader[S], error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", jetsource.ErrInvalidOption)
	}
	if err := r.validate(); err != nil {
		return nil, err
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
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	return &Loader[S]{store: store, r: r, cfg: cfg}, nil
}

// Load folds the events of aggregate (the subjects under aggregate.>) with
// r and returns the state and the sequence of the last event folded (0:
// none, and the state is r.Initial()). Options are those of [NewLoader].
//
// Errors: those of [NewLoader] and of [Loader.Load].
func Load[S any](ctx context.Context, store jetsource.Store, r Reducer[S], aggregate subjects.Subject, opts ...Option) (S, uint64, error) {
	l, err := NewLoader(store, r, opts...)
	if err != nil {
		var zero S
		return zero, 0, err
	}
	return l.Load(ctx, aggregate)
}

// fold is a state being built.
type fold[S any] struct {
	state   S
	seq     uint64
	time    time.Time
	count   uint64
	applied int
}

// Load folds the events of aggregate and returns the state and the
// sequence of the last event folded (0: none, and the state is the
// reducer's initial state). Malformed events (see
// [jetsource.DecodeStored]) never stop a load: they are skipped, logged
// as a warning and reported to [OnMalformed], and the sequence returned
// may be one of theirs. Options given here apply to this load only,
// on top of the loader's.
//
// Without [AtSequence] or [AtTime] the load is at the head: it folds every
// event stored when it began, starting from the aggregate's snapshot if it
// has one of the reducer's version, and writes a new snapshot as
// [WithSnapshotEvery] and [WithSnapshotOnScan] say (a snapshot that cannot
// be written is logged, not returned). As of an earlier point it starts
// from the snapshot only if the snapshot is not newer, and writes none.
//
// Errors: [jetsource.ErrInvalidSubject] for an empty aggregate,
// [jetsource.ErrInvalidOption] for a bad option, [ErrReducer] when Apply
// fails, and the store's and snapshot store's errors
// ([jetsource.ErrStreamNotFound], [jetsource.ErrUnavailable], ...).
func (l *Loader[S]) Load(ctx context.Context, aggregate subjects.Subject, opts ...Option) (S, uint64, error) {
	cfg := l.cfg
	var zero S
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return zero, 0, err
		}
	}
	filter, err := jetsource.AggregateFilter(aggregate)
	if err != nil {
		return zero, 0, err
	}
	ctx, cancel := withDefaultTimeout(ctx, cfg.timeout)
	defer cancel()
	if cfg.hasAtSeq && cfg.atSeq == 0 {
		return l.r.Initial(), 0, nil
	}
	historical := cfg.hasAtSeq || !cfg.atTime.IsZero()
	f, haveSnap, err := l.start(ctx, cfg, aggregate)
	if err != nil {
		return zero, 0, err
	}
	base := f.seq

	if cfg.js != nil && !historical {
		d := newDirect(cfg.js, cfg.stream)
		c, err := d.info(ctx, filter.String())
		if err != nil {
			return zero, 0, err
		}
		if c.direct {
			return l.loadDirect(ctx, cfg, d, c, aggregate, filter, f, haveSnap)
		}
	}

	// Any store: find the head, then read after the snapshot.
	var head uint64
	if !historical {
		if head, err = l.store.LastSequence(ctx, filter); err != nil {
			return zero, 0, err
		}
		switch {
		case head == 0:
			return l.r.Initial(), 0, nil
		case haveSnap && head == f.seq:
			return f.state, f.seq, nil
		case haveSnap && head < f.seq:
			// A snapshot ahead of the store belongs to another store.
			f, base = fold[S]{state: l.r.Initial()}, 0
		}
	}
	for e, err := range l.store.Load(ctx, aggregate, f.seq+1) {
		if err != nil {
			return zero, 0, err
		}
		if head > 0 && e.Sequence > head ||
			cfg.hasAtSeq && e.Sequence > cfg.atSeq ||
			!cfg.atTime.IsZero() && e.Stored.After(cfg.atTime) {
			break
		}
		if err := l.apply(&f, e, cfg); err != nil {
			return zero, 0, err
		}
	}
	if !historical && f.seq > base && f.applied >= cfg.every {
		l.save(ctx, cfg, aggregate, f)
	}
	return f.state, f.seq, nil
}

// loadDirect loads at the head of a JetStream stream without walking it:
// see the package documentation.
func (l *Loader[S]) loadDirect(ctx context.Context, cfg config, d *direct, c counts, aggregate subjects.Subject, filter subjects.Filter, f fold[S], haveSnap bool) (S, uint64, error) {
	var zero S
	if c.events == 0 {
		return l.r.Initial(), 0, nil
	}
	base := f.seq
	if haveSnap && f.seq > c.head {
		// A snapshot past the stream's head is not this stream's (it was
		// recreated or purged): start over.
		f, haveSnap, base = fold[S]{state: l.r.Initial()}, false, 0
	}
	if haveSnap && c.exact {
		switch {
		case c.events == f.count:
			return f.state, f.seq, nil // current: nothing to read
		case c.events < f.count || f.seq > c.head:
			// Not this stream's snapshot: start over.
			f, haveSnap, base = fold[S]{state: l.r.Initial()}, false, 0
		case c.events-f.count <= 1024:
			evs, err := d.lastPerSubject(ctx, filter.String(), f.seq+1, c.head)
			if err != nil && !errors.Is(err, errTooMany) {
				return zero, 0, err
			}
			// Servers before 2.15 ignore the lower bound of multi_last:
			// keep only what follows the snapshot.
			evs = slices.DeleteFunc(evs, func(e jetsource.Event) bool { return e.Sequence <= f.seq || e.Sequence > c.head })
			if err == nil && uint64(len(evs)) == c.events-f.count {
				// Every new event is the last of its subject: that is
				// the whole tail.
				for _, e := range evs {
					if err := l.apply(&f, e, cfg); err != nil {
						return zero, 0, err
					}
				}
				if f.applied >= cfg.every {
					l.save(ctx, cfg, aggregate, f)
				}
				return f.state, f.seq, nil
			}
		}
	}
	// Scan: direct gets for a short tail, then batches of them.
	from, done := f.seq+1, false
	for n := 0; n < cfg.singleRead; n++ {
		e, ok, err := d.next(ctx, filter.String(), from)
		if err != nil {
			return zero, 0, err
		}
		if !ok || e.Sequence > c.head {
			done = true
			break
		}
		if err := l.apply(&f, e, cfg); err != nil {
			return zero, 0, err
		}
		from = e.Sequence + 1
	}
	for !done {
		evs, err := d.batch(ctx, filter.String(), from, 1000)
		if err != nil {
			return zero, 0, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if e.Sequence > c.head {
				done = true
				break
			}
			if err := l.apply(&f, e, cfg); err != nil {
				return zero, 0, err
			}
			from = e.Sequence + 1
		}
	}
	if f.seq > base && (f.applied >= cfg.every || cfg.onScan && f.applied > 0) {
		l.save(ctx, cfg, aggregate, f)
	}
	return f.state, f.seq, nil
}

// start returns the fold to begin with: the usable snapshot, else the
// initial state.
func (l *Loader[S]) start(ctx context.Context, cfg config, aggregate subjects.Subject) (fold[S], bool, error) {
	initial := fold[S]{state: l.r.Initial()}
	if cfg.snaps == nil {
		return initial, false, nil
	}
	snap, err := cfg.snaps.Get(ctx, aggregate)
	switch {
	case errors.Is(err, ErrSnapshotNotFound):
		return initial, false, nil
	case err != nil:
		return initial, false, err
	case snap.Version != l.r.Version || snap.Sequence == 0,
		cfg.hasAtSeq && snap.Sequence > cfg.atSeq,
		!cfg.atTime.IsZero() && snap.Time.After(cfg.atTime):
		return initial, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(snap.State))
	dec.UseNumber()
	var s S
	if err := dec.Decode(&s); err != nil {
		cfg.logger.Warn("state: ignoring unreadable snapshot", "aggregate", aggregate.String(), "error", err)
		return initial, false, nil
	}
	return fold[S]{state: s, seq: snap.Sequence, time: snap.Time, count: snap.Count}, true, nil
}

// apply folds one event into f. A malformed event is not given to the
// reducer: it is skipped with a warning and reported to [OnMalformed],
// and the fold moves past it (its sequence and count include it, as the
// stream's counts do).
func (l *Loader[S]) apply(f *fold[S], e jetsource.Event, cfg config) error {
	if e.Malformed != nil {
		cfg.logger.Warn("state: skipping malformed event", "subject", e.Malformed.Subject, "sequence", e.Sequence, "reason", e.Malformed.Reason)
		if cfg.onMalformed != nil {
			cfg.onMalformed(e)
		}
		f.seq, f.time = e.Sequence, e.Stored
		f.count++
		f.applied++
		return nil
	}
	s, err := l.r.Apply(f.state, e)
	if err != nil {
		return fmt.Errorf("%w: event %s at sequence %d: %w", ErrReducer, e.Subject, e.Sequence, err)
	}
	f.state, f.seq, f.time = s, e.Sequence, e.Stored
	f.count++
	f.applied++
	return nil
}

// save writes the fold as the aggregate's snapshot; a failure is logged.
func (l *Loader[S]) save(ctx context.Context, cfg config, aggregate subjects.Subject, f fold[S]) {
	if cfg.snaps == nil {
		return
	}
	b, err := json.Marshal(f.state)
	if err == nil {
		err = cfg.snaps.Put(ctx, aggregate, Snapshot{Version: l.r.Version, Sequence: f.seq, Time: f.time, Count: f.count, State: b})
	}
	if err != nil {
		cfg.logger.Warn("state: snapshot not written", "aggregate", aggregate.String(), "sequence", f.seq, "error", err)
	}
}
