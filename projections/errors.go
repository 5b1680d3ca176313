package projections

import (
	"errors"
	"fmt"
	"runtime/debug"
)

var (
	// ErrInvalidProjection is returned for a projection definition that
	// cannot run: a missing or malformed name, a bad filter, a missing
	// apply function, a table or bucket name that is not allowed.
	ErrInvalidProjection = errors.New("projections: invalid projection")

	// ErrInvalidOption is returned by an option given a bad argument.
	ErrInvalidOption = errors.New("projections: invalid option")

	// ErrCheckpointMoved is returned by [Model.Apply] when the read model's
	// checkpoint is behind the position the caller expected: another
	// writer (a rebuild that was swapped in, an operator reset) changed
	// the read model. Nothing was written; the caller reads the checkpoint
	// again and resumes from it. The error is a [*CheckpointError].
	ErrCheckpointMoved = errors.New("projections: checkpoint moved")

	// ErrConflict is returned when a KV read model's compare-and-set
	// failed: a document or the checkpoint changed under the writer.
	// Nothing of the batch was written.
	ErrConflict = errors.New("projections: read model changed concurrently")

	// ErrApply is returned when a projection's apply function failed on an
	// event. The error is an [*ApplyError] naming the event; nothing of
	// the transaction was written.
	ErrApply = errors.New("projections: apply failed")

	// ErrRebuildConflict is returned by [Rebuild] when the read model was
	// swapped or rebuilt by someone else while the rebuild ran.
	ErrRebuildConflict = errors.New("projections: concurrent rebuild")

	// ErrNotFound is returned for a projection name a runner does not run.
	ErrNotFound = errors.New("projections: no such projection")

	// ErrTooManyWrites is returned when one event changes more documents
	// of a KV read model than one atomic batch holds.
	ErrTooManyWrites = errors.New("projections: too many document writes for one event")
)

// CheckpointError tells where a read model's checkpoint was found when
// it was not where the writer expected it.
type CheckpointError struct {
	// Expected is the checkpoint the writer continued from.
	Expected uint64
	// Current is the checkpoint found in the read model.
	Current uint64
}

// Error reports both checkpoints.
func (e *CheckpointError) Error() string {
	return fmt.Sprintf("projections: checkpoint moved: expected %d, the read model is at %d", e.Expected, e.Current)
}

// Unwrap returns [ErrCheckpointMoved].
func (e *CheckpointError) Unwrap() error { return ErrCheckpointMoved }

// ApplyError is an apply function's failure on one event.
type ApplyError struct {
	// Projection is the projection's name.
	Projection string
	// Sequence and Subject identify the event.
	Sequence uint64
	Subject  string
	// Err is the apply function's error.
	Err error
}

// Error names the projection, the event and the cause.
func (e *ApplyError) Error() string {
	return fmt.Sprintf("projections: %s: apply event %d (%s): %v", e.Projection, e.Sequence, e.Subject, e.Err)
}

// Unwrap returns [ErrApply] and the cause.
func (e *ApplyError) Unwrap() []error { return []error{ErrApply, e.Err} }

// ErrSkipEvent is returned by an apply function (of [SQL], [KV] or
// [Documents]) for an event it cannot take and that no retry will cure,
// such as data that is not what the projection expects. The event is
// then skipped: it is logged as a warning and counted ([Status.Skipped],
// [Progress.Skipped]), and the checkpoint moves past it with the rest of
// the batch. In a KV projection the skipped event's writes are dropped;
// in an SQL projection they are kept, so return it before writing.
// Wrap it with the reason: fmt.Errorf("%w: ...", ErrSkipEvent).
var ErrSkipEvent = errors.New("projections: event skipped")

// ErrPanic marks an apply function (or a [Model]) that panicked. The
// error is a [*PanicError], inside an [*ApplyError] naming the event. A
// projection never skips an event silently, so a panic is handled as any
// failure of apply: the runner records it in the read model, logs it
// and retries the event after its backoff, while the process and the
// other projections go on; [Rebuild] fails with it.
var ErrPanic = errors.New("projections: apply panicked")

// PanicError is a recovered panic of an apply function.
type PanicError struct {
	// Value is what the function panicked with.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error names the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns [ErrPanic].
func (e *PanicError) Unwrap() error { return ErrPanic }

func recovered(v any) error { return &PanicError{Value: v, Stack: debug.Stack()} }
