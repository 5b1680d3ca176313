package projections

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jetsource/jetsource"
)

// feed reads a query on its own goroutine into a bounded queue, so that
// reading the stream and writing the read model overlap.
//
// The queue hands events over in bulk: the reader appends under a mutex
// and wakes the applier only when the queue was empty; the applier takes
// everything queued at once and wakes the reader only if it waited for
// room. A full queue therefore costs one wake-up per batch, not one per
// event as a channel would once it is full.
type feed struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	queue    []item // read, not yet taken
	ended    bool   // the read ended: nothing more comes after queue
	limit    int    // the most items queued
	notEmpty chan struct{}
	notFull  chan struct{}

	// The applier's side, touched by it alone: the items taken from the
	// queue and the position of the next one.
	local []item
	pos   int
}

type item struct {
	e   jetsource.Event
	err error
}

func startFeed(ctx context.Context, src Source, q jetsource.Query, buffer int) *feed {
	ctx, cancel := context.WithCancel(ctx)
	buffer = max(buffer, 1)
	f := &feed{cancel: cancel, limit: buffer, notEmpty: make(chan struct{}, 1), notFull: make(chan struct{}, 1)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.end()
		for e, err := range src.Read(ctx, q) {
			if !f.put(ctx, item{e, err}) || err != nil {
				return
			}
		}
	}()
	return f
}

// put queues an item, waiting while the queue is full; false means ctx
// ended first.
func (f *feed) put(ctx context.Context, it item) bool {
	f.mu.Lock()
	for len(f.queue) >= f.limit {
		f.mu.Unlock()
		select {
		case <-f.notFull:
		case <-ctx.Done():
			return false
		}
		f.mu.Lock()
	}
	wasEmpty := len(f.queue) == 0
	f.queue = append(f.queue, it)
	f.mu.Unlock()
	if wasEmpty {
		signal(f.notEmpty)
	}
	return true
}

// end records that the read ended.
func (f *feed) end() {
	f.mu.Lock()
	f.ended = true
	f.mu.Unlock()
	signal(f.notEmpty)
}

// signal wakes the waiter on c, if any (a wake-up already pending
// suffices).
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// stop ends the read and waits for its goroutine.
func (f *feed) stop() {
	f.cancel()
	f.wg.Wait()
}

// next returns the next batch: it waits for one event, then takes what is
// already buffered, up to limit events. With single, an event for which it
// returns true travels alone in its batch. ok is false when the feed ended
// (the context ended, or a read that does not follow reached its end).
func (f *feed) next(ctx context.Context, buf []jetsource.Event, limit int, single func(jetsource.Event) bool) (batch []jetsource.Event, ok bool, err error) {
	return f.nextIdle(ctx, buf, limit, single, 0)
}

// errIdle is returned by nextIdle when no event came within the idle time.
var errIdle = errors.New("projections: idle")

// nextIdle is next, returning errIdle when no event came within idle (0:
// wait as long as ctx allows).
func (f *feed) nextIdle(ctx context.Context, buf []jetsource.Event, limit int, single func(jetsource.Event) bool, idle time.Duration) (batch []jetsource.Event, ok bool, err error) {
	batch = buf[:0]
	it, open, done, idled := f.take(ctx, true, idle)
	switch {
	case idled:
		return batch, true, errIdle
	case done || !open:
		return batch, false, nil
	case it.err != nil:
		return batch, false, it.err
	}
	batch = append(batch, it.e)
	if single != nil && single(it.e) {
		return batch, true, nil
	}
	for len(batch) < limit {
		it, open, done, _ := f.take(ctx, false, 0)
		if done || !open {
			return batch, true, nil
		}
		if it.err != nil || single != nil && single(it.e) {
			// Apply what came before; this one comes next time.
			f.pos--
			return batch, true, nil
		}
		batch = append(batch, it.e)
	}
	return batch, true, nil
}

// take returns the next item. Without wait it returns done when nothing
// is queued. With wait it waits until ctx ends (done) or, with idle > 0,
// until idle passed without an item (idled). open is false once the read
// ended and every item was taken.
func (f *feed) take(ctx context.Context, wait bool, idle time.Duration) (it item, open, done, idled bool) {
	if f.pos < len(f.local) {
		it = f.local[f.pos]
		f.pos++
		return it, true, false, false
	}
	var timeout <-chan time.Time
	for {
		f.mu.Lock()
		if len(f.queue) > 0 {
			// Take everything queued; the emptied buffer becomes the
			// queue, cleared so that it holds no events for the GC.
			clear(f.local)
			f.local, f.queue = f.queue, f.local[:0]
			f.mu.Unlock()
			signal(f.notFull)
			it, f.pos = f.local[0], 1
			return it, true, false, false
		}
		ended := f.ended
		f.mu.Unlock()
		switch {
		case ended:
			return it, false, false, false
		case !wait:
			return it, true, true, false
		}
		if idle > 0 && timeout == nil {
			t := time.NewTimer(idle)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-f.notEmpty:
		case <-ctx.Done():
			return it, true, true, false
		case <-timeout:
			return it, true, true, true
		}
	}
}
