package subscriber

import (
	"errors"
	"fmt"
	"runtime/debug"
)

var (
	// ErrInvalidOption is returned by [New] for a bad argument or option.
	// Such errors also match [jetsource.ErrInvalidOption].
	ErrInvalidOption = errors.New("subscriber: invalid option")

	// ErrPermanent marks a handler error that no retry can cure (a
	// malformed payload, a rule that will never pass). A handler that
	// returns an error wrapping it (see [Permanent]) has its event
	// dead-lettered at once instead of retried.
	ErrPermanent = errors.New("subscriber: permanent failure")

	// ErrInvalidData is returned by a [JSON] handler for event data that
	// does not decode into its type. It comes wrapped with
	// [ErrPermanent]: the event is dead-lettered at once.
	ErrInvalidData = errors.New("subscriber: event data does not decode")

	// ErrDrainTimeout is returned by [Subscriber.Stop] when handlers were
	// still running at the drain deadline. Their events are not
	// acknowledged and the server delivers them again once the ack wait
	// has passed.
	ErrDrainTimeout = errors.New("subscriber: drain timed out")

	// ErrClosed is returned by [Subscriber.Start] on a subscriber that was
	// stopped: a stopped subscriber cannot start again, make a new one.
	ErrClosed = errors.New("subscriber: closed")

	// ErrStarted is returned by [Subscriber.Start] on a subscriber that is
	// already running.
	ErrStarted = errors.New("subscriber: already started")

	// ErrDeadLetterCaptured is returned by [Subscriber.Start] when the
	// event stream captures the dead-letter subjects: dead letters would
	// then be delivered to the very consumer that gave up on them.
	ErrDeadLetterCaptured = errors.New("subscriber: the event stream captures the dead-letter subjects")
)

// Permanent wraps err so that it matches [ErrPermanent]: a handler returns
// Permanent(err) to dead-letter its event without further retries. It
// returns nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{ErrPermanent, e.err} }

// ErrPanic marks a handler that panicked. The error is a [*PanicError]
// with the panic value and the stack; a dead letter of the event carries
// both ([HeaderError], [HeaderStack]).
var ErrPanic = errors.New("subscriber: handler panicked")

// PanicError is a recovered panic of a handler.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error names the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("subscriber: handler panicked: %v", e.Value) }

// Unwrap returns [ErrPanic] and, when the panic value is an error, that
// error.
func (e *PanicError) Unwrap() []error {
	if err, ok := e.Value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}

// Recovered turns a recovered panic value into a [*PanicError] with the
// current stack; call it from the deferred function that recovered. It
// returns nil for a nil value.
func Recovered(v any) error {
	if v == nil {
		return nil
	}
	return &PanicError{Value: v, Stack: debug.Stack()}
}
