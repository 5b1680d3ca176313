package jetsource

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/jetsource/jetsource/subjects"
)

var (
	// ErrConflict is returned by an append whose expectation about the
	// last stored sequence did not hold. The error is a [*ConflictError]
	// that tells the current sequence.
	ErrConflict = errors.New("jetsource: concurrency conflict")

	// ErrInvalidSubject is returned for a malformed subject or filter, or a
	// subject that cannot hold an event (wildcards, a single token). It is
	// the same value as [subjects.ErrInvalidSubject].
	ErrInvalidSubject = subjects.ErrInvalidSubject

	// ErrInvalidEvent is returned for an event that is not a valid
	// CloudEvent (bad attribute, bad extension name, bad header).
	ErrInvalidEvent = errors.New("jetsource: invalid event")

	// ErrInvalidData is returned when the data does not match its content
	// type, such as non-JSON data under a JSON content type.
	ErrInvalidData = errors.New("jetsource: invalid data")

	// ErrPayloadTooLarge is returned when an event does not fit the
	// server's maximum payload or the stream's maximum message size.
	ErrPayloadTooLarge = errors.New("jetsource: payload too large")

	// ErrStreamNotFound is returned when the event stream does not exist
	// or does not capture the subject of an event.
	ErrStreamNotFound = errors.New("jetsource: stream not found")

	// ErrNotFound is returned when nothing matches a lookup.
	ErrNotFound = errors.New("jetsource: not found")

	// ErrPermissionDenied is returned when the server refused an operation
	// for lack of permissions.
	ErrPermissionDenied = errors.New("jetsource: permission denied")

	// ErrUnavailable is returned when the server cannot be reached or did
	// not answer in time.
	ErrUnavailable = errors.New("jetsource: server unavailable")

	// ErrInvalidOption is returned by an option given a bad argument.
	ErrInvalidOption = errors.New("jetsource: invalid option")

	// ErrBatchTooLarge is returned for a transaction of more events than
	// [MaxBatch], or larger than the server accepts in one batch.
	ErrBatchTooLarge = errors.New("jetsource: batch too large")
)

// The sentinels of schema validation and upcasting.
var (
	// ErrSchemaViolation is returned when an event's data does not match
	// the JSON Schema of its type and revision, is not JSON, or names a
	// revision that has no schema. The error is a [*SchemaViolationError].
	ErrSchemaViolation = errors.New("jetsource: schema violation")

	// ErrUnknownEventType is returned by a registry made with
	// [StrictTypes] for an event whose type has no schema.
	ErrUnknownEventType = errors.New("jetsource: unknown event type")

	// ErrInvalidSchema is returned when a schema or an upcaster cannot be
	// registered: a schema that is not JSON or does not compile, a schema
	// file name that names no type or revision, a revision registered
	// twice, an empty type, a revision below 1 or a nil upcaster.
	ErrInvalidSchema = errors.New("jetsource: invalid schema")

	// ErrUpcast is returned when a stored event cannot be lifted to the
	// current revision of its type: a step of the chain has no upcaster,
	// an upcaster failed or changed the event type, or the event's
	// revision is newer than the current one.
	ErrUpcast = errors.New("jetsource: cannot upcast event")
)

// ConflictError describes an optimistic concurrency conflict: the append
// expected the last event matching Filter to be at sequence Expected, but it
// was at Current. It matches [ErrConflict] with [errors.Is], and also the
// underlying cause, when there is one.
type ConflictError struct {
	// Filter is the canonical filter the expectation was checked on.
	Filter string
	// Expected is the sequence the append expected (0: nothing stored yet).
	Expected uint64
	// Current is the sequence of the last matching event when the
	// append was refused, if CurrentKnown is true.
	Current      uint64
	CurrentKnown bool
	// ReadPosition is true when Expected is a read position (the
	// condition of [ExpectNoneAfter]) rather than an exact sequence.
	ReadPosition bool
	// Err is the cause reported by the backend, if any.
	Err error
}

// Error reports the filter and both sequences.
func (e *ConflictError) Error() string {
	if e.ReadPosition {
		return fmt.Sprintf("jetsource: concurrency conflict on %s: an event was stored at sequence %d, after the read position %d", e.Filter, e.Current, e.Expected)
	}
	if e.CurrentKnown {
		return fmt.Sprintf("jetsource: concurrency conflict on %s: expected last sequence %d, current %d", e.Filter, e.Expected, e.Current)
	}
	return fmt.Sprintf("jetsource: concurrency conflict on %s: expected last sequence %d", e.Filter, e.Expected)
}

// Unwrap returns [ErrConflict] and the cause.
func (e *ConflictError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrConflict, e.Err}
	}
	return []error{ErrConflict}
}

