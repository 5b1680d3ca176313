package flags

import "errors"

var (
	// ErrInvalidOption is returned by an option given a bad argument.
	ErrInvalidOption = errors.New("flags: invalid option")

	// ErrInvalidName is returned for a flag name that is empty, too long,
	// holds a character other than A-Z a-z 0-9 _ . -, starts or ends with
	// a dot, or has two dots in a row. Such a name is never written.
	ErrInvalidName = errors.New("flags: invalid flag name")

	// ErrInvalidValue is returned for a flag value that is not on or off
	// (true/false, 1/0), and for a bucket entry that is no flag value.
	ErrInvalidValue = errors.New("flags: invalid flag value")

	// ErrInvalidFile is returned for a flag file that cannot be read or
	// does not follow the format. The error is a [*FileError] naming the
	// file, the line and the field when the file could be read.
	ErrInvalidFile = errors.New("flags: invalid flag file")

	// ErrNoBucket is returned by the methods of a [Set] that need the
	// key-value bucket when the Set has none, and by [OpenBucket] when
	// the bucket does not exist.
	ErrNoBucket = errors.New("flags: no flag bucket")

	// ErrWatching is returned by [Set.Watch] and [Set.Refresh] while
	// another Watch or Refresh of the same Set is running.
	ErrWatching = errors.New("flags: already watching")

	// ErrWatchStopped is returned by [Set.Watch] when the bucket's watch
	// ended before its context did (the connection was closed).
	ErrWatchStopped = errors.New("flags: watch stopped")

	// ErrNotRecorded is returned by [Set.Put] and [Set.Unset] when the
	// [Recorder] refused the change. Nothing was written to the bucket.
	ErrNotRecorded = errors.New("flags: change not recorded")

	// ErrNotApplied is returned by [Set.Put] and [Set.Unset] when the
	// change was recorded but the bucket did not take it. The record
	// stays; its change id never appears in the bucket.
	ErrNotApplied = errors.New("flags: change recorded but not applied")

	// ErrUndeclared is returned by [Set.Put] on a Set made with
	// [RequireDeclared] for a flag that the definitions do not declare and
	// the bucket does not hold: most often a typo. Nothing is recorded or
	// written. [AllowUndeclared] creates such a flag anyway.
	ErrUndeclared = errors.New("flags: undeclared flag")

	// ErrConflict is returned, together with [ErrNotApplied], when the
	// flag was changed by someone else between the read of its previous
	// value and the write.
	ErrConflict = errors.New("flags: flag changed concurrently")
)
