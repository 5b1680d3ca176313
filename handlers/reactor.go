package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/subscriber"
)

// Reaction is a handler of events written in Go, registered by name in
// [Reactions] and named by a rule's go: field. It is called for each
// event its rule matches, and issues follow-on commands through send,
// which stamps them as [Rule.React] describes (deterministic command ids,
// causation, correlation, actor).
//
// It returns nil when the event is done with (it is acknowledged), an
// error to have the event delivered again after the rule's backoff, or an
// error wrapped with [subscriber.Permanent] to dead-letter it at once.
// Delivery is at least once: a Reaction must be idempotent. Commands sent
// through send are, as long as it sends the same commands in the same
// order for the same event.
type Reaction interface {
	React(ctx context.Context, e jetsource.Event, send Sender) error
}

// ReactionFunc adapts a function to a [Reaction].
type ReactionFunc func(ctx context.Context, e jetsource.Event, send Sender) error

// React calls f.
func (f ReactionFunc) React(ctx context.Context, e jetsource.Event, send Sender) error {
	return f(ctx, e, send)
}

// Reactions maps names to [Reaction]s, for rules with go: NAME. The zero
// value is empty and ready to use; it is safe for concurrent use.
type Reactions struct {
	mu sync.RWMutex
	m  map[string]Reaction
}

// NewReactions returns an empty set of reactions.
func NewReactions() *Reactions { return &Reactions{} }

// Register registers a reaction under a name: 1 to [MaxNameLen] ASCII
// letters, digits, '_' and '-'.
//
// It returns an error matching [ErrInvalidOption] for a bad name, a nil
// reaction or a name registered before.
func (rs *Reactions) Register(name string, r Reaction) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("%w: reaction name: %w", ErrInvalidOption, err)
	}
	if r == nil {
		return fmt.Errorf("%w: nil reaction %s", ErrInvalidOption, name)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if _, dup := rs.m[name]; dup {
		return fmt.Errorf("%w: reaction %s is already registered", ErrInvalidOption, name)
	}
	if rs.m == nil {
		rs.m = map[string]Reaction{}
	}
	rs.m[name] = r
	return nil
}

// Reaction returns the reaction registered under name.
func (rs *Reactions) Reaction(name string) (Reaction, bool) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	r, ok := rs.m[name]
	return r, ok
}

