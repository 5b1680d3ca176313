package subscriber

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Option configures a [Subscriber]; see [New] for the list.
type Option func(*options) error

type deliverPolicy int

const (
	deliverAll deliverPolicy = iota
	deliverNew
	deliverFrom
)

type options struct {
	filters       []subjects.Filter
	concurrency   int
	maxDeliver    int
	backoff       []time.Duration
	ackWait       time.Duration
	maxAckPending int
	deadLetter    string // subject prefix; "" until New sets the default
	dlqStream     string
	drainTimeout  time.Duration
	timeout       time.Duration
	logger        *slog.Logger
	deliver       deliverPolicy
	startSeq      uint64
	pinnedTTL     time.Duration // > 0: exclusive
}

// Defaults of the options: lanes, deliveries before dead-lettering, ack
// wait, unacknowledged events at once, drain timeout, request timeout,
// the first token of the default dead-letter prefix
// (DefaultDeadLetterRoot.<durable>) and the dead-letter stream.
const (
	DefaultConcurrency      = 8
	DefaultMaxDeliver       = 5
	DefaultAckWait          = 30 * time.Second
	DefaultMaxAckPending    = 1000
	DefaultDrainTimeout     = 30 * time.Second
	DefaultTimeout          = 5 * time.Second
	DefaultDeadLetterRoot   = "deadletter"
	DefaultDeadLetterStream = "DEADLETTER"
)

// defaultBackoff is the retry schedule when none is given: the delay
// before the second, third and later deliveries of a failed event.
var defaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// DefaultBackoff returns the default retry schedule (1s, 5s, 30s).
func DefaultBackoff() []time.Duration { return append([]time.Duration(nil), defaultBackoff...) }

func defaultOptions() options {
	return options{
		concurrency:   DefaultConcurrency,
		maxDeliver:    DefaultMaxDeliver,
		backoff:       DefaultBackoff(),
		ackWait:       DefaultAckWait,
		maxAckPending: DefaultMaxAckPending,
		dlqStream:     DefaultDeadLetterStream,
		drainTimeout:  DefaultDrainTimeout,
		timeout:       DefaultTimeout,
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrInvalidOption, jetsource.ErrInvalidOption}, args...)...)
}

// WithFilters restricts the subscription to events whose subject matches
// one of the filters (default: every event of the stream). Filters
// covered by another are dropped; overlapping filters are refused, as
// the server refuses them on a consumer.
func WithFilters(fs ...subjects.Filter) Option {
	return func(o *options) error {
		if len(fs) == 0 {
			return invalid("no filters")
		}
		for _, f := range fs {
			if f.IsZero() {
				return invalid("empty filter")
			}
		}
		c := subjects.Canonical(fs...)
		for i := range c {
			for j := i + 1; j < len(c); j++ {
				if c[i].Overlaps(c[j]) {
					return invalid("filters %q and %q overlap", c[i].String(), c[j].String())
				}
			}
		}
		o.filters = c
		return nil
	}
}

// WithConcurrency sets the number of lanes, that is of events handled at
// once (default 8, at most 1024). Events are spread over the lanes by
// aggregate, so one aggregate's events are always handled one at a time.
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 1024 {
			return invalid("concurrency %d must be between 1 and 1024", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithMaxDeliver sets how many times an event is handled before it is
// dead-lettered (default 5; 1: never retried).
func WithMaxDeliver(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalid("max deliver %d must be at least 1", n)
		}
		o.maxDeliver = n
		return nil
	}
}

// WithBackoff sets the retry schedule: after the n-th failed delivery the
// event is delivered again after delays[n-1], the last delay repeating
// (default 1s, 5s, 30s). Every delay must be positive.
func WithBackoff(delays ...time.Duration) Option {
	return func(o *options) error {
		if len(delays) == 0 {
			return invalid("empty backoff schedule")
		}
		for _, d := range delays {
			if d <= 0 {
				return invalid("backoff delay %v must be positive", d)
			}
		}
		o.backoff = append([]time.Duration(nil), delays...)
		return nil
	}
}

