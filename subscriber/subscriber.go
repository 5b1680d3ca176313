package subscriber

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Handler handles one event. It returns nil once the work is done: only
// then is the event acknowledged. An error makes the event be delivered
// again after the backoff delay, or dead-lettered after the last
// delivery; an error matching [ErrPermanent] dead-letters it at once. A
// panic counts as an error (a [*PanicError], whose stack the dead letter
// keeps). A handler is never called with a malformed message
// ([jetsource.Event.Malformed]): those are dead-lettered at once. The context ends when the subscriber gives up
// waiting for the handler at shutdown.
type Handler func(ctx context.Context, e jetsource.Event) error

// Subscriber is a durable worker: it handles the events of a stream
// through a durable JetStream pull consumer with explicit
// acknowledgements. It is safe for concurrent use. See the package
// documentation for its guarantees.
type Subscriber struct {
	js      jetstream.JetStream
	stream  string
	durable string
	handler Handler
	o       options
	log     *slog.Logger

	mu     sync.Mutex
	state  int // stateNew, stateRunning, stateStopped
	cc     jetstream.ConsumeContext
	lanes  []*lane
	stopMu sync.Mutex // serialises Stop

	hctx       context.Context // handlers' context, cancelled at a hard stop
	hcancel    context.CancelFunc
	lanesDone  sync.WaitGroup
	keeperStop chan struct{}
	keeperDone chan struct{}
	closed     chan struct{}
	stopErr    error

	lastAcked atomic.Uint64
	acked     atomic.Uint64
}

// priorityGroup is the priority group of an exclusive durable.
const priorityGroup = "jetsource"

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// New returns a subscriber for the durable consumer durable on the stream
// stream, handling each event with h. It does no I/O: [Subscriber.Start]
// creates the consumer. Instances that share a durable name share the
// work and must be given the same options.
//
// Options:
//   - [WithFilters]: the subjects to subscribe to (default: all);
//   - [WithConcurrency]: lanes, events handled at once (default 8);
//   - [WithMaxDeliver]: deliveries before dead-lettering (default 5);
//   - [WithBackoff]: the retry schedule (default 1s, 5s, 30s);
//   - [WithAckWait]: the server's redelivery timeout (default 30s);
//   - [WithMaxAckPending]: events unacknowledged at once (default 1000);
//   - [WithDeadLetter], [WithDeadLetterStream]: where dead letters go
//     (default subjects deadletter.<durable>.<subject> in the stream
//     DEADLETTER);
//   - [WithDrainTimeout]: the wait for handlers at shutdown (default 30s);
//   - [WithTimeout]: the limit of server requests (default 5s);
//   - [WithLogger];
//   - [WithStartSequence], [WithDeliverNew]: where a new durable starts;
//   - [WithExclusive]: one instance at a time, with failover.
//
// It returns an error matching [ErrInvalidOption] (and
// [jetsource.ErrInvalidOption]) for a nil js or handler, a stream or
// durable name that is not 1 to 255 of A-Z a-z 0-9 _ -, or a bad option.
func New(js jetstream.JetStream, stream, durable string, h Handler, opts ...Option) (*Subscriber, error) {
	if js == nil {
		return nil, invalid("nil JetStream")
	}
	if h == nil {
		return nil, invalid("nil handler")
	}
	if err := validName(stream); err != nil {
		return nil, invalid("stream: %w", err)
	}
	if err := validName(durable); err != nil {
		return nil, invalid("durable: %w", err)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.deadLetter == "" {
		o.deadLetter = DefaultDeadLetterRoot + "." + durable
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("stream", stream, "durable", durable)
	return &Subscriber{js: js, stream: stream, durable: durable, handler: h, o: o, log: log, closed: make(chan struct{})}, nil
}

// Durable returns the name of the durable consumer.
func (s *Subscriber) Durable() string { return s.durable }

// DeadLetterSubject returns the subject an event on subject is
// dead-lettered on: the dead-letter prefix, a dot, and the subject.
func (s *Subscriber) DeadLetterSubject(subject string) string { return s.o.deadLetter + "." + subject }

// Start checks the stream, provisions the dead-letter stream, creates or
// updates the durable consumer and starts handling events in the
// background. It returns once events flow; stop with [Subscriber.Stop] or
// [Subscriber.Close].
//
// Errors: [jetsource.ErrStreamNotFound] when the stream does not exist,
// [ErrDeadLetterCaptured] when it captures the dead-letter subjects,
// [jetsource.ErrUnavailable] when the server does not answer,
// [ErrStarted] when already running, [ErrClosed] after a stop, or the
// server's refusal of the consumer or the dead-letter stream (an
// existing durable created with another start position, overlapping
// streams).
func (s *Subscriber) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateRunning:
		return ErrStarted
	case stateStopped:
		return ErrClosed
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return fmt.Errorf("subscriber: stream %s: %w", s.stream, mapErr(err))
	}
	info := st.CachedInfo()
	if err := s.checkCapture(info.Config.Subjects); err != nil {
		return err
	}
	if s.o.dlqStream != "" {
		if err := s.provisionDeadLetter(ctx, info.Config.Replicas); err != nil {
			return err
		}
	}
	cons, err := s.js.CreateOrUpdateConsumer(ctx, s.stream, s.consumerConfig())
	if err != nil {
		return fmt.Errorf("subscriber: consumer %s: %w", s.durable, mapErr(err))
	}
	s.hctx, s.hcancel = context.WithCancel(context.WithoutCancel(ctx))
	s.lanes = make([]*lane, s.o.concurrency)
	for i := range s.lanes {
		s.lanes[i] = newLane(s)
	}
	s.lanesDone.Add(len(s.lanes))
	for _, l := range s.lanes {
		go l.run()
	}
	s.keeperStop, s.keeperDone = make(chan struct{}), make(chan struct{})
	go s.keep()
	copts := []jetstream.PullConsumeOpt{jetstream.ConsumeErrHandler(s.consumeErr)}
	if s.o.pinnedTTL > 0 {
		// Pull often enough to keep the pin while idle.
		copts = append(copts, jetstream.PullPriorityGroup(priorityGroup), jetstream.PullExpiry(s.o.pinnedTTL/2))
	}
	cc, err := cons.Consume(s.dispatch, copts...)
	if err != nil {
		s.stopWorkers()
		return fmt.Errorf("subscriber: consume: %w", mapErr(err))
	}
	s.cc = cc
	s.state = stateRunning
	s.log.Debug("subscriber started", "lanes", s.o.concurrency)
	return nil
}