// Names returns the registered names, sorted.
func (rs *Reactions) Names() []string {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	names := make([]string, 0, len(rs.m))
	for n := range rs.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// DurablePrefix is the beginning of the durable consumer name of each
// rule's worker: handler-<rule>.
const DurablePrefix = "handler-"

// ReactorOption configures a [Reactor].
type ReactorOption func(*reactorConfig) error

type reactorConfig struct {
	flags   flags.Enabler
	logger  *slog.Logger
	subOpts []subscriber.Option
	gate    []flags.GateOption
}

// WithFlags sets where the reactor reads the feature flags of its rules
// (a [*flags.Set], a [*flags.Var], [flags.Static]). It is required when a
// rule names a flag. A source that is a [flags.Notifier] wakes paused
// workers at once; another is asked every 100ms. A nil src is an error
// matching [ErrInvalidOption].
func WithFlags(src flags.Enabler) ReactorOption {
	return func(c *reactorConfig) error {
		if src == nil {
			return fmt.Errorf("%w: nil flag source", ErrInvalidOption)
		}
		c.flags = src
		return nil
	}
}

// WithGateOptions passes options to the gate of every flagged rule, such
// as [flags.WhenUnset] or [flags.WithPollInterval].
func WithGateOptions(opts ...flags.GateOption) ReactorOption {
	return func(c *reactorConfig) error {
		c.gate = append(c.gate, opts...)
		return nil
	}
}

// WithReactorLogger sets the logger (default: none). Rejected follow-on
// commands are logged at info level, retried failures at warn level,
// skipped events at debug level.
func WithReactorLogger(l *slog.Logger) ReactorOption {
	return func(c *reactorConfig) error {
		c.logger = l
		return nil
	}
}

// WithSubscriberOptions passes options to the subscriber of every rule,
// such as [subscriber.WithAckWait], [subscriber.WithDrainTimeout] or
// [subscriber.WithDeadLetterStream]. A rule's own filters (on), start,
// and max_deliver, backoff and concurrency when it sets them, come after
// them and win.
func WithSubscriberOptions(opts ...subscriber.Option) ReactorOption {
	return func(c *reactorConfig) error {
		c.subOpts = append(c.subOpts, opts...)
		return nil
	}
}

// Reactor runs rules: one durable worker per rule (a [subscriber.Subscriber]
// with the durable name handler-<rule>, filtered on the rule's on
// subjects), which hands each event to [Rule.React] and sends the
// follow-on commands through a [Sender], a [*Client] or a [*Processor].
//
// A rule with a flag is gated ([flags.Gate]), the flag checked before any
// other work on each event. While the flag is off, a rule with when_off
// skip acknowledges its events without reacting (they are not handled
// later); a rule with when_off pause handles nothing: each of its lanes
// waits at the event it was about to handle, the events delivered
// meanwhile wait behind it (all kept in progress on the server, up to the
// max ack pending), and handling goes on, in order, within moments of
// the flag turning on, without a restart. Stopping a paused reactor hands
// the waiting events back; each such hand-back counts as a delivery
// toward max_deliver.
type Reactor struct {
	workers []*ruleWorker
	log     *slog.Logger

	stopCtx  context.Context // ends at Stop: releases paused handlers
	stopAll  context.CancelFunc
	mu       sync.Mutex
	started  bool
	stopOnce sync.Once
	stopErr  error
	closed   chan struct{}
}

type ruleWorker struct {
	r    *Reactor
	rule *Rule
	send Sender
	gate *flags.Gate
	sub  *subscriber.Subscriber
	log  *slog.Logger
}

// NewReactor returns a reactor running the rules over the events of the
// stream, sending follow-on commands through send. It does no I/O:
// [Reactor.Start] creates the durable consumers.
//
// Options: [WithFlags], [WithGateOptions], [WithReactorLogger],
// [WithSubscriberOptions].
//
// It returns an error matching [ErrInvalidOption] for a nil js, send or
// rule, two rules with one name, a rule with a flag and no [WithFlags], or
// a bad option, and the subscriber's error ([subscriber.ErrInvalidOption])
// for a bad stream name or subscriber option.
func NewReactor(js jetstream.JetStream, stream string, rules []*Rule, send Sender, opts ...ReactorOption) (*Reactor, error) {
	if js == nil || send == nil {
		return nil, fmt.Errorf("%w: NewReactor needs a JetStream and a sender", ErrInvalidOption)
	}
	var cfg reactorConfig
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reactor{log: log, closed: make(chan struct{})}
	r.stopCtx, r.stopAll = context.WithCancel(context.Background())
	seen := map[string]bool{}
	for _, rule := range rules {
		if rule == nil {
			return nil, fmt.Errorf("%w: nil rule", ErrInvalidOption)
		}
		if seen[rule.Name] {
			return nil, fmt.Errorf("%w: two rules named %s", ErrInvalidOption, rule.Name)
		}
		seen[rule.Name] = true
		w := &ruleWorker{r: r, rule: rule, send: send, log: log.With("handler", rule.Name)}
		if rule.Flag != "" {
			if cfg.flags == nil {
				return nil, fmt.Errorf("%w: rule %s is gated by the flag %s: WithFlags is required", ErrInvalidOption, rule.Name, rule.Flag)
			}
			mode := rule.WhenOff
			if mode == 0 {
				mode = flags.SkipWhenOff
			}
			g, err := flags.NewGate(cfg.flags, rule.Flag, mode, cfg.gate...)
			if err != nil {
				return nil, fmt.Errorf("%w: rule %s: %w", ErrInvalidOption, rule.Name, err)
			}
			w.gate = g
		}
		so := append([]subscriber.Option{subscriber.WithLogger(w.log)}, cfg.subOpts...)
		so = append(so, subscriber.WithFilters(rule.On...))
		if rule.MaxDeliver > 0 {
			so = append(so, subscriber.WithMaxDeliver(rule.MaxDeliver))
		}
		if len(rule.Backoff) > 0 {
			so = append(so, subscriber.WithBackoff(rule.Backoff...))
		}
		if rule.Concurrency > 0 {
			so = append(so, subscriber.WithConcurrency(rule.Concurrency))
		}
		if rule.Start != StartAll {
			so = append(so, subscriber.WithDeliverNew())
		}
		sub, err := subscriber.New(js, stream, DurablePrefix+rule.Name, w.handle, so...)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", rule.Name, err)
		}
		w.sub = sub
		r.workers = append(r.workers, w)
	}
	return r, nil
}

