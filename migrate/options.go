package migrate

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource/publisher"
)

// Option configures a [Runner].
type Option func(*config) error

type config struct {
	js              jetstream.JetStream
	validate        bool
	skip            bool
	onBadRow        func(*RowError)
	progress        func(n int64)
	timeout         time.Duration
	flushEvery      int
	pubOpts         []publisher.Option
	foldConcurrency int
	indexDir        string
	onIndex         func(path, what string)
}

func defaultConfig() config {
	return config{validate: true, timeout: 10 * time.Second, flushEvery: 50000, foldConcurrency: DefaultFoldConcurrency}
}

// WithJetStream lets the runner read the events of a changed row's
// aggregate with batched direct gets on the store's stream (one request
// per aggregate, answered from the stream's subject index) instead of an
// ordered consumer per aggregate: about 1 ms against 15 to 30 ms per
// aggregate. A stream that does not allow direct gets is read through the
// store as without this option.
func WithJetStream(js jetstream.JetStream) Option {
	return func(c *config) error {
		if js == nil {
			return fmt.Errorf("%w: WithJetStream needs a JetStream context", ErrInvalidOption)
		}
		c.js = js
		return nil
	}
}

// WithValidation turns validation on or off (default on): every row of
// every table is read, converted and compared before anything is written
// (the work waits in a temporary file), and a bad row makes the run write
// nothing ([ErrBadRows]). Off, a bad row stops the run where it is (or is
// skipped with [WithSkipBadRows]). Either way the rows are read once.
func WithValidation(on bool) Option {
	return func(c *config) error {
		c.validate = on
		return nil
	}
}

// WithSkipBadRows writes the good rows and skips the bad ones, which are
// counted in [Counts].Bad (validation is off).
func WithSkipBadRows() Option {
	return func(c *config) error {
		c.skip, c.validate = true, false
		return nil
	}
}

// WithBadRowHandler calls f for every bad row found (in the first pass,
// or in the run with [WithSkipBadRows]).
func WithBadRowHandler(f func(*RowError)) Option {
	return func(c *config) error {
		c.onBadRow = f
		return nil
	}
}

// WithProgress calls f with the number of rows read since the previous
// call (from the runner's goroutine, once per row).
func WithProgress(f func(n int64)) Option {
	return func(c *config) error {
		c.progress = f
		return nil
	}
}

// WithTimeout sets the time limit of one request to the store (default
// 10s).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v must be positive", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithFlushEvery sets how many appends are made between two collections
// of their results (default 50000), which bounds the memory a run holds.
func WithFlushEvery(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("%w: flush every %d must be positive", ErrInvalidOption, n)
		}
		c.flushEvery = n
		return nil
	}
}

// WithPublisherOptions passes options to the [publisher.Publisher] the run
// appends through.
func WithPublisherOptions(opts ...publisher.Option) Option {
	return func(c *config) error {
		c.pubOpts = append(c.pubOpts, opts...)
		return nil
	}
}

// WithFoldConcurrency sets how many aggregates of changed rows are folded
// at once (default [DefaultFoldConcurrency]). The changed rows are
// gathered (up to 1024 at a time), their aggregates folded concurrently,
// and their events appended in the order of the rows.
func WithFoldConcurrency(n int) Option {
	return func(c *config) error {
		if n <= 0 || n > 1024 {
			return fmt.Errorf("%w: fold concurrency %d must be from 1 to 1024", ErrInvalidOption, n)
		}
		c.foldConcurrency = n
		return nil
	}
}

// WithIndex keeps the surface of each table in a local index file in dir
// (see [IndexFile]), with [WithJetStream]: the aggregate, sequence,
// statehash and state of each aggregate's latest event. A run brings the
// index up to date from the stream, reading only the messages stored
// after its checkpoint, instead of reading the whole surface, and a
// changed row whose aggregate's state the index knows needs no fold.
//
// The index stays exactly right: an index that is missing or damaged, of
// another stream or server, or of a stream that messages were removed
// from since (a purge, a delete, a limit) is built again from the stream;
// and every append is conditional on the aggregate's last sequence, so an
// aggregate that moved meanwhile is folded afresh and its change
// computed again. Deleting the files is always safe. onIndex (may be nil)
// is called when an index file is created or rebuilt (what says why) or
// cannot be saved.
func WithIndex(dir string, onIndex func(path, what string)) Option {
	return func(c *config) error {
		if dir == "" {
			return fmt.Errorf("%w: WithIndex needs a directory", ErrInvalidOption)
		}
		c.indexDir, c.onIndex = dir, onIndex
		return nil
	}
}
