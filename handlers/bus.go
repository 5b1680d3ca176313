package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Server serves a processor's commands over NATS request/reply: each
// registered command name on its own subject <prefix>.<name>, in a queue
// group, so that any number of servers share the commands and each command
// goes to one of them. The request body is the JSON payload, the headers
// carry the metadata ([HeaderCommandID], [HeaderActor],
// [HeaderCorrelationID], [HeaderCausationID]), and the reply is the
// [Result] as JSON.
type Server struct {
	nc   *nats.Conn
	p    *Processor
	cfg  busConfig
	subs []*nats.Subscription
	sem  chan struct{}

	// queue holds the commands received and not yet started, of every
	// name, in the order they came; the dispatcher starts them in that
	// order as slots of sem free up. drained is closed once no
	// subscription delivers any more; dispatched once the dispatcher
	// has returned.
	queue      chan *nats.Msg
	drained    chan struct{}
	dispatched chan struct{}
	received   atomic.Uint64

	ctx    context.Context // of the commands in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// mu orders taking on a command (wg.Add) before Close waits for them.
	mu      sync.Mutex
	waiting bool

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error

	expired atomic.Uint64
}

// Serve subscribes to the commands of the processor's registry (those
// registered now) and serves them until ctx ends or [Server.Close] is
// called. It returns once the subscriptions are in place on the server.
//
// Commands are started in the order they arrive, whatever their name:
// while all [WithConcurrency] slots are busy, a command waits behind
// those received before it, so that a frequent command does not wait
// longer than a rare one.
//
// Options: [WithPrefix], [WithQueue], [WithConcurrency],
// [WithCommandTimeout], [WithDrainTimeout]. It returns an error matching
// [ErrInvalidOption] for a bad option, a nil connection or processor, or a
// registry with no commands, and the connection's error when subscribing
// fails.
func Serve(ctx context.Context, nc *nats.Conn, p *Processor, opts ...BusOption) (*Server, error) {
	if nc == nil || p == nil {
		return nil, fmt.Errorf("%w: Serve needs a connection and a processor", ErrInvalidOption)
	}
	cfg, err := applyBusOptions(opts)
	if err != nil {
		return nil, err
	}
	names := p.registry.Names()
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: the registry holds no command", ErrInvalidOption)
	}
	s := &Server{nc: nc, p: p, cfg: cfg, sem: make(chan struct{}, cfg.concurrency), closed: make(chan struct{}),
		queue: make(chan *nats.Msg, max(queueLen, cfg.concurrency)), drained: make(chan struct{}), dispatched: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go s.dispatch()
	fail := func(err error) (*Server, error) {
		s.unsubscribe()
		s.cancel()
		<-s.dispatched
		return nil, err
	}
	for _, name := range names {
		sub, err := nc.QueueSubscribe(cfg.prefix+"."+name, cfg.queue, s.receive)
		if err != nil {
			return fail(fmt.Errorf("handlers: subscribe to %s.%s: %w", cfg.prefix, name, err))
		}
		s.subs = append(s.subs, sub)
	}
	fctx, fcancel := context.WithTimeout(ctx, cfg.timeout)
	err = nc.FlushWithContext(fctx)
	fcancel()
	if err != nil {
		return fail(fmt.Errorf("%w: subscribe to commands: %w", jetsource.ErrUnavailable, err))
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			go s.Close()
		case <-s.closed:
		case <-s.ctx.Done():
		}
	}()
	return s, nil
}

// queueLen is how many received commands wait for a slot in the order
// they came. Beyond it a subscription waits to hand on its next command,
// and commands of different names are no longer started strictly in
// order.
const queueLen = 1 << 14

// receive runs in the goroutine of a command name's subscription: it
// puts the command in the queue shared by all names. It does not wait for
// a free slot, which would start one command per name in turn and let a
// frequent command wait behind every rare one.
func (s *Server) receive(m *nats.Msg) {
	select {
	case s.queue <- m:
		s.received.Add(1)
	case <-s.ctx.Done():
	}
}

