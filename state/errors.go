package state

import "errors"

var (
	// ErrSnapshotNotFound is returned by [SnapshotStore.Get] when the
	// aggregate has no snapshot.
	ErrSnapshotNotFound = errors.New("state: snapshot not found")

	// ErrBucketNotFound is returned by [OpenKVSnapshots] when the bucket
	// does not exist.
	ErrBucketNotFound = errors.New("state: snapshot bucket not found")

	// ErrReducer is returned when a reducer's Apply fails; the error also
	// wraps the reducer's error and names the event.
	ErrReducer = errors.New("state: reducer failed")
)