// Run starts the subscriber, handles events until ctx ends, then drains
// within the drain timeout ([WithDrainTimeout]). It returns the error of
// [Subscriber.Start] or of [Subscriber.Stop] ([ErrDrainTimeout]), or nil.
func (s *Subscriber) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.closed:
		return s.stopErr
	}
	return s.Close()
}

// Close stops the subscriber as [Subscriber.Stop] does, waiting at most
// the drain timeout, and returns [ErrDrainTimeout] when handlers were
// still running then. It is idempotent: later calls return the result of
// the first stop.
func (s *Subscriber) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.drainTimeout)
	defer cancel()
	return s.Stop(ctx)
}

// Closed is closed once the subscriber has stopped.
func (s *Subscriber) Closed() <-chan struct{} { return s.closed }

// Stop drains the subscriber: it stops fetching, lets running handlers
// finish and acknowledges their events, and hands every event it holds
// but did not start back to the server for another delivery (see the
// package documentation: order is kept across the hand-back). It waits
// until ctx ends or the drain timeout passes, whichever comes first; the
// handlers still running then see their context cancelled, and their
// events are delivered again after the ack wait.
//
// It returns [ErrDrainTimeout] when handlers were still running at the
// deadline, and nil otherwise; it is idempotent and returns the first
// result to later calls. Stopping a subscriber that never started just
// closes it.
func (s *Subscriber) Stop(ctx context.Context) error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	s.mu.Lock()
	state := s.state
	s.state = stateStopped
	s.mu.Unlock()
	switch state {
	case stateNew:
		close(s.closed)
		return nil
	case stateStopped:
		return s.stopErr
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.drainTimeout)
	defer cancel()

	// 1. Lanes finish the handler they run and start no other.
	for _, l := range s.lanes {
		l.stop()
	}
	// 2. Stop fetching. Connected, drain: what nats.go buffered still
	// reaches dispatch and waits in the lanes, to be handed back below.
	// Disconnected, a drain cannot complete: drop the buffer, whose
	// events come back after the ack wait (after anything handed back).
	nc := s.js.Conn()
	if nc.Status() == nats.CONNECTED {
		s.cc.Drain()
		select {
		case <-s.cc.Closed():
		case <-ctx.Done():
			s.cc.Stop()
		case <-time.After(s.o.timeout):
			s.cc.Stop()
		}
	} else {
		s.cc.Stop()
	}
	done := make(chan struct{})
	go func() { s.lanesDone.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		select {
		case <-done:
		default:
			err = fmt.Errorf("%w: %w", ErrDrainTimeout, ctx.Err())
			s.hcancel()
		}
	}
	// 3. Hand back what was not started, in an order that keeps each
	// aggregate's order on redelivery.
	for _, l := range s.lanes {
		l.handBack()
	}
	close(s.keeperStop)
	<-s.keeperDone
	if nc.Status() == nats.CONNECTED {
		// Send the acknowledgements before returning.
		fctx, fcancel := context.WithTimeout(context.Background(), s.o.timeout)
		if ferr := nc.FlushWithContext(fctx); ferr != nil {
			s.log.Warn("flush at stop", "err", ferr)
		}
		fcancel()
	}
	if err == nil {
		s.hcancel()
	}
	s.stopErr = err
	close(s.closed)
	s.log.Debug("subscriber stopped", "err", err)
	return err
}

