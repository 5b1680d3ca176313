package jetsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/jetsource/jetsource/subjects"
)

// Invalidations are events too: invalidating a transaction appends one
// event on the subject InvalidationRoot.<transaction>.invalidated, so that
// the transaction is an aggregate of its own. The stream must capture
// InvalidationRoot.> (the stream of "jetsource serve" does).
const (
	// InvalidationRoot is the subject prefix of invalidation events.
	InvalidationRoot = "jetsource.transactions"
	// TypeInvalidated is the type of an invalidation event.
	TypeInvalidated = "jetsource.transaction.invalidated"
)

// invalidationFilter matches every invalidation event.
var invalidationFilter = subjects.MustParseFilter(InvalidationRoot + ".*.invalidated")

// InvalidationFilter returns the filter that matches every invalidation
// event.
func InvalidationFilter() subjects.Filter { return invalidationFilter }

// InvalidateOption sets an option of one [Invalidate].
type InvalidateOption func(*invalidateOptions)

type invalidateOptions struct {
	allowUnknown bool
}

// AllowUnknownTransaction makes [Invalidate] record the invalidation of a
// transaction no stored event carries (yet): for events that will be
// imported later, or that the store's reads cannot see. Without it such
// an invalidation, most often a typo, is refused with
// [ErrUnknownTransaction].
func AllowUnknownTransaction() InvalidateOption {
	return func(o *invalidateOptions) { o.allowUnknown = true }
}

// FindTransaction returns the first stored event of a transaction: the
// first event whose transaction id is tx, or that was appended on its own
// with event id tx. It reads the stream from the start until it finds
// one, so it takes as long as a read of everything when there is none.
//
// Errors: [ErrInvalidOption] for an empty id, [ErrUnknownTransaction]
// when no event carries it, and those of [Store.Read].
func FindTransaction(ctx context.Context, s Store, tx string) (Event, error) {
	if tx == "" {
		return Event{}, fmt.Errorf("%w: empty transaction id", ErrInvalidOption)
	}
	for e, err := range s.Read(ctx, Query{}) {
		if err != nil {
			return Event{}, err
		}
		if e.TransactionID == tx || e.TransactionID == "" && e.ID == tx {
			if _, inv := InvalidationOf(e); !inv {
				return e, nil
			}
		}
	}
	return Event{}, fmt.Errorf("%w: no stored event carries the transaction id %q", ErrUnknownTransaction, tx)
}

// Invalidation marks a transaction as invalid without deleting its events:
// they stay in the stream and in audit reads, and readers can skip them
// ([WithoutInvalidated]).
type Invalidation struct {
	// Transaction is the id of the invalidated transaction: the
	// transaction id of a batch, or the id of an event appended on its own.
	Transaction string `json:"transaction"`
	// Reason says why, for people reading the audit trail.
	Reason string `json:"reason,omitempty"`
	// Actor is who invalidated it (stored as the event's actor).
	Actor string `json:"-"`
	// Sequence is where the invalidation event was stored (set on read).
	Sequence uint64 `json:"-"`
}

// InvalidationSubject returns the subject of the invalidation of a
// transaction: InvalidationRoot.<escaped id>.invalidated.
//
// Errors: [ErrInvalidOption] for an empty id.
func InvalidationSubject(transaction string) (subjects.Subject, error) {
	if transaction == "" {
		return subjects.Subject{}, fmt.Errorf("%w: empty transaction id", ErrInvalidOption)
	}
	return subjects.Parse(InvalidationRoot + "." + subjects.Escape(transaction) + ".invalidated")
}

// Invalidate records that a transaction is invalid. It is idempotent: a
// transaction is invalidated at most once, and invalidating it again
// returns the ack of the first invalidation with Duplicate set.
//
// The transaction's events are not touched. A transaction that no stored
// event carries is refused with [ErrUnknownTransaction] (nothing is
// written), unless [AllowUnknownTransaction] is given: finding out reads
// the stream until the transaction's first event ([FindTransaction]).
//
// Errors: [ErrInvalidOption] for an empty transaction id,
// [ErrUnknownTransaction], and those of [Store.Read] and [Store.Append].
func Invalidate(ctx context.Context, s Store, inv Invalidation, opts ...InvalidateOption) (Ack, error) {
	var o invalidateOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	subj, err := InvalidationSubject(inv.Transaction)
	if err != nil {
		return Ack{}, err
	}
	if ack, ok, err := firstInvalidation(ctx, s, subj); err != nil || ok {
		return ack, err
	}
	if !o.allowUnknown {
		if _, err := FindTransaction(ctx, s, inv.Transaction); err != nil {
			return Ack{}, err
		}
	}
	data, err := json.Marshal(inv)
	if err != nil {
		return Ack{}, err
	}
	e := Event{
		ID:              "invalidate-" + subjects.Escape(inv.Transaction),
		Type:            TypeInvalidated,
		Subject:         subj,
		DataContentType: "application/json",
		Data:            data,
		Actor:           inv.Actor,
	}
	ack, err := s.Append(ctx, e, ExpectSequence(0), StoredWins())
	if !errors.Is(err, ErrConflict) {
		return ack, err
	}
	// Invalidated meanwhile: return the first invalidation.
	if ack, ok, lerr := firstInvalidation(ctx, s, subj); lerr != nil || ok {
		return ack, lerr
	}
	return Ack{}, err
}

