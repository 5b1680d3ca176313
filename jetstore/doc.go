// Package jetstore is the JetStream event store: it provisions the event
// stream and implements [jetsource.Store] on it.
//
// # Appends
//
// An append publishes the event in CloudEvents binary mode with the event
// id as Nats-Msg-Id, so the stream stores an id once within its
// duplicate window and answers a repeated append with the original
// sequence. With [jetsource.ExpectSequence] the append carries
// Nats-Expected-Last-Subject-Sequence with the aggregate's canonical filter
// (users.A.> for users.A.added) as Nats-Expected-Last-Subject-Sequence-Subject:
// the server stores the event only if the last event of the aggregate is
// still at the expected sequence. On a replicated stream that check is
// race-free only while every writer to the aggregate uses the same filter
// string, which jetsource guarantees for its own writers.
//
// # Reads
//
// Reads use ordered consumers and yield events one at a time; nothing
// loads a whole stream into memory. A read first looks up the last
// matching sequence (a direct get), so it knows where the stored events
// end and returns at once when nothing matches.
package jetstore
