package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jetsource/jetsource"
)

// Runner runs projections: each reads the events matching its filters
// from the source, starting after its read model's checkpoint, and applies
// them in batches, each batch one transaction with the checkpoint. The
// feed is an ordered, ephemeral read of the stream (no durable consumer):
// the read model's checkpoint is the only record of progress, so delivery
// is at least once and the effect exactly once.
//
// A failure (the server went away, an apply function failed or panicked,
// the read model refused a write) is logged and recorded in the read
// model; the projection then waits (backing off) and resumes from its
// checkpoint. An event whose apply failed is retried alone, so the events
// before it in its batch are committed. A panic never ends the process:
// the projection stays at the event, reporting the panic, while the
// others go on.
//
// Malformed messages ([jetsource.Event.Malformed]) and events an apply
// function refuses with [ErrSkipEvent] are skipped: logged as a warning,
// counted ([Status.Skipped]), and the checkpoint moves past them with
// their batch.
type Runner struct {
	src   Source
	projs []*runState
	o     runnerOptions
	log   *slog.Logger

	mu      sync.Mutex
	cancel  context.CancelFunc
	started bool
	stopped bool
	running bool
	closed  chan struct{}
}

type runState struct {
	p Projection

	mu         sync.Mutex
	checkpoint uint64
	lastErr    error
	lastErrAt  time.Time
	errSeq     uint64
	skipped    uint64
	lastSkip   Skipped
}

// NewRunner returns a runner of the projections. Options: [WithLogger],
// [WithBatchSize], [WithBackoff], [WithTimeout].
//
// Errors: [ErrInvalidOption] for a bad option, [ErrInvalidProjection] for
// no projections, a nil one or two with the same name.
func NewRunner(src Source, projs []Projection, opts ...Option) (*Runner, error) {
	o := defaultRunnerOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if src == nil {
		return nil, fmt.Errorf("%w: no event source", ErrInvalidOption)
	}
	if len(projs) == 0 {
		return nil, fmt.Errorf("%w: no projections to run", ErrInvalidProjection)
	}
	r := &Runner{src: src, o: o, log: o.logger, closed: make(chan struct{})}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for _, p := range projs {
		if p == nil {
			return nil, fmt.Errorf("%w: nil projection", ErrInvalidProjection)
		}
		if seen[p.Name()] {
			return nil, fmt.Errorf("%w: two projections are named %q", ErrInvalidProjection, p.Name())
		}
		seen[p.Name()] = true
		r.projs = append(r.projs, &runState{p: p})
	}
	return r, nil
}

// Run runs every projection until ctx ends or [Runner.Close] is called,
// then returns nil once each has finished its current transaction (within
// the [WithTimeout] limit). Failures do not stop it: each projection
// retries on its own. Run may be called once; after Close it returns at
// once.
//
// Errors: [ErrInvalidOption] when Run was called before.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return fmt.Errorf("%w: Run was called before", ErrInvalidOption)
	}
	r.started = true
	if r.stopped {
		r.mu.Unlock()
		close(r.closed)
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	r.cancel, r.running = cancel, true
	r.mu.Unlock()
	defer close(r.closed)
	defer cancel()
	var wg sync.WaitGroup
	for _, ps := range r.projs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, ps)
		}()
	}
	wg.Wait()
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
	return nil
}

// Close stops the runner and waits until Run has returned or ctx ends.
// It is idempotent; a Run that begins after Close returns at once.
//
// Errors: ctx's error when Run did not return in time.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	r.stopped = true
	cancel, started := r.cancel, r.started
	r.mu.Unlock()
	if !started {
		return nil
	}
	if cancel != nil {
		cancel()
	}
	select {
	case <-r.closed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Closed returns a channel closed when Run has returned.
func (r *Runner) Closed() <-chan struct{} { return r.closed }

// Projections returns the projections the runner runs.
func (r *Runner) Projections() []Projection {
	out := make([]Projection, len(r.projs))
	for i, ps := range r.projs {
		out[i] = ps.p
	}
	return out
}

// Status returns the status of every projection: checkpoint, head, lag
// and last error, in the order given to [NewRunner].
//
// Errors: those of the read models and the source; the statuses gathered
// so far are returned with the first error.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	r.mu.Lock()
	running := r.running
	r.mu.Unlock()
	out := make([]Status, 0, len(r.projs))
	for _, ps := range r.projs {
		st, err := StatusOf(ctx, r.src, ps.p)
		if err != nil {
			return out, err
		}
		st.Running = running
		ps.mu.Lock()
		if ps.lastErr != nil && ps.lastErrAt.After(st.LastErrorAt) {
			st.LastError, st.LastErrorAt, st.ErrorSequence = ps.lastErr.Error(), ps.lastErrAt, ps.errSeq
		}
		st.Skipped = ps.skipped
		if ps.skipped > 0 {
			last := ps.lastSkip
			st.LastSkipped = &last
		}
		ps.mu.Unlock()
		out = append(out, st)
	}
	return out, nil
}