// dispatch starts the queued commands in order, each once a slot is
// free, until the subscriptions are drained and the queue is empty, or
// the server's context ends.
func (s *Server) dispatch() {
	defer close(s.dispatched)
	for {
		select {
		case m := <-s.queue:
			s.start(m)
		case <-s.drained:
			for {
				select {
				case m := <-s.queue:
					s.start(m)
				default:
					return
				}
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// start waits for a free slot, then executes the command in a goroutine
// of its own.
func (s *Server) start(m *nats.Msg) {
	select {
	case s.sem <- struct{}{}:
	case <-s.ctx.Done():
		return
	}
	s.mu.Lock()
	if s.ctx.Err() != nil || s.waiting {
		s.mu.Unlock()
		<-s.sem
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() { <-s.sem; s.wg.Done() }()
		s.handle(m)
	}()
}

// handle executes one command and answers it. A command whose sender's
// deadline ([HeaderDeadline]) has passed is not started: it is answered
// with [ErrExpired] and counted ([Server.Expired]). Otherwise it runs
// until the command timeout or that deadline, whichever comes first, so
// that no event is recorded after the sender gave up.
func (s *Server) handle(m *nats.Msg) {
	var res Result
	cmd, err := CommandFromMsg(s.cfg.prefix, m.Subject, m.Header, m.Data)
	deadline, derr := commandDeadline(m.Header)
	switch {
	case err != nil:
		res = rejected(Command{Name: strings.TrimPrefix(m.Subject, s.cfg.prefix+".")}, err)
	case derr != nil:
		res = rejected(cmd, derr)
	case !deadline.IsZero() && !time.Now().Before(deadline):
		s.expired.Add(1)
		s.p.logger.Info("command expired before it started", "command", cmd.Name, "id", cmd.ID, "deadline", deadline)
		res = failed(cmd, fmt.Errorf("%w: %s (id %s): the sender's deadline %s passed before a worker took it; nothing was written",
			ErrExpired, cmd.Name, cmd.ID, deadline.Format(time.RFC3339Nano)))
	default:
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.commandTimeout)
		if !deadline.IsZero() {
			var dcancel context.CancelFunc
			ctx, dcancel = context.WithDeadlineCause(ctx, deadline, fmt.Errorf("%w: the sender's deadline passed", ErrExpired))
			defer dcancel()
		}
		res = s.p.Execute(ctx, cmd)
		cancel()
	}
	if m.Reply == "" {
		return
	}
	body, err := json.Marshal(res)
	if err != nil {
		body = []byte(`{"status":"error","error":"cannot encode the result"}`)
	}
	reply := &nats.Msg{Subject: m.Reply, Data: body, Header: nats.Header{jetsource.HeaderContentType: {"application/json"}}}
	if err := s.nc.PublishMsg(reply); err != nil {
		s.p.logger.Warn("cannot answer a command", "command", cmd.Name, "id", cmd.ID, "error", err)
	}
}

// Received returns how many commands this server has received (queued
// for a slot, started or done).
func (s *Server) Received() uint64 { return s.received.Load() }

// Expired returns how many commands this server did not start because
// their sender's deadline ([HeaderDeadline]) had passed when a worker
// took them.
func (s *Server) Expired() uint64 { return s.expired.Load() }

// commandDeadline reads [HeaderDeadline]: the zero time when it is
// absent, an error matching [ErrInvalidCommand] when it is no RFC 3339
// time.
func commandDeadline(h nats.Header) (time.Time, error) {
	v := h.Get(HeaderDeadline)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: header %s: %q is no RFC 3339 time", ErrInvalidCommand, HeaderDeadline, v)
	}
	return t, nil
}

// Close stops taking commands, lets those received finish (cancelling
// them after the drain timeout) and returns. It is idempotent and safe to
// call concurrently; it does not close the connection.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, sub := range s.subs {
			if err := sub.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
				errs = append(errs, err)
			}
		}
		deadline := time.NewTimer(s.cfg.drainTimeout)
		defer deadline.Stop()
		for _, sub := range s.subs {
			ch := sub.StatusChanged(nats.SubscriptionClosed)
			if !sub.IsValid() {
				continue
			}
			select {
			case <-ch:
				continue
			case <-deadline.C:
			}
			s.cancel()
			s.unsubscribe()
			break
		}
		// The commands received are queued: start them (the dispatcher
		// returns at once when the deadline passed above).
		close(s.drained)
		select {
		case <-s.dispatched:
		case <-deadline.C:
			s.cancel()
			<-s.dispatched
		}
		close(s.closed)
		s.mu.Lock()
		s.waiting = true // no command is taken on from here
		s.mu.Unlock()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-deadline.C:
			s.cancel()
			<-done
		}
		s.cancel()
		s.closeErr = errors.Join(errs...)
	})
	<-s.closed
	return s.closeErr
}

