package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jetsource/jetsource"
)

// Rebuild builds the projection's read model afresh from the whole stream
// and swaps it in: it prepares a new generation next to the live read
// model ([Projection.NewGeneration]: new tables or a new bucket), applies
// every matching event up to the last one stored when it began, in batches
// that each commit with the generation's checkpoint, then makes the
// generation live in one atomic step ([Generation.Swap]) and drops the old
// one. Readers see the old read model until the swap and the new one
// after it, never a mix.
//
// Malformed messages and events refused with [ErrSkipEvent] are skipped
// as the [Runner] skips them (logged with [WithRebuildLogger], counted in
// [Progress.Skipped]). A panic of an apply function fails the rebuild
// ([ErrPanic]) and leaves the live read model as it was.
//
// A runner of the projection may keep running meanwhile: after the swap
// it finds the checkpoint moved (or its bucket gone) and resumes from the
// new read model's checkpoint. On failure or cancellation the generation
// is dropped and the live read model is left as it was.
//
// Options: [WithProgress], [WithRebuildBatchSize], [WithRebuildLogger]. It returns the final
// progress.
//
// Errors: [ErrInvalidOption], [ErrRebuildConflict] when another rebuild
// was swapped in meanwhile, [ErrApply] (an [*ApplyError]), the errors of
// the source and of the read model, and ctx's error.
func Rebuild(ctx context.Context, src Source, p Projection, opts ...RebuildOption) (Progress, error) {
	o := rebuildOptions{batch: 2000, timeout: DefaultTimeout}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return Progress{}, err
		}
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	head, err := Head(ctx, src, p.Filters())
	if err != nil {
		return Progress{}, fmt.Errorf("projections: %s: rebuild: %w", p.Name(), err)
	}
	gen, err := p.NewGeneration(ctx)
	if err != nil {
		return Progress{}, err
	}
	pr := Progress{Target: head}
	discard := func(err error) (Progress, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.timeout)
		defer cancel()
		_ = gen.Discard(dctx)
		return pr, err
	}
	report := func(done bool) {
		pr.Elapsed, pr.Done = time.Since(start), done
		if o.progress != nil {
			o.progress(pr)
		}
	}
	last := time.Now()
	report(false)
	apply := func(from uint64) error {
		// The queue holds one batch while the applier holds another.
		f := startFeed(ctx, src, jetsource.Query{Filters: p.Filters(), FromSequence: from}, o.batch)
		defer f.stop()
		buf := make([]jetsource.Event, 0, o.batch)
		for {
			batch, ok, err := f.next(ctx, buf, o.batch, nil)
			if err != nil {
				return fmt.Errorf("projections: %s: rebuild: read events: %w", p.Name(), err)
			}
			if !ok {
				return ctx.Err()
			}
			var skips skipLog
			cp, err := applySafely(withSkipLog(ctx, &skips), gen, pr.Checkpoint, batch)
			if err != nil {
				return err
			}
			sk := skips.take()
			logSkips(o.logger, p.Name(), sk)
			pr.Skipped += uint64(len(sk))
			pr.Applied += uint64(len(batch) - len(sk))
			pr.Checkpoint = cp
			if time.Since(last) >= o.every {
				report(false)
				last = time.Now()
			}
		}
	}
	if head > 0 {
		if err := apply(1); err != nil {
			return discard(err)
		}
	}
	// A runner may have taken the live read model further meanwhile:
	// catch up with it, so that the swap never takes the read model back.
	for attempt := 0; ; attempt++ {
		live, err := p.Checkpoint(ctx)
		if err != nil {
			return discard(err)
		}
		if live > pr.Checkpoint {
			before := pr.Checkpoint
			if err := apply(pr.Checkpoint + 1); err != nil {
				return discard(err)
			}
			if pr.Checkpoint == before {
				// Nothing the filters match lies between the two: the live
				// checkpoint came from other filters (or deleted events).
				return discard(fmt.Errorf("%w: %s: the live read model is at sequence %d, but no event matching the filters follows %d; were the filters changed? Remove the live read model's checkpoint or rebuild under a new name", ErrRebuildConflict, p.Name(), live, before))
			}
			continue
		}
		err = gen.Swap(ctx)
		if errors.Is(err, errBehindLive) && attempt < 100 {
			continue
		}
		if err != nil {
			return discard(err)
		}
		break
	}
	report(true)
	return pr, nil
}

// errBehindLive is returned by a swap that found the live read model
// ahead of the generation: the rebuild catches up and tries again.
var errBehindLive = errors.New("projections: the live read model is ahead of the rebuild")