// idleCheck is how long a runner waits for events before it checks that
// its read model's checkpoint is still where it left it.
const idleCheck = time.Second

// loop runs one projection until ctx ends.
func (r *Runner) loop(ctx context.Context, ps *runState) {
	wait := r.o.minBackoff
	var careful uint64 // events up to here are applied one per transaction
	log := r.log.With("projection", ps.p.Name())
	for ctx.Err() == nil {
		progressed, err := r.runOnce(ctx, ps, &careful, log)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			wait = r.o.minBackoff
		}
		var seq uint64
		var ae *ApplyError
		if errors.As(err, &ae) {
			seq = ae.Sequence
			careful = max(careful, ae.Sequence)
		}
		if errors.Is(err, ErrCheckpointMoved) || errors.Is(err, ErrConflict) {
			// Someone else changed the read model: resume from its
			// checkpoint after a short random pause (two writers must
			// not spin against each other).
			log.Info("read model changed, resuming from its checkpoint", "err", err)
			if !sleepCtx(ctx, time.Duration(rand.Int64N(int64(r.o.minBackoff)+1))) {
				return
			}
			continue
		}
		if err == nil {
			// The feed ended without an error (a closed connection the
			// read reported as done): read again.
			if !sleepCtx(ctx, wait) {
				return
			}
			continue
		}
		ps.mu.Lock()
		ps.lastErr, ps.lastErrAt, ps.errSeq = err, time.Now(), seq
		ps.mu.Unlock()
		log.Warn("projection failed, retrying", "err", err, "retry_in", wait)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.timeout)
		if rerr := ps.p.RecordError(rctx, seq, err); rerr != nil {
			log.Debug("cannot record the error in the read model", "err", rerr)
		}
		cancel()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, r.o.maxBackoff)
	}
}

// runOnce reads from the checkpoint and applies batches until an error or
// the end of ctx. progressed tells whether any batch was committed. A
// panic of the projection is returned as an error.
func (r *Runner) runOnce(ctx context.Context, ps *runState, careful *uint64, log *slog.Logger) (progressed bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("projections: %s: %w", ps.p.Name(), recovered(v))
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, r.o.timeout)
	cp, err := ps.p.Checkpoint(cctx)
	cancel()
	if err != nil {
		return false, fmt.Errorf("read checkpoint: %w", err)
	}
	ps.setCheckpoint(cp)
	log.Debug("reading", "from", cp+1)
	// The queue holds one batch while the applier holds another.
	f := startFeed(ctx, r.src, jetsource.Query{Filters: ps.p.Filters(), FromSequence: cp + 1, Follow: true}, r.o.batch)
	defer f.stop()
	buf := make([]jetsource.Event, 0, r.o.batch)
	single := func(e jetsource.Event) bool { return e.Sequence <= *careful }
	for {
		batch, ok, err := f.nextIdle(ctx, buf, r.o.batch, single, idleCheck)
		if errors.Is(err, errIdle) {
			// Nothing to do: make sure nobody (a rebuild) moved the
			// checkpoint while this runner waited.
			cctx, cancel := context.WithTimeout(ctx, r.o.timeout)
			now, err := ps.p.Checkpoint(cctx)
			cancel()
			if err != nil {
				return progressed, fmt.Errorf("read checkpoint: %w", err)
			}
			if now != cp {
				return progressed, &CheckpointError{Expected: cp, Current: now}
			}
			continue
		}
		if err != nil {
			return progressed, fmt.Errorf("read events: %w", err)
		}
		if !ok {
			return progressed, ctx.Err()
		}
		// A transaction under way is finished even when ctx ends.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.timeout)
		var skips skipLog
		next, err := applySafely(withSkipLog(actx, &skips), ps.p, cp, batch)
		cancel()
		if err != nil {
			return progressed, err
		}
		progressed = true
		cp = next
		ps.setCheckpoint(cp)
		if sk := skips.take(); len(sk) > 0 {
			logSkips(log, ps.p.Name(), sk)
			ps.mu.Lock()
			ps.skipped += uint64(len(sk))
			ps.lastSkip = sk[len(sk)-1]
			ps.mu.Unlock()
		}
	}
}

func (ps *runState) setCheckpoint(cp uint64) {
	ps.mu.Lock()
	ps.checkpoint = cp
	ps.mu.Unlock()
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