// Closed is closed once [Server.Close] has begun and no new command is
// taken.
func (s *Server) Closed() <-chan struct{} { return s.closed }

func (s *Server) unsubscribe() {
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
}

// Client sends commands to the [Server]s on the bus. It is safe for
// concurrent use.
type Client struct {
	nc  *nats.Conn
	cfg busConfig
}

// NewClient returns a client sending commands over the connection.
//
// Options: [WithPrefix], [WithRequestTimeout]. It returns an error
// matching [ErrInvalidOption] for a nil connection or a bad option.
func NewClient(nc *nats.Conn, opts ...BusOption) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOption)
	}
	cfg, err := applyBusOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Client{nc: nc, cfg: cfg}, nil
}

// Send sends a command and waits for its result: the payload is encoded
// as JSON unless it is a json.RawMessage or []byte of JSON (nil: no
// payload); a new command id is made unless [WithCommandID] gives one.
// The command carries its deadline, ctx's or else now plus the request
// timeout ([WithRequestTimeout]), in [HeaderDeadline]: a worker that
// takes it later does not execute it, and none records its events after
// it.
// Sending again with the same id after an error or a timeout is safe: the
// command is executed once.
//
// It returns an error matching [ErrInvalidCommand] when the command cannot
// be built, [ErrUnknownCommand] when no server serves the name (no
// responders), [jetsource.ErrUnavailable] when no answer came in time or
// the connection failed, and [ErrCommandFailed] for an answer that is not
// a result. Rejections, conflicts and errors of the command itself are in
// the result, with a nil error.
func (c *Client) Send(ctx context.Context, name string, payload any, opts ...SendOption) (Result, error) {
	cmd, err := buildCommand(name, payload, opts)
	if err != nil {
		return Result{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	msg := &nats.Msg{Subject: c.cfg.prefix + "." + cmd.Name, Header: cmd.Header(), Data: cmd.Data}
	if deadline, ok := ctx.Deadline(); ok {
		msg.Header.Set(HeaderDeadline, deadline.UTC().Format(time.RFC3339Nano))
	}
	reply, err := c.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return Result{}, fmt.Errorf("%w: %s: no worker serves %s", ErrUnknownCommand, cmd.Name, msg.Subject)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return Result{}, fmt.Errorf("%w: command %s (id %s): no answer in time; sending it again with the same id is safe: %w", jetsource.ErrUnavailable, cmd.Name, cmd.ID, err)
	case errors.Is(err, context.Canceled):
		return Result{}, err
	case err != nil:
		return Result{}, fmt.Errorf("%w: command %s: %w", jetsource.ErrUnavailable, cmd.Name, err)
	}
	var res Result
	if err := json.Unmarshal(reply.Data, &res); err != nil || res.Status == "" {
		return Result{}, fmt.Errorf("%w: command %s: the answer is not a result: %q", ErrCommandFailed, cmd.Name, truncate(reply.Data, 200))
	}
	return res, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func validPrefix(prefix string) error {
	s, err := subjects.Parse(prefix)
	if err != nil || s.String() != prefix {
		return fmt.Errorf("%w: command subject prefix %q must be literal subject tokens", ErrInvalidOption, prefix)
	}
	return nil
}

func stripSpace(s string) string {
	return strings.TrimFunc(strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return -1
		}
		return r
	}, s), unicode.IsSpace)
}