// The sentinels of hardening: messages that cannot be decoded, answers
// that cannot be known, subjects that must never be written.
var (
	// ErrMalformed marks a stored message that could not be decoded into
	// an event. Readers never stop on one: they deliver it as an event
	// whose [Event.Malformed] is set, and [Event.MalformedError] returns
	// an error matching ErrMalformed.
	ErrMalformed = errors.New("jetsource: malformed event")

	// ErrUnknownOutcome is returned when an append may or may not have
	// been stored (a timeout, a lost connection, a server that restarted
	// mid-request) and the store could not find out. The error is an
	// [*UnknownOutcomeError] naming the event ids to look up.
	ErrUnknownOutcome = errors.New("jetsource: outcome unknown")

	// ErrForbiddenSubject is returned, before anything is sent, for an
	// append to a subject that jetsource never writes: one outside the
	// event stream's subjects, a system subject ($JS.>, $KV.>, $O.>,
	// $SYS.>, _INBOX.>) or the command bus prefix.
	ErrForbiddenSubject = errors.New("jetsource: subject not writable")

	// ErrStorageFull is returned when the stream or a bucket reached its
	// configured size limit (or the server its storage limit) and refuses
	// new messages.
	ErrStorageFull = errors.New("jetsource: storage full")

	// ErrUnknownTransaction is returned by [Invalidate] and [FindTransaction]
	// for a transaction id that no stored event carries (as its transaction
	// id, or as its event id for an event appended on its own).
	ErrUnknownTransaction = errors.New("jetsource: unknown transaction")
)

// UnknownOutcomeError tells that an append or a transaction may have been
// stored: look the ids up (a retry with the same ids is safe within the
// stream's duplicate window). It matches [ErrUnknownOutcome] and its cause.
type UnknownOutcomeError struct {
	// IDs are the event ids of the append (one) or the transaction.
	IDs []string
	// TransactionID is the transaction id of a batch, if any.
	TransactionID string
	// Err is what made the outcome unknown.
	Err error
}

// Error names the ids to look up.
func (e *UnknownOutcomeError) Error() string {
	what := "event " + strings.Join(e.IDs, ", ")
	if e.TransactionID != "" {
		what = "transaction " + e.TransactionID
	} else if len(e.IDs) > 1 {
		what = fmt.Sprintf("events %s … %s", e.IDs[0], e.IDs[len(e.IDs)-1])
	}
	if e.Err != nil {
		return fmt.Sprintf("jetsource: outcome unknown: %s may have been stored (look it up by id, or retry with the same id): %v", what, e.Err)
	}
	return fmt.Sprintf("jetsource: outcome unknown: %s may have been stored (look it up by id, or retry with the same id)", what)
}

// Unwrap returns [ErrUnknownOutcome] and the cause.
func (e *UnknownOutcomeError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrUnknownOutcome, e.Err}
	}
	return []error{ErrUnknownOutcome}
}

// ErrIDReused is returned by an append whose event id was stored before
// (within the de-duplication window) with different content: the server
// would drop the new event as a duplicate, so the store refuses it instead
// of answering "duplicate". The error is an [*IDReusedError] naming the
// stored sequence. An event with the same content stays a duplicate.
var ErrIDReused = errors.New("jetsource: event id reused with different content")

// IDReusedError tells that an event id was stored before with different
// content (see [ErrIDReused]); nothing new was written.
type IDReusedError struct {
	// ID is the event id.
	ID string
	// Stream and Sequence locate the stored event of that id.
	Stream   string
	Sequence uint64
	// Differs names the attributes that differ: type, subject,
	// datacontenttype, data.
	Differs []string
}

// Error names the id, the stored sequence and what differs.
func (e *IDReusedError) Error() string {
	return fmt.Sprintf("jetsource: event id %q was already stored at sequence %d with other content (it differs in %s); nothing written (use a new id for new content)", e.ID, e.Sequence, strings.Join(e.Differs, ", "))
}

// Unwrap returns [ErrIDReused].
func (e *IDReusedError) Unwrap() error { return ErrIDReused }

// ContentDiffers compares the content of an event being appended with the
// stored event of the same id: type, subject, data content type and data.
// It returns the names of the attributes that differ (nil: the same
// content, a true duplicate).
func ContentDiffers(appended, stored Event) []string {
	var d []string
	if appended.Type != stored.Type {
		d = append(d, "type")
	}
	if appended.Subject != stored.Subject {
		d = append(d, "subject")
	}
	if appended.DataContentType != stored.DataContentType {
		d = append(d, "datacontenttype")
	}
	if !bytes.Equal(appended.Data, stored.Data) {
		d = append(d, "data")
	}
	return d
}
