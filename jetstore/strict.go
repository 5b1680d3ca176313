package jetstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
)

// defaultStrictRetries bounds how often a strict conditioned append is
// published again because the stream moved while its condition held.
const defaultStrictRetries = 50

// relaxedRetries bounds how often a conditioned append outside strict
// mode is published again when the server refused it but its condition
// still holds (an expectation on the same filter in flight, a replica
// that answered the read before it caught up).
const relaxedRetries = 3

// WithStrict makes every conditioned append of the store (Append with
// [jetsource.ExpectSequence], [jetsource.ExpectLast] or
// [jetsource.ExpectNoneAfter], AppendBatch and AppendPrepared with
// conditions) also expect the stream's last sequence. The store reads the
// stream's last sequence L from the stream leader, checks the conditions,
// and publishes with Nats-Expected-Last-Sequence: L besides the usual
// expected subject sequence. The server compares L with the last sequence
// it has assigned, in-flight appends included, so the append is stored
// only if nothing at all was stored after L; and because L was read from
// the leader's applied state, the server's check of the condition's
// filter then sees every event before the append. This makes conditions
// race-free on replicated streams against every other writer, including
// plain publishes and appends without conditions, which the default mode
// guarantees only on single-replica streams.
//
// The price: a conditioned append takes one more request (the read of L)
// and serializes with every other append to the stream, related or not.
// When the stream moved but the condition still holds, the append is
// retried with the new L, after a short random pause, at most
// [WithStrictRetries] times (default 50) and within the context's
// deadline; then it fails with [ErrStreamBusy]. Appends without
// conditions are unchanged. On single-replica streams the default mode is
// already race-free, so strict mode only costs there.
func WithStrict() Option {
	return func(s *Store) error {
		s.strict = true
		return nil
	}
}

// WithStrictRetries sets how often a strict conditioned append is
// published again after the stream moved while its condition held
// (default 50; 0: never). It has no effect without [WithStrict].
func WithStrictRetries(n int) Option {
	return func(s *Store) error {
		if n < 0 {
			return fmt.Errorf("%w: strict retries %d must not be negative", jetsource.ErrInvalidOption, n)
		}
		s.strictRetries = n
		return nil
	}
}

// Strict reports whether conditioned appends run in strict mode
// ([WithStrict]).
func (s *Store) Strict() bool { return s.strict }

// Stats counts what the conditioned appends of a store did since it was
// opened.
type Stats struct {
	// Conditioned is the number of conditioned appends and batches.
	Conditioned uint64 `json:"conditioned"`
	// Retries is the number of times a conditioned append or batch was
	// published again: the server refused it while its condition still
	// held (in strict mode mostly because the stream moved), or the
	// stream had no leader for a moment.
	Retries uint64 `json:"retries"`
	// Conflicts is the number of conditioned appends and batches that
	// failed with [jetsource.ErrConflict].
	Conflicts uint64 `json:"conflicts"`
	// Busy is the number of strict conditioned appends and batches that
	// gave up with [ErrStreamBusy].
	Busy uint64 `json:"busy"`
}

type stats struct {
	conditioned, retries, conflicts, busy atomic.Uint64
}

// Stats returns the counters of the store's conditioned appends.
func (s *Store) Stats() Stats {
	return Stats{
		Conditioned: s.stats.conditioned.Load(),
		Retries:     s.stats.retries.Load(),
		Conflicts:   s.stats.conflicts.Load(),
		Busy:        s.stats.busy.Load(),
	}
}

// conditionRetries is how often a conditioned append whose condition
// still holds is published again.
func (s *Store) conditionRetries() int {
	if s.strict {
		return s.strictRetries
	}
	return relaxedRetries
}

// leaderLast returns the last sequence matching filter as the stream
// leader has it (0 when none matches).
func (s *Store) leaderLast(ctx context.Context, filter string) (uint64, error) {
	m, err := s.getFrom(ctx, map[string]any{"last_by_subj": filter}, true)
	if errors.Is(err, jetsource.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// busy is the error of a strict append that ran out of attempts.
func (s *Store) busy(attempts int, cause error) error {
	s.stats.busy.Add(1)
	return fmt.Errorf("%w: %w: the stream moved through %d attempts while the condition held; nothing written: %w",
		jetsource.ErrUnavailable, ErrStreamBusy, attempts, cause)
}

// pause waits a short random time before attempt attempt+1 of a refused
// append, so that writers that collided spread out; it returns ctx's
// error when ctx ends first.
func pause(ctx context.Context, attempt int) error {
	d := rand.N(time.Millisecond << min(attempt, 4))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff waits before attempt attempt+2 of a request refused for a
// passing reason (no leader yet): from about 10ms, doubling up to about
// 250ms. It returns ctx's error when ctx ends first.
func backoff(ctx context.Context, attempt int) error {
	wait := min(retryFirstPause<<min(attempt, 8), retryMaxPause)
	t := time.NewTimer(rand.N(wait) + wait/2)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// streamLast returns the stream's last sequence as the stream leader has
// applied it, from the stream info only the leader answers. It is the
// expected last sequence of a strict append: a value any replica had
// applied could be ahead of what the leader has applied, and the leader's
// expected subject check would then miss the difference.
func (s *Store) streamLast(ctx context.Context) (uint64, error) {
	subj := s.apiPrefix + "STREAM.INFO." + s.stream
	nc := s.js.Conn()
	var last uint64
	err := retry(ctx, func(ctx context.Context) error {
		before := nc.LastError()
		resp, err := nc.RequestWithContext(ctx, subj, nil)
		if err != nil {
			return denied(nc, err, before, subj)
		}
		var r struct {
			State *struct {
				LastSeq uint64 `json:"last_seq"`
			} `json:"state"`
			Error *jetstream.APIError `json:"error"`
		}
		if err := json.Unmarshal(resp.Data, &r); err != nil {
			return fmt.Errorf("bad stream info %q: %w", resp.Data, err)
		}
		if r.Error != nil {
			return r.Error
		}
		if r.State == nil {
			return fmt.Errorf("stream info without state: %q", resp.Data)
		}
		last = r.State.LastSeq
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("jetstore: stream last sequence: %w", mapErr(s.js, err))
	}
	return last, nil
}

// Bounds of the pauses between attempts of [retry] and [backoff].
const (
	retryFirstPause = 10 * time.Millisecond
	retryMaxPause   = 250 * time.Millisecond
	// retryFirstAttempt is the time the first attempt of [retry] gets to
	// be answered; each further attempt gets twice as long.
	retryFirstAttempt = 250 * time.Millisecond
)

// retry runs op until it succeeds, fails with an error that is not
// [transient], or ctx ends; it then returns op's last error. The first
// attempt gets retryFirstAttempt to be answered, each further one twice as
// long (all within ctx), so that a request nobody answers, as while a
// stream elects a leader, is soon asked again while a slow server still
// gets its time. op must be safe to repeat.
func retry(ctx context.Context, op func(ctx context.Context) error) error {
	return retryFrom(ctx, retryFirstAttempt, op)
}

// retryFrom is [retry] with first as the time of the first attempt.
func retryFrom(ctx context.Context, first time.Duration, op func(ctx context.Context) error) error {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, first<<min(attempt, 8))
		err := op(actx)
		timedOut := actx.Err() != nil
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if !transient(err) && !(timedOut && timeout(err)) {
			return err
		}
		if backoff(ctx, attempt) != nil {
			return err
		}
	}
}

// timeout reports whether err is a request that got no answer in time.
func timeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}
