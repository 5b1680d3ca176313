// Package state folds an aggregate's events into its current state, as of
// now or as of an earlier sequence or time, and keeps snapshots so that a
// load reads only the events stored since the last snapshot.
//
// # Reducers
//
// A [Reducer] names a version, an initial state and a function that
// applies one event to a state. [Load] (or a [Loader], which keeps its
// options across loads) folds the events of an aggregate (the subjects
// under aggregate.>) in sequence order and returns the state with the
// sequence of the last event folded (0: none). [MergeReducer] folds the
// data of every event into one JSON document with JSON merge patch
// (RFC 7396, [MergePatch]).
//
// # Malformed events
//
// A message on an aggregate's subjects that is no valid event (published
// by another client, see [jetsource.DecodeStored]) never stops a load: it
// is not given to the reducer, it is logged as a warning ([WithLogger])
// and reported to [OnMalformed], and the load goes on with the events
// after it. Snapshots count it among the events folded, so it is read
// only once.
//
// # Snapshots
//
// With a [SnapshotStore] ([NewKVSnapshots] on a NATS key-value bucket,
// [NewMemorySnapshots] in memory) a load starts from the aggregate's
// snapshot and reads only the events after it. A snapshot records the
// reducer version, the sequence and stored time of the last event folded,
// the number of events folded and the state as JSON. A snapshot of another
// reducer version is ignored, and so is one newer than the point a load
// asks for ([AtSequence], [AtTime]). Loads at the head write a new snapshot
// when they folded [WithSnapshotEvery] events or more on top of the last
// one, or, on JetStream, when they had to scan the stream to find them.
//
// # Reading JetStream without walking the stream
//
// In a stream of interleaved aggregates the events of one aggregate are
// spread over the whole stream, and a filtered consumer walks the blocks
// between them: a full read costs time proportional to the stream. Given
// [WithJetStream], a load instead asks the stream for the number of events
// of each subject of the aggregate (stream info with a subject filter,
// answered from the server's in-memory subject index without reading a
// message). When the count equals the snapshot's, the snapshot is current
// and nothing else is read. When a few events were added, a batched direct
// get (multi_last) fetches the last event of each subject after the
// snapshot; if that accounts for every new event, they are the whole tail.
// Otherwise the tail is read with direct gets (next_by_subj, one event a
// request for the first 64, then batches of 1000), and a snapshot is
// written so the next load is cheap again. No consumer is created. Counts are trusted only on streams that cannot lose events (no
// deletes, purges, limits, TTLs); elsewhere the direct get of the events
// after the snapshot decides freshness.
package state