// Start starts every rule's worker: each creates or updates its durable
// consumer and begins handling events. It returns once all run; if one
// fails to start, those started are stopped, the reactor is closed and
// the error is returned.
//
// Errors: those of [subscriber.Subscriber.Start] ([jetsource.ErrStreamNotFound],
// [subscriber.ErrDeadLetterCaptured], [jetsource.ErrUnavailable], the
// server's refusal of a consumer, such as a durable created before with
// another start), [subscriber.ErrStarted] when called again, and
// [ErrClosed] after a stop.
func (r *Reactor) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.closed:
		return ErrClosed
	default:
	}
	if r.started {
		return subscriber.ErrStarted
	}
	r.started = true
	for i, w := range r.workers {
		if err := w.sub.Start(ctx); err != nil {
			r.stopOnce.Do(func() {
				r.stopAll()
				for _, s := range r.workers[:i] {
					_ = s.sub.Close()
				}
				close(r.closed)
			})
			return fmt.Errorf("handlers: start the worker of rule %s: %w", w.rule.Name, err)
		}
	}
	r.log.Debug("reactor started", "rules", len(r.workers))
	return nil
}

// Run starts the reactor, runs it until ctx ends, then stops it (see
// [Reactor.Stop]). It returns the error of Start or of the stop.
func (r *Reactor) Run(ctx context.Context) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-r.closed:
	}
	return r.Close()
}

// Stop stops every worker: handlers waiting for a paused flag give their
// event back (it is delivered again later and counts as a delivery), the
// others finish and acknowledge their event, and the events not started
// are handed back to the server. It waits until ctx ends or each worker's
// drain timeout passes.
//
// It returns the workers' errors joined ([subscriber.ErrDrainTimeout]
// when handlers were still running at the deadline), and nil otherwise.
// It is idempotent.
func (r *Reactor) Stop(ctx context.Context) error {
	r.stopOnce.Do(func() {
		r.stopAll()
		errs := make([]error, len(r.workers))
		var wg sync.WaitGroup
		for i, w := range r.workers {
			wg.Go(func() {
				if err := w.sub.Stop(ctx); err != nil {
					errs[i] = fmt.Errorf("rule %s: %w", w.rule.Name, err)
				}
			})
		}
		wg.Wait()
		r.stopErr = errors.Join(errs...)
		close(r.closed)
	})
	<-r.closed
	return r.stopErr
}

// Close stops the reactor as [Reactor.Stop] does, waiting at most each
// worker's drain timeout.
func (r *Reactor) Close() error { return r.Stop(context.Background()) }

// Closed is closed once the reactor has stopped.
func (r *Reactor) Closed() <-chan struct{} { return r.closed }

// Rules returns the names of the rules the reactor runs, in order.
func (r *Reactor) Rules() []string {
	names := make([]string, len(r.workers))
	for i, w := range r.workers {
		names[i] = w.rule.Name
	}
	return names
}

// Lag reports how far the worker of a rule is behind the stream (see
// [subscriber.Subscriber.Lag]).
//
// It returns an error matching [jetsource.ErrNotFound] for a rule the
// reactor does not run or whose durable does not exist yet, and the
// subscriber's errors.
func (r *Reactor) Lag(ctx context.Context, rule string) (subscriber.Lag, error) {
	for _, w := range r.workers {
		if w.rule.Name == rule {
			return w.sub.Lag(ctx)
		}
	}
	return subscriber.Lag{}, fmt.Errorf("%w: rule %s", jetsource.ErrNotFound, rule)
}

// errPaused is the error of an event handed back because the reactor
// stopped while its flag was off.
var errPaused = errors.New("handlers: paused: the flag is off")

// handle is the subscriber handler of a rule: the gate first, then the
// rule.
func (w *ruleWorker) handle(ctx context.Context, e jetsource.Event) error {
	if w.gate != nil {
		switch w.gate.Decide(ctx) {
		case flags.Skip:
			w.log.Debug("flag off: event skipped", "flag", w.gate.Name(), "subject", e.Subject.String(), "sequence", e.Sequence)
			return nil
		case flags.Pause:
			wctx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(w.r.stopCtx, cancel)
			ok, err := w.gate.Allow(wctx)
			stop()
			cancel()
			if !ok {
				if err == nil {
					err = context.Canceled
				}
				return fmt.Errorf("%w (flag %s): %w", errPaused, w.gate.Name(), err)
			}
		}
	}
	out, err := w.rule.React(ctx, e, w.send)
	switch {
	case err != nil:
		w.log.Warn("handler failed", "subject", e.Subject.String(), "sequence", e.Sequence, "err", err)
		return err
	case out.Sent && out.Result.Status == StatusRejected:
		w.log.Info("follow-on command rejected", "subject", e.Subject.String(), "sequence", e.Sequence,
			"command", out.Result.Command, "id", out.Result.ID, "reasons", out.Result.Reasons)
	case out.Sent:
		w.log.Debug("follow-on command", "subject", e.Subject.String(), "sequence", e.Sequence,
			"command", out.Result.Command, "id", out.Result.ID, "status", out.Result.Status, "duplicate", out.Result.Duplicate)
	}
	return nil
}
