package projections

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of a [Runner].
const (
	DefaultBatchSize  = 500
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	DefaultTimeout    = 30 * time.Second
)

type runnerOptions struct {
	logger     *slog.Logger
	batch      int
	minBackoff time.Duration
	maxBackoff time.Duration
	timeout    time.Duration
}

func defaultRunnerOptions() runnerOptions {
	return runnerOptions{batch: DefaultBatchSize, minBackoff: DefaultMinBackoff, maxBackoff: DefaultMaxBackoff, timeout: DefaultTimeout}
}

// Option configures a [Runner].
type Option func(*runnerOptions) error

// WithLogger sets the logger of the runner (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(o *runnerOptions) error {
		o.logger = l
		return nil
	}
}

// WithBatchSize sets how many events at most go into one read-model
// transaction (default [DefaultBatchSize]). Larger batches are faster and
// hold the read model's write lock longer.
func WithBatchSize(n int) Option {
	return func(o *runnerOptions) error {
		if n <= 0 {
			return fmt.Errorf("%w: batch size %d must be positive", ErrInvalidOption, n)
		}
		o.batch = n
		return nil
	}
}

// WithBackoff sets the wait after a failure: it starts at min and doubles
// up to max (defaults [DefaultMinBackoff], [DefaultMaxBackoff]).
func WithBackoff(minWait, maxWait time.Duration) Option {
	return func(o *runnerOptions) error {
		if minWait <= 0 || maxWait < minWait {
			return fmt.Errorf("%w: backoff %v to %v: both positive, min not above max", ErrInvalidOption, minWait, maxWait)
		}
		o.minBackoff, o.maxBackoff = minWait, maxWait
		return nil
	}
}

// WithTimeout sets the time limit of one read-model transaction (default
// [DefaultTimeout]). A transaction under way when the runner stops is
// finished within this limit rather than cut off.
func WithTimeout(d time.Duration) Option {
	return func(o *runnerOptions) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v must be positive", ErrInvalidOption, d)
		}
		o.timeout = d
		return nil
	}
}

// Progress reports how far a [Rebuild] got.
type Progress struct {
	// Applied is the number of events applied so far.
	Applied uint64
	// Checkpoint is the sequence of the last event applied.
	Checkpoint uint64
	// Target is the sequence the rebuild reads up to: the last matching
	// event when it started.
	Target uint64
	// Skipped is the number of events skipped so far: malformed messages
	// and events refused with [ErrSkipEvent] (not counted in Applied).
	Skipped uint64
	// Elapsed is the time since the rebuild started.
	Elapsed time.Duration
	// Done is set on the last report, after the swap.
	Done bool
}

type rebuildOptions struct {
	logger   *slog.Logger
	progress func(Progress)
	every    time.Duration
	batch    int
	timeout  time.Duration
}

// RebuildOption configures [Rebuild].
type RebuildOption func(*rebuildOptions) error

// WithProgress calls f with the rebuild's progress at most every interval
// (0: after every transaction), and once more when it is done. f runs on
// the rebuild's goroutine and should return quickly.
func WithProgress(f func(Progress), interval time.Duration) RebuildOption {
	return func(o *rebuildOptions) error {
		if f == nil || interval < 0 {
			return fmt.Errorf("%w: progress needs a function and an interval not negative", ErrInvalidOption)
		}
		o.progress, o.every = f, interval
		return nil
	}
}

// WithRebuildBatchSize sets how many events go into one transaction of the
// rebuild (default 2000).
func WithRebuildBatchSize(n int) RebuildOption {
	return func(o *rebuildOptions) error {
		if n <= 0 {
			return fmt.Errorf("%w: batch size %d must be positive", ErrInvalidOption, n)
		}
		o.batch = n
		return nil
	}
}

// WithRebuildLogger sets the logger of a rebuild, which warns of each
// event skipped (default: none).
func WithRebuildLogger(l *slog.Logger) RebuildOption {
	return func(o *rebuildOptions) error {
		o.logger = l
		return nil
	}
}
