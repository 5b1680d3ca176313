// Package projections builds read models from the event stream: each
// projection names the events it reads (subject filters) and applies them
// to a read model whose checkpoint, the stream sequence of the last event
// applied, commits atomically with the read model's change.
//
// # Feed and checkpoints
//
// A [Runner] reads each projection's events with an ordered, ephemeral
// read of the store ([Source.Read] with Follow) from the checkpoint plus
// one. No durable consumer is needed: the checkpoint lives in the read
// model, in the same transaction as the rows or documents, so it can never
// disagree with them. Events arrive at least once (after a crash, the
// events after the last committed checkpoint are read again); a read
// model skips events at or below its checkpoint, so each event takes
// effect exactly once. Several events go into one transaction
// ([WithBatchSize]).
//
// # Read models
//
//   - SQL ([SQL], [NewSQL], [OpenSQLite]): SQLite through the pure Go
//     driver modernc.org/sqlite in WAL mode. The rows and the checkpoint
//     row (table [CheckpointTable]) change in one SQL transaction.
//   - NATS KV ([KV], [NewKV]): documents in a bucket. A batch's document
//     writes and the checkpoint document are one JetStream atomic batch,
//     each write expecting the revision it was computed from; see
//     [KVProjection] for the exact guarantee.
//   - Your own: implement [Projection].
//
// [Documents] defines projections that need no code: events fold into one
// JSON document per entity by JSON merge patch ([MergePatch], RFC 7396).
//
// # Rebuild
//
// [Rebuild] builds a fresh read model (new tables, or a new bucket) from
// the whole stream and swaps it in atomically, with progress reports.
// Runners of the projection notice the swap and continue from the new
// checkpoint.
//
// # Malformed events, bad data and panics
//
// No message stops a projection. A message in the stream that is no valid
// event ([jetsource.Event.Malformed]) is skipped by the read models of
// this package: the apply function of an [SQL] or [KV] projection does
// not see it (unless it sets ApplyMalformed), a warning is logged, it is
// counted ([Status.Skipped], [Progress.Skipped]) and the checkpoint moves
// past it with its batch. An apply function skips an event it cannot
// take by returning [ErrSkipEvent]; [Documents] does so for JSON data
// that is not a JSON object. A panic of an apply function is an error
// ([ErrPanic], with the stack): a projection never drops an event
// silently, so the runner keeps it at that event, records and logs the
// panic and retries with backoff, while the process and the other
// projections go on; a rebuild fails and leaves the live read model as
// it was.
//
// # Status
//
// [StatusOf] and [Runner.Status] report each projection's checkpoint, the
// last matching sequence in the stream, the lag between them and the last
// error, which runners also record in the read model.
package projections