// WithAckWait sets how long the server waits for an acknowledgement
// before it delivers an event again (default 30s, at least 100ms). The
// subscriber extends it for events in its hands (being handled or held
// back) every third of the ack wait, so a handler may take longer.
func WithAckWait(d time.Duration) Option {
	return func(o *options) error {
		if d < 100*time.Millisecond {
			return invalid("ack wait %v must be at least 100ms", d)
		}
		o.ackWait = d
		return nil
	}
}

// WithMaxAckPending bounds the events delivered and not yet acknowledged,
// across every instance sharing the durable (default 1000). Events held
// back behind a retry count against it.
func WithMaxAckPending(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalid("max ack pending %d must be at least 1", n)
		}
		o.maxAckPending = n
		return nil
	}
}

// WithDeadLetter sets the subject prefix of dead letters (default
// "deadletter.<durable>"): an event on users.A.added is dead-lettered on
// <prefix>.users.A.added. The prefix must be a literal subject that the
// event stream does not capture.
func WithDeadLetter(prefix string) Option {
	return func(o *options) error {
		if _, err := subjects.Parse(prefix); err != nil {
			return invalid("dead-letter prefix: %w", err)
		}
		o.deadLetter = prefix
		return nil
	}
}

// WithDeadLetterStream names the stream that stores dead letters (default
// "DEADLETTER"). [Subscriber.Start] creates it when it is missing
// (capturing <prefix>.>, file storage, as many replicas as the event
// stream) and adds the prefix to its subjects when it does not capture
// it. The empty name provisions nothing: some stream must then capture
// the dead-letter subjects, or dead-lettering fails and the event is
// retried.
func WithDeadLetterStream(name string) Option {
	return func(o *options) error {
		if name != "" {
			if err := validName(name); err != nil {
				return invalid("dead-letter stream: %w", err)
			}
		}
		o.dlqStream = name
		return nil
	}
}

// WithDrainTimeout bounds how long [Subscriber.Close] and [Subscriber.Run]
// wait for running handlers (default 30s).
func WithDrainTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalid("drain timeout %v must be positive", d)
		}
		o.drainTimeout = d
		return nil
	}
}

// WithTimeout sets the time limit of a server request made without a
// context deadline (default 5s): consumer creation, dead-letter
// publishes, lag queries.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalid("timeout %v must be positive", d)
		}
		o.timeout = d
		return nil
	}
}

// WithLogger sets the logger (default: none). Retries are logged at
// debug level, dead letters and released holds at warn level.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.logger = l
		return nil
	}
}

// WithStartSequence makes a new durable start at stream sequence seq
// (at least 1) instead of the first event. It applies only when the
// durable is created: an existing durable keeps its position, and
// [Subscriber.Start] fails if the durable was made with another start.
func WithStartSequence(seq uint64) Option {
	return func(o *options) error {
		if seq < 1 {
			return invalid("start sequence must be at least 1")
		}
		o.deliver, o.startSeq = deliverFrom, seq
		return nil
	}
}

// WithDeliverNew makes a new durable start with the events stored after
// it was created. Like [WithStartSequence] it applies only at creation.
func WithDeliverNew() Option {
	return func(o *options) error {
		o.deliver, o.startSeq = deliverNew, 0
		return nil
	}
}

// WithExclusive makes the instances sharing the durable take turns
// instead of sharing the work: the server delivers to one instance at a
// time (a JetStream pinned-client priority group), so every event of an
// aggregate is handled by the same instance, in order, retries included.
// When that instance stops or loses its connection, another one takes over
// after ttl (at least 2s) without requests from it; events handed back at
// its stop come to the next instance in order. Every instance of a durable
// must use the same setting: the server refuses an instance that does not
// match the durable's configuration.
func WithExclusive(ttl time.Duration) Option {
	return func(o *options) error {
		if ttl < 2*time.Second {
			return invalid("exclusive ttl %v must be at least 2s", ttl)
		}
		o.pinnedTTL = ttl
		return nil
	}
}

// validName checks a stream or consumer name: 1 to 255 characters among
// A-Z a-z 0-9 _ -.
func validName(s string) error {
	if s == "" || len(s) > 255 {
		return fmt.Errorf("name %q must have 1 to 255 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("name %q may hold only A-Z a-z 0-9 _ -", s)
		}
	}
	return nil
}
