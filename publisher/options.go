package publisher

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jetsource/jetsource"
)

// Option configures a [Publisher].
type Option func(*options) error

type options struct {
	window      int
	maxBatch    int
	maxInFlight int
	timeout     time.Duration
	logger      *slog.Logger
}

func defaultOptions() options {
	return options{window: 20000, maxBatch: jetsource.MaxBatch, maxInFlight: 8, timeout: 10 * time.Second}
}

// WithWindow bounds the appends queued or in flight (default 20000);
// Append blocks while the window is full.
func WithWindow(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: window %d must be positive", ErrInvalidOption, n)
		}
		o.window = n
		return nil
	}
}

// WithMaxBatch bounds the events of one batch (default and maximum
// [jetsource.MaxBatch]); 1 sends every event on its own.
func WithMaxBatch(n int) Option {
	return func(o *options) error {
		if n <= 0 || n > jetsource.MaxBatch {
			return fmt.Errorf("%w: max batch %d must be between 1 and %d", ErrInvalidOption, n, jetsource.MaxBatch)
		}
		o.maxBatch = n
		return nil
	}
}

// WithMaxInFlight bounds the batches in flight at once (default 8; at
// most 1000, and the server allows 50 per stream). Measured on an embedded
// server, a few large batches in flight beat many: the server commits
// batches one at a time.
func WithMaxInFlight(n int) Option {
	return func(o *options) error {
		if n <= 0 || n > 1000 {
			return fmt.Errorf("%w: batches in flight %d must be between 1 and 1000", ErrInvalidOption, n)
		}
		o.maxInFlight = n
		return nil
	}
}

// WithTimeout sets the time limit of one batch (default 10s).
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v must be positive", ErrInvalidOption, d)
		}
		o.timeout = d
		return nil
	}
}

// WithLogger sets the logger (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.logger = l
		return nil
	}
}

// ExpectPrevious makes an append conditional on the one before it: the
// last event of the event's aggregate must be the event appended before it
// to the same aggregate through the same [Publisher]. Chains of
// conditional appends can so be pipelined. It fails with
// [jetsource.ErrInvalidOption] when there was no earlier append.
func ExpectPrevious() jetsource.AppendOption {
	return func(o *jetsource.AppendOptions) error {
		o.Conditions = append(o.Conditions, jetsource.Condition{Sequence: expectPreviousMarker})
		return nil
	}
}

// expectPreviousMarker marks the condition ExpectPrevious adds: a zero
// filter, which no real condition has.
const expectPreviousMarker = ^uint64(0)
