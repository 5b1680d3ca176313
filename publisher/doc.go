// Package publisher appends events at high throughput: many appends in
// flight at once, coalesced into atomic batches (group commit), with
// per-aggregate order and expectations.
//
// # Group commit
//
// A server that syncs every write to disk (the jetsource default) syncs
// each message of a plain publish, but an atomic batch only once. The
// [Publisher] therefore gathers the appends that are ready into batches of
// up to [jetsource.MaxBatch] events, with a few batches in flight (8 by
// default; the server allows 50 per stream). A batch is one all-or-nothing unit on the
// server, so when it is refused because one event's condition or id
// fails, the Publisher settles its events one by one: every caller gets
// exactly the result an append of its own would have given.
//
// # Order within an aggregate
//
// Appends to one aggregate (the subject without its last token) are stored
// in the order they were made, and at most one batch per aggregate is in
// flight. An event with [ExpectPrevious] expects the aggregate's last event
// to be the one appended before it through this Publisher, so a writer can
// pipeline a whole chain of conditional appends without waiting for each
// sequence.
//
// Once an append to an aggregate fails, the later appends to that aggregate
// that are still queued are not stored and fail with [ErrAggregateFailed]:
// the stream never holds an event whose predecessor in the pipeline is
// missing. Other aggregates proceed. The failure is cleared by [Publisher.Flush].
//
// # Results
//
// [Publisher.Append] returns a [*Future] at once. [Publisher.Flush] waits for
// every append made since the previous Flush and returns their results in
// the order they were made; [Publisher.Close] flushes and stops.
package publisher
