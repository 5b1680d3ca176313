package handlers

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jetsource/jetsource"
)

// Option configures a [Processor].
type Option func(*Processor) error

// WithMaxAttempts sets how many times a command is decided at most when
// its boundary keeps changing before its events are stored (default 10);
// after the last conflict the command answers [StatusConflict].
func WithMaxAttempts(n int) Option {
	return func(p *Processor) error {
		if n < 1 {
			return fmt.Errorf("%w: max attempts %d must be at least 1", ErrInvalidOption, n)
		}
		p.maxAttempts = n
		return nil
	}
}

// WithBackoff sets the wait before a command is decided again after a
// conflict: a random duration between min and the attempt's limit, which
// starts at min and doubles with every attempt up to max (defaults 1ms and
// 100ms). Zero min and max retry at once.
func WithBackoff(min, max time.Duration) Option {
	return func(p *Processor) error {
		if min < 0 || max < min {
			return fmt.Errorf("%w: backoff %v to %v", ErrInvalidOption, min, max)
		}
		p.backoffMin, p.backoffMax = min, max
		return nil
	}
}

// WithSchemas checks every command's payload against the JSON Schema
// registered for the command's name as the type (a file InsertUser.json
// in a directory loaded with [jetsource.LoadSchemas]), before anything is
// read or written. A payload that breaks it is rejected with the schema
// violation as the reason. Commands without a schema pass, unless the
// registry was made with [jetsource.StrictTypes].
func WithSchemas(s *jetsource.Schemas) Option {
	return func(p *Processor) error {
		if s == nil {
			return fmt.Errorf("%w: nil schemas", ErrInvalidOption)
		}
		p.schemas = s
		return nil
	}
}

// WithReader sets where decisions read events (default: the store). It is
// the seam for a cache or a snapshot store in front of the event store.
// Appends always go to the store.
func WithReader(r Reader) Option {
	return func(p *Processor) error {
		if r == nil {
			return fmt.Errorf("%w: nil reader", ErrInvalidOption)
		}
		p.reader = r
		return nil
	}
}

// WithMiddleware wraps every handler in the middlewares, the first
// outermost: WithMiddleware(a, b) runs a, then b, then the handler.
func WithMiddleware(mw ...Middleware) Option {
	return func(p *Processor) error {
		for _, m := range mw {
			if m == nil {
				return fmt.Errorf("%w: nil middleware", ErrInvalidOption)
			}
		}
		p.middleware = append(p.middleware, mw...)
		return nil
	}
}

// WithSerialBoundaries sets whether commands of a [Bounded] handler (every
// typed decider's) that decide on the same filters run one at a time in
// this processor (default true). Commands on one busy aggregate then wait
// for each other instead of deciding in parallel, where all but one would
// lose the race and decide again. Correctness never depends on it: the
// append's condition guards against every other writer, this processor's
// commands with other boundaries included.
func WithSerialBoundaries(on bool) Option {
	return func(p *Processor) error {
		p.serialize = on
		return nil
	}
}

// WithLogger sets the logger (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(p *Processor) error {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		p.logger = l
		return nil
	}
}

// SendOption sets the metadata of one command sent with a [Sender].
type SendOption func(*Command) error

// WithCommandID sets the command id, the idempotency key (default: a new
// random id). Sending a command again with the same id does not execute it
// twice: the answer is the original result with Duplicate set.
func WithCommandID(id string) SendOption {
	return func(c *Command) error {
		if id == "" {
			return fmt.Errorf("%w: empty command id", ErrInvalidOption)
		}
		c.ID = id
		return nil
	}
}

// WithActor sets who issues the command.
func WithActor(actor string) SendOption {
	return func(c *Command) error { c.Actor = actor; return nil }
}

// WithCorrelationID sets the conversation the command belongs to (default:
// the command id).
func WithCorrelationID(id string) SendOption {
	return func(c *Command) error { c.CorrelationID = id; return nil }
}

// WithCausationID sets the id of the event or command that caused this
// command.
func WithCausationID(id string) SendOption {
	return func(c *Command) error { c.CausationID = id; return nil }
}

// BusOption configures a [Server] or a [Client].
type BusOption func(*busConfig) error

type busConfig struct {
	prefix         string
	queue          string
	concurrency    int
	timeout        time.Duration
	commandTimeout time.Duration
	drainTimeout   time.Duration
}

func defaultBusConfig() busConfig {
	return busConfig{prefix: DefaultPrefix, queue: DefaultQueue, concurrency: 64, timeout: 10 * time.Second, commandTimeout: 30 * time.Second, drainTimeout: 10 * time.Second}
}

// Defaults of the bus.
const (
	// DefaultPrefix is the first token of command subjects: cmd.<name>.
	DefaultPrefix = "cmd"
	// DefaultQueue is the queue group of command workers.
	DefaultQueue = "jetsource-commands"
)

// WithPrefix sets the subject prefix of commands (default "cmd": the
// command InsertUser travels on cmd.InsertUser). Server and client must
// agree. The prefix is one or more literal tokens.
func WithPrefix(prefix string) BusOption {
	return func(c *busConfig) error {
		if err := validPrefix(prefix); err != nil {
			return err
		}
		c.prefix = prefix
		return nil
	}
}

// WithQueue sets the queue group of a [Server] (default
// "jetsource-commands"): each command goes to one worker of the group.
func WithQueue(queue string) BusOption {
	return func(c *busConfig) error {
		if queue == "" || queue != stripSpace(queue) {
			return fmt.Errorf("%w: queue group %q", ErrInvalidOption, queue)
		}
		c.queue = queue
		return nil
	}
}

// WithConcurrency sets how many commands a [Server] executes at once
// (default 64).
func WithConcurrency(n int) BusOption {
	return func(c *busConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: concurrency %d must be at least 1", ErrInvalidOption, n)
		}
		c.concurrency = n
		return nil
	}
}

// WithRequestTimeout sets how long a [Client] waits for the answer to a
// command whose context has no deadline (default 10s).
func WithRequestTimeout(d time.Duration) BusOption {
	return func(c *busConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: request timeout %v must be positive", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithCommandTimeout sets the time limit of executing one command on a
// [Server] (default 30s).
func WithCommandTimeout(d time.Duration) BusOption {
	return func(c *busConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: command timeout %v must be positive", ErrInvalidOption, d)
		}
		c.commandTimeout = d
		return nil
	}
}

// WithDrainTimeout sets how long [Server.Close] waits for the commands in
// progress before it cancels them (default 10s).
func WithDrainTimeout(d time.Duration) BusOption {
	return func(c *busConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: drain timeout %v must be positive", ErrInvalidOption, d)
		}
		c.drainTimeout = d
		return nil
	}
}

func applyBusOptions(opts []BusOption) (busConfig, error) {
	c := defaultBusConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return c, err
		}
	}
	return c, nil
}
