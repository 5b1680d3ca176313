package jetsource

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/jetsource/jetsource/subjects"
)

// Store is an event store: an append-only log of events on subjects, each
// with a sequence that grows with every append.
//
// Reads return iterators that yield events one at a time, in sequence
// order; a backend never loads a whole stream into memory. An iterator that
// fails yields a zero event with the error and stops.
type Store interface {
	// Append stores one event and returns where it was stored. Missing
	// attributes are filled in as [Prepare] does. An event whose id was
	// already stored (within the backend's de-duplication window) is not
	// stored again: the acknowledgement of the original is returned with
	// Duplicate set.
	//
	// Errors: [ErrInvalidSubject], [ErrInvalidEvent], [ErrInvalidData],
	// [ErrPayloadTooLarge], [ErrConflict] (a [*ConflictError]) when an
	// expectation does not hold, [ErrStreamNotFound], [ErrPermissionDenied],
	// [ErrUnavailable], [ErrInvalidOption].
	Append(ctx context.Context, e Event, opts ...AppendOption) (Ack, error)

	// Read yields the events matching the query in sequence order: those
	// stored when the read began, and with Query.Follow those stored after,
	// until ctx ends.
	Read(ctx context.Context, q Query) iter.Seq2[Event, error]

	// Load yields the events of one aggregate (the subjects under
	// aggregate.>) from sequence from on (0: from the start).
	Load(ctx context.Context, aggregate subjects.Subject, from uint64) iter.Seq2[Event, error]

	// Latest yields the latest event of every subject matching the filter,
	// in sequence order.
	Latest(ctx context.Context, filter subjects.Filter) iter.Seq2[Event, error]

	// LastSequence returns the sequence of the last event matching the
	// filter, or 0 when nothing matches.
	LastSequence(ctx context.Context, filter subjects.Filter) (uint64, error)
}

// Ack tells where an appended event was stored.
type Ack struct {
	// Stream is the name of the stream.
	Stream string `json:"stream"`
	// Sequence is the event's stream sequence.
	Sequence uint64 `json:"sequence"`
	// Duplicate is true when the event id had been stored before and
	// nothing new was written; Sequence is then the original's.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Query selects events for [Store.Read].
type Query struct {
	// Filters select subjects; an event matching any of them is read.
	// None: every event.
	Filters []subjects.Filter
	// FromSequence is the first sequence to read (0 or 1: the start).
	FromSequence uint64
	// Since skips events stored before this time.
	Since time.Time
	// Limit stops after this many events (0: no limit).
	Limit int
	// Follow keeps reading new events after the stored ones, until the
	// context ends.
	Follow bool
}

// Validate reports a query with a negative limit or zero filters.
func (q Query) Validate() error {
	if q.Limit < 0 {
		return fmt.Errorf("%w: negative limit %d", ErrInvalidOption, q.Limit)
	}
	for _, f := range q.Filters {
		if f.IsZero() {
			return fmt.Errorf("%w: empty filter", ErrInvalidSubject)
		}
	}
	return nil
}

// Match reports whether an event's subject and time fall within the query's
// filters and Since (not its sequence range or limit).
func (q Query) Match(e Event) bool {
	if !q.Since.IsZero() && e.Stored.Before(q.Since) {
		return false
	}
	if len(q.Filters) == 0 {
		return true
	}
	for _, f := range q.Filters {
		if f.Match(e.Subject) {
			return true
		}
	}
	return false
}

// AggregateFilter returns the canonical filter of an aggregate's events:
// aggregate.>. Every writer uses this exact string for per-aggregate
// expectations.
func AggregateFilter(aggregate subjects.Subject) (subjects.Filter, error) {
	if aggregate.IsZero() {
		return subjects.Filter{}, fmt.Errorf("%w: empty aggregate", ErrInvalidSubject)
	}
	return subjects.ParseFilter(aggregate.String() + ".>")
}

// AppendOptions holds the per-call options of [Store.Append]. Backends read
// it with [ApplyAppendOptions].
type AppendOptions struct {
	// Expect is set when the append carries an expectation.
	Expect bool
	// ExpectedSequence is the expected sequence of the last event of the
	// event's aggregate (0: the aggregate must have no events).
	ExpectedSequence uint64
}

// AppendOption sets an option of one append.
type AppendOption func(*AppendOptions) error

// ApplyAppendOptions applies options in order; the first error stops.
func ApplyAppendOptions(opts ...AppendOption) (AppendOptions, error) {
	var o AppendOptions
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// ExpectSequence makes the append conditional: it succeeds only if the last
// event of the event's aggregate (the subjects under the canonical filter
// aggregate.>) is at sequence seq, with 0 meaning the aggregate has no
// events yet. Otherwise it fails with a [*ConflictError].
func ExpectSequence(seq uint64) AppendOption {
	return func(o *AppendOptions) error {
		o.Expect = true
		o.ExpectedSequence = seq
		return nil
	}
}