// stopWorkers stops the lanes and the keeper after a failed start.
func (s *Subscriber) stopWorkers() {
	for _, l := range s.lanes {
		l.stop()
	}
	s.lanesDone.Wait()
	close(s.keeperStop)
	<-s.keeperDone
	s.hcancel()
}

func (s *Subscriber) consumerConfig() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       s.durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.o.ackWait,
		MaxDeliver:    -1, // the subscriber dead-letters; the server never drops silently
		MaxAckPending: s.o.maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	switch s.o.deliver {
	case deliverNew:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case deliverFrom:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.o.startSeq
	}
	if s.o.pinnedTTL > 0 {
		cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
		cfg.PriorityGroups = []string{priorityGroup}
		cfg.PinnedTTL = s.o.pinnedTTL
	}
	switch len(s.o.filters) {
	case 0:
	case 1:
		cfg.FilterSubject = s.o.filters[0].String()
	default:
		for _, f := range s.o.filters {
			cfg.FilterSubjects = append(cfg.FilterSubjects, f.String())
		}
	}
	return cfg
}

// checkCapture refuses an event stream that captures dead letters.
func (s *Subscriber) checkCapture(streamSubjects []string) error {
	dl, err := subjects.ParseFilter(s.o.deadLetter + ".>")
	if err != nil {
		return invalid("dead-letter prefix: %w", err)
	}
	for _, ss := range streamSubjects {
		f, err := subjects.ParseFilter(ss)
		if err != nil {
			continue
		}
		if f.Overlaps(dl) {
			return fmt.Errorf("%w: stream %s captures %s, which overlaps %s", ErrDeadLetterCaptured, s.stream, ss, dl)
		}
	}
	return nil
}

func (s *Subscriber) consumeErr(_ jetstream.ConsumeContext, err error) {
	s.log.Debug("consume", "err", err)
}

// keep extends the ack wait of every event the subscriber holds, every
// third of the ack wait, until Stop.
func (s *Subscriber) keep() {
	defer close(s.keeperDone)
	t := time.NewTicker(s.o.ackWait / 3)
	defer t.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-s.keeperStop:
			return
		case <-t.C:
		}
		for _, l := range s.lanes {
			msgs = l.held(msgs[:0])
			for _, m := range msgs {
				_ = m.InProgress() // an acknowledged message refuses locally
			}
		}
		clear(msgs)
	}
}

// Lag tells how far the durable is behind the stream.
type Lag struct {
	// Pending is the number of matching events not yet acknowledged:
	// Undelivered plus AckPending.
	Pending uint64 `json:"pending"`
	// Undelivered is the number of matching events never delivered.
	Undelivered uint64 `json:"undelivered"`
	// AckPending is the number of events delivered and not yet
	// acknowledged: being handled, waiting for a retry, or held back
	// behind one.
	AckPending int `json:"ack_pending"`
	// Redelivered is the number of unacknowledged events delivered more
	// than once.
	Redelivered int `json:"redelivered"`
	// LastDelivered is the stream sequence of the last event delivered.
	LastDelivered uint64 `json:"last_delivered"`
	// AckFloor is the stream sequence up to which every event is
	// acknowledged (or dead-lettered).
	AckFloor uint64 `json:"ack_floor"`
	// LastAcked is the highest stream sequence this instance
	// acknowledged (0: none yet).
	LastAcked uint64 `json:"last_acked"`
	// Acked is the number of events this instance acknowledged.
	Acked uint64 `json:"acked"`
}

// Lag reports the durable's backlog as the server sees it, plus what
// this instance acknowledged. It works before Start and after Stop too,
// as long as the durable exists.
//
// Errors: [jetsource.ErrNotFound] when the durable does not exist,
// [jetsource.ErrStreamNotFound], [jetsource.ErrUnavailable].
func (s *Subscriber) Lag(ctx context.Context) (Lag, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	cons, err := s.js.Consumer(ctx, s.stream, s.durable)
	if err != nil {
		return Lag{}, fmt.Errorf("subscriber: lag: %w", mapErr(err))
	}
	info := cons.CachedInfo()
	return Lag{
		Pending:       info.NumPending + uint64(info.NumAckPending),
		Undelivered:   info.NumPending,
		AckPending:    info.NumAckPending,
		Redelivered:   info.NumRedelivered,
		LastDelivered: info.Delivered.Stream,
		AckFloor:      info.AckFloor.Stream,
		LastAcked:     s.lastAcked.Load(),
		Acked:         s.acked.Load(),
	}, nil
}

func (s *Subscriber) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.o.timeout)
}

// mapErr translates nats.go errors into jetsource sentinels, keeping the
// original in the chain.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%w: %w", jetsource.ErrStreamNotFound, err)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("%w: %w", jetsource.ErrNotFound, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoHeartbeat), errors.Is(err, nats.ErrConnectionReconnecting):
		return fmt.Errorf("%w: %w", jetsource.ErrUnavailable, err)
	}
	return err
}
