// Package jetsource holds the core types of the jetsource event-sourcing
// toolkit: the [Event], the [Store] interface that every backend implements,
// the sentinel errors, and the mapping of events onto NATS messages.
//
// # Events on subjects
//
// Every event is stored on a NATS subject such as users.A.added. The last
// token is the event name, everything before it is the aggregate (users.A),
// and the aggregate's events are selected with the filter users.A.>. The
// [github.com/jetsource/jetsource/subjects] package parses, builds and
// matches these subjects.
//
// # Envelope
//
// Events are CloudEvents in binary mode: attributes travel as ce-* headers,
// percent-encoded where needed, the data content type as Content-Type and
// the data as the message body. A message published with no headers at all
// is still a valid event: its type is derived from the subject, its id from
// the stream name and sequence, and its time from the stream's timestamp.
// See [EncodeHeader] and [DecodeMsg].
//
// # Stores
//
// [Store] is implemented by the JetStream store in
// [github.com/jetsource/jetsource/jetstore] and by [MemoryStore], an
// in-memory store for unit tests. Both pass the compliance suite in
// [github.com/jetsource/jetsource/storetest].
//
// # Errors
//
// Errors are matched with [errors.Is]: [ErrConflict] for an optimistic
// concurrency conflict (see [ConflictError] for the sequences involved),
// [ErrInvalidSubject], [ErrInvalidEvent], [ErrInvalidData],
// [ErrPayloadTooLarge], [ErrStreamNotFound], [ErrNotFound],
// [ErrPermissionDenied], [ErrUnavailable], [ErrInvalidOption],
// [ErrBatchTooLarge], and for schemas [ErrSchemaViolation],
// [ErrUnknownEventType], [ErrInvalidSchema] and [ErrUpcast].
//
// # Schemas
//
// [LoadSchemas] reads a JSON Schema per event type and revision;
// [WithSchemas] wraps a store so that appends are validated before anything
// is written and reads lift old revisions with registered upcasters.
package jetsource
