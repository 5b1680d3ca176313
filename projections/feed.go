package projections

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jetsource/jetsource"
)

// feed reads a query on its own goroutine into a bounded channel, so that
// reading the stream and writing the read model overlap.
type feed struct {
	ch      chan item
	pending *item
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type item struct {
	e   jetsource.Event
	err error
}

func startFeed(ctx context.Context, src Source, q jetsource.Query, buffer int) *feed {
	ctx, cancel := context.WithCancel(ctx)
	f := &feed{ch: make(chan item, buffer), cancel: cancel}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(f.ch)
		for e, err := range src.Read(ctx, q) {
			select {
			case f.ch <- item{e, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return f
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
	wctx := ctx
	if idle > 0 && f.pending == nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, idle)
		defer cancel()
	}
	it, open, done := f.take(wctx, true)
	if done && ctx.Err() == nil && wctx.Err() != nil {
		return batch, true, errIdle
	}
	switch {
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
		it, open, done := f.take(ctx, false)
		if done || !open {
			return batch, true, nil
		}
		if it.err != nil || single != nil && single(it.e) {
			// Apply what came before; this one comes next time.
			f.pending = &it
			return batch, true, nil
		}
		batch = append(batch, it.e)
	}
	return batch, true, nil
}

// take returns the pending item or the next one from the channel; without
// wait it returns done when nothing is buffered.
func (f *feed) take(ctx context.Context, wait bool) (it item, open, done bool) {
	if f.pending != nil {
		it, f.pending = *f.pending, nil
		return it, true, false
	}
	if !wait {
		select {
		case it, open = <-f.ch:
			return it, open, false
		default:
			return it, true, true
		}
	}
	select {
	case it, open = <-f.ch:
		return it, open, false
	case <-ctx.Done():
		return it, true, true
	}
}
