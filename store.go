package jetsource

import (
	"context"
	"fmt"
	"iter"
	"strings"
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
	// An event whose id was stored before with other content (type,
	// subject, content type or data) is refused with [ErrIDReused] (an
	// [*IDReusedError] naming the stored sequence). A subject no append may
	// write ([CheckSubject], and a backend's own rules) is refused with
	// [ErrForbiddenSubject] before anything is sent.
	//
	// Every answer is true: an ack without Duplicate means this call
	// stored the event (also when an earlier attempt of the call went
	// unanswered); Duplicate means an earlier call did; an error means
	// nothing was stored, except [ErrUnknownOutcome] (an
	// [*UnknownOutcomeError]), which tells that the backend could not find
	// out and names the id to look up.
	//
	// Errors: [ErrInvalidSubject], [ErrInvalidEvent], [ErrInvalidData],
	// [ErrPayloadTooLarge], [ErrConflict] (a [*ConflictError]) when an
	// expectation does not hold, [ErrForbiddenSubject], [ErrIDReused],
	// [ErrStorageFull], [ErrUnknownOutcome], [ErrStreamNotFound],
	// [ErrPermissionDenied], [ErrUnavailable], [ErrInvalidOption].
	Append(ctx context.Context, e Event, opts ...AppendOption) (Ack, error)

	// AppendBatch stores several events as one transaction: all of them or
	// none, contiguous in the stream, and no reader sees some without the
	// others. Every event carries the same transaction id (the given
	// one, or a new one). The acks are in the order of the events. A batch
	// whose every event id was stored before is a duplicate: the original
	// acks are returned with Duplicate set (or [ErrIDReused] when an
	// event's content differs); the same answers as Append.
	//
	// Conditions ([ExpectLast], [ExpectNoneAfter]) hold for the whole
	// batch, checked against the state before it; [ExpectSequence] is
	// refused (it names no filter). More events than [MaxBatch] are
	// refused with [ErrBatchTooLarge], never split.
	//
	// Errors: those of Append, plus [ErrBatchTooLarge].
	AppendBatch(ctx context.Context, events []Event, opts ...AppendOption) ([]Ack, error)

	// Read yields the events matching the query in sequence order: those
	// stored when the read began, and with Query.Follow those stored after,
	// until ctx ends.
	//
	// A stored message that is no valid event does not end a read: Read,
	// Load and Latest yield it with a nil error as a malformed event (see
	// [DecodeStored]); [Event.Malformed] holds its raw subject, headers
	// and the reason, and [Event.MalformedError] says why. Filters match
	// it by its raw subject when that is no valid subject. Folds and
	// projections skip such events. jetsource's own messages (subjects
	// under _jetsource, see [InternalSubject]) are never yielded.
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
	if e.Malformed != nil && e.Subject.IsZero() {
		// A malformed event whose stored subject is no valid subject (a
		// literal "*" token, say) matches by that raw subject, as the
		// server matched it for a filtered consumer.
		for _, f := range q.Filters {
			if f.MatchRaw(e.Malformed.Subject) {
				return true
			}
		}
		return false
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

// MaxBatch is the largest number of events in one [Store.AppendBatch]: the
// server's atomic batch limit.
const MaxBatch = 1000

// AppendOptions holds the per-call options of [Store.Append]. Backends read
// it with [ApplyAppendOptions].
type AppendOptions struct {
	// Expect is set when the append carries an expectation on the event's
	// aggregate ([ExpectSequence]).
	Expect bool
	// ExpectedSequence is the expected sequence of the last event of the
	// event's aggregate (0: the aggregate must have no events).
	ExpectedSequence uint64
	// Conditions must all hold for the append to succeed.
	Conditions []Condition
	// TransactionID sets the transaction id of a batch.
	TransactionID string
	// StoredWins answers an event id stored before with other content as
	// a duplicate of the stored event ([StoredWins]).
	StoredWins bool
}

// Condition is a precondition of an append on the events matching Filter.
//
// With Exact, the last matching event must be at sequence Sequence (0:
// none may exist). Without it, Sequence is a read position: the append
// fails if any matching event was stored after it, which is the condition
// of a dynamic consistency boundary ("nothing relevant changed since my
// read").
type Condition struct {
	Filter   subjects.Filter
	Sequence uint64
	Exact    bool
}

// Holds reports whether the condition holds when the last event matching
// its filter is at sequence last.
func (c Condition) Holds(last uint64) bool {
	if c.Exact {
		return last == c.Sequence
	}
	return last <= c.Sequence
}

// Conflict returns the error for a condition that does not hold.
func (c Condition) Conflict(last uint64, cause error) *ConflictError {
	return &ConflictError{Filter: c.Filter.String(), Expected: c.Sequence, Current: last, CurrentKnown: true, ReadPosition: !c.Exact, Err: cause}
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

// ExpectLast makes the append conditional on the last event matching the
// filter: it must be at sequence seq (0: no event may match). Otherwise the
// append fails with a [*ConflictError].
func ExpectLast(filter subjects.Filter, seq uint64) AppendOption {
	return func(o *AppendOptions) error {
		if filter.IsZero() {
			return fmt.Errorf("%w: ExpectLast needs a filter", ErrInvalidOption)
		}
		o.Conditions = append(o.Conditions, Condition{Filter: filter, Sequence: seq, Exact: true})
		return nil
	}
}

// ExpectNoneAfter makes the append conditional on a read: it fails with a
// [*ConflictError] if any event matching any of the filters was stored
// after sequence after (the position the decision was read at). This is
// the condition of a dynamic consistency boundary.
func ExpectNoneAfter(after uint64, filters ...subjects.Filter) AppendOption {
	return func(o *AppendOptions) error {
		if len(filters) == 0 {
			return fmt.Errorf("%w: ExpectNoneAfter needs at least one filter", ErrInvalidOption)
		}
		for _, f := range subjects.Canonical(filters...) {
			o.Conditions = append(o.Conditions, Condition{Filter: f, Sequence: after})
		}
		if len(o.Conditions) == 0 {
			return fmt.Errorf("%w: ExpectNoneAfter needs a non-empty filter", ErrInvalidOption)
		}
		return nil
	}
}

// WithTransactionID sets the transaction id of [Store.AppendBatch]
// (default: a new id). Events that name their own transaction id keep it
// only if it is the same.
func WithTransactionID(id string) AppendOption {
	return func(o *AppendOptions) error {
		if id == "" || strings.ContainsFunc(id, isControl) {
			return fmt.Errorf("%w: transaction id %q", ErrInvalidOption, id)
		}
		o.TransactionID = id
		return nil
	}
}

// StoredWins makes an event id stored before (within the duplicate
// window) a duplicate whatever its stored content: the append answers the
// stored event's ack with Duplicate set instead of [ErrIDReused]. It is for
// callers whose ids name an intent rather than content, where a retry may
// decide different content and the first one stored must win: the events
// of a command (ids derived from the command id), an invalidation of a
// transaction.
func StoredWins() AppendOption {
	return func(o *AppendOptions) error {
		o.StoredWins = true
		return nil
	}
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

// EventConditions returns the conditions of a single append: the options'
// conditions plus, with [ExpectSequence], the exact expectation on the
// event's aggregate filter.
func EventConditions(e Event, o AppendOptions) ([]Condition, error) {
	conds := o.Conditions
	if o.Expect {
		f, err := AggregateFilter(e.Subject.Aggregate())
		if err != nil {
			return nil, err
		}
		conds = append(append([]Condition(nil), conds...), Condition{Filter: f, Sequence: o.ExpectedSequence, Exact: true})
	}
	return conds, nil
}

// PrepareBatch checks a batch and its options and prepares each event with
// prepare, giving every event the batch's transaction id: the option's, else
// the one the events share, else a new one.
//
// It returns [ErrInvalidOption] for an empty batch or [ExpectSequence],
// [ErrBatchTooLarge] past [MaxBatch], [ErrInvalidEvent] for events naming
// different transactions or repeating an id, and prepare's errors.
func PrepareBatch(events []Event, o AppendOptions, prepare func(Event) (Event, error)) ([]Event, error) {
	switch {
	case len(events) == 0:
		return nil, fmt.Errorf("%w: empty batch", ErrInvalidOption)
	case len(events) > MaxBatch:
		return nil, fmt.Errorf("%w: %d events, at most %d fit one transaction", ErrBatchTooLarge, len(events), MaxBatch)
	case o.Expect:
		return nil, fmt.Errorf("%w: ExpectSequence names no aggregate in a batch; use ExpectLast with the aggregate's filter", ErrInvalidOption)
	}
	tx := o.TransactionID
	if tx == "" {
		tx = events[0].TransactionID
	}
	if tx == "" {
		tx = NewID()
	}
	out := make([]Event, len(events))
	seen := make(map[string]int, len(events))
	for i, e := range events {
		if e.TransactionID != "" && e.TransactionID != tx {
			return nil, fmt.Errorf("%w: event %d names transaction %q, the batch is %q", ErrInvalidEvent, i, e.TransactionID, tx)
		}
		e.TransactionID = tx
		p, err := prepare(e)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		if j, dup := seen[p.ID]; dup {
			return nil, fmt.Errorf("%w: events %d and %d have the same id %q", ErrInvalidEvent, j, i, p.ID)
		}
		seen[p.ID] = i
		out[i] = p
	}
	return out, nil
}

// GuardSubject returns the subject of the internal guard messages a
// JetStream store writes on stream in the same atomic batch as an
// append's events, to carry conditions that fit on no event (see
// jetstore's AppendBatch): _jetsource.guard.<stream>. A guard message is
// not an event: it has no CloudEvents headers and no data, only
// [HeaderGuard] and the expectation it carries. Readers that read a whole
// stream must skip messages on it, as on every subject under _jetsource
// ([InternalSubject]).
func GuardSubject(stream string) string { return internalRoot + ".guard." + stream }

// HeaderGuard marks a guard message (see [GuardSubject]); its value is
// the transaction id of the batch it guards.
const HeaderGuard = "Jetsource-Guard"

// InternalSubject reports whether subject belongs to jetsource itself
// (_jetsource.>, where [GuardSubject]s are): messages on it are not
// events, readers skip them and no append may write there.
func InternalSubject(subject string) bool {
	return subject == internalRoot || strings.HasPrefix(subject, internalRoot+".")
}

const internalRoot = "_jetsource"

// SystemSubject reports whether subject belongs to the NATS server or to
// jetsource itself: the JetStream API and its advisories ($JS.>), key-value
// buckets ($KV.>), object stores ($O.>), system events ($SYS.>), any other
// subject beginning with '$', reply inboxes (_INBOX), and jetsource's
// internal subjects ([InternalSubject]). No jetsource write path ever
// publishes an event on one.
func SystemSubject(subject string) bool {
	return strings.HasPrefix(subject, "$") || strings.HasPrefix(subject, "_INBOX") || InternalSubject(subject)
}

// CheckSubject returns an error matching [ErrForbiddenSubject] for a
// subject no append may write ([SystemSubject]), nil otherwise. Stores
// call it before they send anything; a backend adds its own rules (the
// subjects its stream captures, the command bus prefix).
func CheckSubject(subject subjects.Subject) error {
	s := subject.String()
	if SystemSubject(s) {
		return fmt.Errorf("%w: subject %q is a system subject: jetsource never writes $JS.>, $KV.>, $O.>, $SYS.> (any subject starting with $), _INBOX.> or %s.>", ErrForbiddenSubject, s, internalRoot)
	}
	return nil
}
