package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
)

const (
	defaultTimeout = 5 * time.Second
	// DefaultSnapshotEvery is the default of [WithSnapshotEvery].
	DefaultSnapshotEvery = 100
	codeMessageTooLarge  = 10054
)

type config struct {
	snaps       SnapshotStore
	every       int
	onScan      bool
	js          jetstream.JetStream
	stream      string
	logger      *slog.Logger
	timeout     time.Duration
	atSeq       uint64
	atTime      time.Time
	hasAtSeq    bool
	singleRead  int
	onMalformed func(jetsource.Event)
}

func defaultConfig() config {
	return config{every: DefaultSnapshotEvery, onScan: true, timeout: defaultTimeout, singleRead: 64}
}

// Option configures a [Loader] or one load.
type Option func(*config) error

// AtSequence loads the state as of stream sequence seq: only events at or
// before seq are folded, and snapshots after seq are ignored. Sequence 0
// is the state before any event.
func AtSequence(seq uint64) Option {
	return func(c *config) error {
		c.atSeq, c.hasAtSeq = seq, true
		return nil
	}
}

// AtTime loads the state as of time t: only events the stream stored at or
// before t are folded, and snapshots of later events are ignored.
func AtTime(t time.Time) Option {
	return func(c *config) error {
		if t.IsZero() {
			return fmt.Errorf("%w: AtTime needs a time", jetsource.ErrInvalidOption)
		}
		c.atTime = t
		return nil
	}
}

// WithSnapshots keeps snapshots in s (default: none, every load folds
// all events).
func WithSnapshots(s SnapshotStore) Option {
	return func(c *config) error {
		if s == nil {
			return fmt.Errorf("%w: nil snapshot store", jetsource.ErrInvalidOption)
		}
		c.snaps = s
		return nil
	}
}

// WithSnapshotEvery writes a snapshot when a load at the head folded at
// least n events on top of the previous snapshot (default
// [DefaultSnapshotEvery]).
func WithSnapshotEvery(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("%w: snapshot every %d events: must be positive", jetsource.ErrInvalidOption, n)
		}
		c.every = n
		return nil
	}
}

// WithSnapshotOnScan sets whether a load on JetStream ([WithJetStream])
// also writes a snapshot, however few events it folded, when it had to
// scan the stream to find them (default true): the next load then finds
// the snapshot current and reads nothing from the stream.
func WithSnapshotOnScan(on bool) Option {
	return func(c *config) error {
		c.onScan = on
		return nil
	}
}

// WithJetStream lets loads read the stream named stream directly (stream
// info with a subject filter, batched direct gets) instead of through the
// store's consumers, so that a load does not walk the stream. The stream
// must be the store's and allow direct gets (jetstore.Provision sets
// that).
func WithJetStream(js jetstream.JetStream, stream string) Option {
	return func(c *config) error {
		if js == nil || stream == "" {
			return fmt.Errorf("%w: WithJetStream needs a JetStream context and a stream name", jetsource.ErrInvalidOption)
		}
		c.js, c.stream = js, stream
		return nil
	}
}

// OnMalformed calls f with every malformed event a load skips (see
// [jetsource.DecodeStored]), on the loading goroutine, for instance to
// count them. Skipped events are also logged as warnings ([WithLogger]).
func OnMalformed(f func(jetsource.Event)) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("%w: OnMalformed needs a function", jetsource.ErrInvalidOption)
		}
		c.onMalformed = f
		return nil
	}
}

// WithLogger sets the logger for snapshots that could not be written and
// malformed events skipped (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithTimeout sets the time limit of a load whose context has no deadline
// (default 5s).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v must be positive", jetsource.ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// unavailable marks connection and timeout errors with
// [jetsource.ErrUnavailable].
func unavailable(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrDisconnected):
		return fmt.Errorf("%w: %w", jetsource.ErrUnavailable, err)
	}
	return err
}
