package subscriber

import "errors"

var (
	// ErrInvalidOption is returned by [New] for a bad argument or option.
	// Such errors also match [jetsource.ErrInvalidOption].
	ErrInvalidOption = errors.New("subscriber: invalid option")

	// ErrPermanent marks a handler error that no retry can cure (a
	// malformed payload, a rule that will never pass). A handler that
	// returns an error wrapping it (see [Permanent]) has its event
	// dead-lettered at once instead of retried.
	ErrPermanent = errors.New("subscriber: permanent failure")

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
