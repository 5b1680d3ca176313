// Package jetstore is the JetStream event store: it provisions the event
// stream and implements [jetsource.Store] on it.
//
// # Appends: what is atomic
//
// An append publishes the event in CloudEvents binary mode. Its
// conditions travel with it as JetStream expectation headers, which the
// server checks and stores the event on in one step: either the event is
// stored and every condition held at that point, or nothing is stored.
//
//   - [jetsource.ExpectSequence] and [jetsource.ExpectLast] send
//     Nats-Expected-Last-Subject-Sequence with the condition's canonical
//     filter (users.A.> for users.A.added) as
//     Nats-Expected-Last-Subject-Sequence-Subject: the last event matching
//     the filter must be at the expected sequence.
//   - [jetsource.ExpectNoneAfter] (nothing matching since my read) is
//     first resolved by a read to "the last matching event is at m", m at
//     or before the read position, and m is then sent as above. The read
//     and the publish are two steps, but the server's check of m makes
//     the result the same as one: an event stored in between changes the
//     last match and the append is refused.
//   - [Store.AppendBatch] (and [Store.AppendPrepared]) store up to
//     [jetsource.MaxBatch] events as one JetStream atomic batch: all or
//     none, at contiguous sequences, with one transaction id; readers do
//     not see some of its events without the others. Its conditions, one
//     per message, are all checked at the commit against the state before
//     the batch. Several conditions on one [Store.Append] make it a
//     one-event batch. Conditions beyond one per event travel on guard
//     messages (below); where guards are not used they are read from the
//     stream leader and guarded by the stream's expected last sequence on
//     the first message, so they hold as exactly as the others (at the
//     price of a retry when anything else is stored in between).
//
// # Guard messages
//
// One stored message carries one expected-subject-sequence condition. A
// one-event append whose boundary has two filters (users.ann.> and
// groups.g.>, as a command adding a user to a group reads) has one
// condition too many. Outside [WithStrict], on a single-replica stream,
// the extra condition travels on a guard message of its own in the same
// atomic batch, after the events (before them when the condition's filter
// is literally a subject the batch writes): a message on
// [jetsource.GuardSubject] (_jetsource.guard.<stream>, which [Provision]
// adds to the stream's subjects) with no data, the header
// [jetsource.HeaderGuard] (the transaction or event id) and the condition.
// The server checks it with the event's, atomically; so the condition
// fails only because of events matching its filter, never because other
// aggregates were written. A guard takes a stream sequence (the acks name
// the events'), stays in the stream unless the stream allows
// per-message TTLs (then it expires after a second), and is not an event:
// readers of a whole stream skip subjects under _jetsource
// ([jetsource.InternalSubject]), and no append may write there. On a
// replicated stream the stream-wide expectation stays: a guard's wildcard
// filter would not see in-flight writes there (see below), which the
// stream-wide expectation does.
//
// # Subjects an append may write
//
// Before it sends anything, every append ([Store.Append],
// [Store.AppendBatch], [Store.AppendPrepared], and so the publisher and
// the command bus, which append through a store) checks each event's
// subject ([Store.CheckSubject]) and refuses with
// [jetsource.ErrForbiddenSubject], naming the rule: a system subject
// ($JS.>, $KV.>, $O.>, $SYS.>, anything starting with $, _INBOX.>, and
// jetsource's own _jetsource.>), which a publish would turn into a server
// API call (a publish to $JS.API.STREAM.DELETE.EVENTS deletes the
// stream); a reserved prefix, the command bus's cmd.> by default
// ([WithReservedPrefixes]); a subject the stream does not capture (that
// error also matches [jetsource.ErrStreamNotFound]; the stream's subjects
// are read again before such a refusal, so a subject added since the store
// was opened is accepted). [StreamConfig.Validate] refuses stream subjects
// that overlap system subjects or the reserved prefixes.
//
// # Answers after a timeout or a crash
//
// Every answer says what is true. An ack without Duplicate means this call
// stored the event; Duplicate means an earlier call did (within the
// duplicate window); an error means nothing was stored, except
// [jetsource.ErrUnknownOutcome]. When an attempt of an append went
// unanswered (a timeout, a lost connection, a server restart), its
// event may be stored: the store resends it (the same id stores it once),
// and whatever the retry meets (a duplicate, a condition its own event
// broke, a batch refused for holding stored ids, the deadline) it looks
// the ids up before answering. On a stream outside a cluster it asks the
// stream itself, without storing anything: a message with the event's id
// and an expected last message id that cannot hold, which the stream
// answers as a duplicate, with the sequence, exactly when the id is
// stored (it checks ids first; sent on the same connection, it arrives
// after the lost publish). On a clustered stream, which checks that header
// only after replicating, it finds an event as the last message of its
// subject (a batch as the messages before it). Stored by this call: the
// acks, not duplicates; not stored: the error; otherwise an
// [*jetsource.UnknownOutcomeError] naming the ids (and transaction) to
// look up. The lookup may use a quarter of a second past the deadline.
//
// An event whose id was stored with other content (type, subject, content
// type or data) is refused with [jetsource.ErrIDReused], naming the stored
// sequence, instead of answered as a duplicate: the new content would be
// dropped. The store reads the stored event to compare when the server
// reports a duplicate.
//
// A stream whose size limit ([StreamConfig].MaxBytes) is reached refuses
// new events with [jetsource.ErrStorageFull], naming the stream and its
// limit, and keeps its old ones; so does a full account or server.
//
// # Appends: what is idempotent
//
// Every event carries its id as Nats-Msg-Id. Within the stream's
// duplicate window (StreamConfig.Duplicates, 2 minutes by default) the
// stream stores an id once: appending it again stores nothing and returns
// the original sequence with Ack.Duplicate set. After the window the same
// id is stored again. A conditioned append retried after a lost
// acknowledgement, whose condition its own stored event now breaks, is
// recognized (the last matching event has its id) and answered as a
// duplicate too, window or not; so is a batch whose events were all
// stored, contiguously, as that batch. A batch that repeats only some
// stored ids is refused ([jetsource.ErrInvalidEvent]) and writes nothing.
// A stored id with other content is [jetsource.ErrIDReused] (below).
// The store's own retries (below) resend the same ids, so they never
// store an event twice.
//
// # Conditions on single-replica and replicated streams
//
// On a single-replica (R1) stream the server checks expectations under
// the stream's lock against everything stored: conditions are race-free
// against every writer, whatever it sends.
//
// On a replicated stream (R3) the leader checks an expectation against
// the events it has applied, and guards events still in flight (proposed
// to the replicas, not applied) only by the literal subject or filter
// string they name. So, by default, a condition is race-free against
// writers that send a condition on the same filter string (jetsource's
// writers always use the canonical filter) and against writers to the
// literal subject it names, but not against a concurrent write that
// matches its wildcard filter without naming that string: a plain
// publish, an append without a condition, a condition on a different
// filter. Such a write, in flight when the conditioned append is checked,
// is stored before it unseen. The race tests of this package measure it:
// with one such writer among ten conditioned ones, between 1 and 28 of
// the about 50 appends accepted in a 50-round run had a matching event
// stored between their read and themselves.
//
// [WithStrict] closes that gap. Each conditioned append (or batch) reads
// the stream's last sequence L from the stream leader, which answers only
// once it has applied its log, together with the condition's reads (also
// from the leader), checks the conditions, and publishes with
// Nats-Expected-Last-Sequence: L (on the first message of a batch) besides
// the expected subject sequences. The server compares L with the last
// sequence it has assigned, in-flight appends included, so the append is
// stored only if nothing at all was stored or proposed after L; the
// leader has then applied exactly the events up to L, and its check of
// each filter sees all of them. Strict conditions are race-free against
// every writer on R1 and R3.
//
// The price is serialization: a strict append fails whenever anything at
// all was appended to the stream between its read of L and its publish,
// even on unrelated subjects. When its conditions still hold it tries
// again with the new L after a short random pause, up to
// [WithStrictRetries] times (50 by default) and within the context's
// deadline, then gives up with [ErrStreamBusy] (which matches
// [jetsource.ErrUnavailable]; nothing was written). When a condition no
// longer holds it fails with a [*jetsource.ConflictError] as usual.
//
// A strict append also makes one more request, to the stream leader's API
// (slower than a direct get), partly in parallel with its other reads.
// Measured with BenchmarkConditionedAppend on two cores, the default and
// the strict variant interleaved: one writer takes 165-177 µs per strict
// ExpectSequence append against 70-76 µs on R1 (about 2.3 times), and
// 360-465 µs against 180-280 µs on a three-node R3 cluster (1.3 to 2.4
// times); ExpectNoneAfter costs 1.2 to 2 times. Eight writers appending to
// unrelated aggregates at once get about a fifth of the default
// throughput (R1: 4,000 against 20,000 appends/s; R3: 1,250-1,600 against
// 6,600-8,000), and a strict append is retried 0.3 (R1) to 0.5 (R3) times
// on average. On R1 strict mode only costs. Appends without conditions
// are the same in both modes.
//
// Deleting or expiring the last event matching a filter (MaxAge, TTL) makes
// a condition on it fail where it would have held: a spurious conflict,
// never a missed one.
//
// # Clusters starting or electing
//
// A cluster passes through states where a request gets no answer or a
// "temporarily unavailable" one: right after a stream is created its
// replicas do not serve direct gets yet, a stream leader is being elected,
// the meta leader cannot place replicas for a moment. jetstore waits
// these out until the context ends: [New] and [Provision] ask again, a
// direct get nobody answers falls back to the leader's message API, an
// append whose stream has no leader for a moment is sent again (with the
// same id). When the context ends first, the error matches
// [jetsource.ErrUnavailable]. An append to a subject the stream does not
// capture fails at once with [jetsource.ErrForbiddenSubject] (which also
// matches [jetsource.ErrStreamNotFound]).
//
// # Reads
//
// Reads use ordered consumers and yield events one at a time; nothing
// loads a whole stream into memory. A read first looks up the last
// matching sequence (a direct get), so it knows where the stored events
// end and returns at once when nothing matches. A direct get may be
// answered by any replica, which can be a little behind the leader: a read
// position taken from it is older, never wrong.
package jetstore