// firstInvalidation returns the ack of the invalidation stored on subj,
// with Duplicate set (ok false: none).
func firstInvalidation(ctx context.Context, s Store, subj subjects.Subject) (Ack, bool, error) {
	for prev, err := range s.Load(ctx, subj.Aggregate(), 0) {
		if err != nil {
			return Ack{}, false, err
		}
		return Ack{Stream: prev.Stream, Sequence: prev.Sequence, Duplicate: true}, true, nil
	}
	return Ack{}, false, nil
}

// InvalidationOf decodes an invalidation event (ok false: e is none).
func InvalidationOf(e Event) (Invalidation, bool) {
	if e.Type != TypeInvalidated || !invalidationFilter.Match(e.Subject) {
		return Invalidation{}, false
	}
	var inv Invalidation
	if err := json.Unmarshal(e.Data, &inv); err != nil || inv.Transaction == "" {
		// The subject names the transaction even if the data is damaged.
		tok, uerr := subjects.Unescape(e.Subject.Token(2))
		if uerr != nil {
			return Invalidation{}, false
		}
		inv = Invalidation{Transaction: tok}
	}
	inv.Actor, inv.Sequence = e.Actor, e.Sequence
	return inv, true
}

// Invalidations is a set of invalidated transactions, by transaction id.
type Invalidations map[string]Invalidation

// Invalid reports whether e belongs to an invalidated transaction: its
// transaction id, or for an event appended on its own its id, was
// invalidated.
func (set Invalidations) Invalid(e Event) bool {
	if len(set) == 0 {
		return false
	}
	if e.TransactionID != "" {
		_, ok := set[e.TransactionID]
		return ok
	}
	_, ok := set[e.ID]
	return ok
}

// ReadInvalidations returns every invalidation recorded in s.
//
// Errors: those of [Store.Read].
func ReadInvalidations(ctx context.Context, s Store) (Invalidations, error) {
	set := make(Invalidations)
	for e, err := range s.Read(ctx, Query{Filters: []subjects.Filter{invalidationFilter}}) {
		if err != nil {
			return nil, err
		}
		if inv, ok := InvalidationOf(e); ok {
			set[inv.Transaction] = inv
		}
	}
	return set, nil
}

// WithoutInvalidated returns a [Store] whose reads skip the events of
// invalidated transactions; appends and LastSequence are those of s.
//
// Read, Load and Latest first read the invalidations recorded so far. A
// Read with Follow also watches new invalidations: events read after an
// invalidation arrives are skipped, but events already yielded cannot be
// taken back, so a follower that must undo them reads the invalidation
// events themselves (filter [InvalidationFilter]) and reacts. Invalidation
// events are yielded only when the query's filters match them.
//
// Latest skips a subject whose latest event is invalidated (it does not
// fall back to the one before).
func WithoutInvalidated(s Store) Store { return &validStore{Store: s} }

type validStore struct{ Store }

func (s *validStore) Read(ctx context.Context, q Query) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		set, err := ReadInvalidations(ctx, s.Store)
		if err != nil {
			yield(Event{}, err)
			return
		}
		inner := q
		if q.Follow && len(q.Filters) > 0 && !covered(q.Filters, invalidationFilter) {
			inner.Filters = append(append([]subjects.Filter(nil), q.Filters...), invalidationFilter)
		}
		inner.Limit = 0 // skipped events do not count
		n := 0
		for e, err := range s.Store.Read(ctx, inner) {
			if err != nil {
				yield(Event{}, err)
				return
			}
			if inv, ok := InvalidationOf(e); ok {
				set[inv.Transaction] = inv
			}
			if !q.Match(e) || set.Invalid(e) {
				continue
			}
			if !yield(e, nil) {
				return
			}
			if n++; q.Limit > 0 && n >= q.Limit {
				return
			}
		}
	}
}

// covered reports whether one of fs covers g.
func covered(fs []subjects.Filter, g subjects.Filter) bool {
	for _, f := range fs {
		if f.Covers(g) {
			return true
		}
	}
	return false
}

func (s *validStore) Load(ctx context.Context, aggregate subjects.Subject, from uint64) iter.Seq2[Event, error] {
	return s.skip(ctx, s.Store.Load(ctx, aggregate, from))
}

func (s *validStore) Latest(ctx context.Context, filter subjects.Filter) iter.Seq2[Event, error] {
	return s.skip(ctx, s.Store.Latest(ctx, filter))
}

func (s *validStore) skip(ctx context.Context, events iter.Seq2[Event, error]) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		set, err := ReadInvalidations(ctx, s.Store)
		if err != nil {
			yield(Event{}, err)
			return
		}
		for e, err := range events {
			if err != nil {
				yield(Event{}, err)
				return
			}
			if set.Invalid(e) {
				continue
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}
