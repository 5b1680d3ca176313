package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

// DefaultSnapshotEvery is the default of [WithSnapshotEvery].
const DefaultSnapshotEvery = 20

// DefaultIdempotencyHorizon is the default of [WithIdempotencyHorizon].
const DefaultIdempotencyHorizon = 24 * time.Hour

// SnapshotOption configures the loader made by [Snapshots].
type SnapshotOption func(*snapshotConfig) error

type snapshotConfig struct {
	version string
	every   int
	horizon time.Duration
	logger  *slog.Logger
}

// WithIdempotencyHorizon sets how long a command stays recognisable when
// it is sent again (default [DefaultIdempotencyHorizon]). The [Processor]
// recognises a repeated command by its own events in the replay, so a
// snapshot never folds events stored within the horizon: they are always
// read, and a command repeated within the horizon is answered as the
// duplicate it is. Beyond it, a repeat is decided again (and the stream's
// id de-duplication catches it within its own window). d must not be
// negative; 0 lets snapshots reach the newest event.
func WithIdempotencyHorizon(d time.Duration) SnapshotOption {
	return func(c *snapshotConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: idempotency horizon %v is negative", ErrInvalidOption, d)
		}
		c.horizon = d
		return nil
	}
}

// WithModelVersion sets the version of the model and of its fold (default:
// the Go type of the model, such as "example.insertModel"). Snapshots are kept per
// version and filters: snapshots of another version are ignored. Change it
// whenever the model's fields or the decider's Evolve change, and give two
// deciders that share a model type but fold differently different
// versions. It may not be empty.
func WithModelVersion(v string) SnapshotOption {
	return func(c *snapshotConfig) error {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("%w: empty model version", ErrInvalidOption)
		}
		c.version = v
		return nil
	}
}

// WithSnapshotEvery sets how many events a load folds, on top of the
// snapshot it started from, before it writes a new snapshot (default
// [DefaultSnapshotEvery]). A load that found no snapshot writes one as soon
// as it folded an event. n must be positive.
func WithSnapshotEvery(n int) SnapshotOption {
	return func(c *snapshotConfig) error {
		if n <= 0 {
			return fmt.Errorf("%w: snapshot every %d events: must be positive", ErrInvalidOption, n)
		}
		c.every = n
		return nil
	}
}

// WithSnapshotLogger sets the logger of snapshot reads and writes that
// failed (default: none).
func WithSnapshotLogger(l *slog.Logger) SnapshotOption {
	return func(c *snapshotConfig) error {
		c.logger = l
		return nil
	}
}

// SnapshotLoader is a [Loader] that starts from a snapshot of the model
// and reads only the events stored after it. Make one with [Snapshots]. It
// is safe for concurrent use.
type SnapshotLoader[M any] struct {
	store   state.SnapshotStore
	version string
	every   int
	horizon time.Duration
	log     *slog.Logger
	warned  atomic.Bool
}

var _ Loader[int] = (*SnapshotLoader[int])(nil)

// Snapshots returns a [Loader] of models of type M kept in store (such as
// a [state.KVSnapshots] on a key-value bucket): one snapshot per model
// version ([WithModelVersion]) and canonical set of filters, holding the
// model as JSON and the sequence up to which it folded the matching
// events.
//
// A load gets the snapshot, if any, and reads only the events matching the
// filters after its sequence: on the JetStream store a look-up of the last
// matching sequence per filter, and a consumer started after the snapshot
// only when something newer exists. Its cost therefore depends on the
// events of the boundary since the snapshot, not on the size of the
// stream. A load with no snapshot reads every matching event, as [Replay]
// does.
//
// A load writes a snapshot when it folded at least [WithSnapshotEvery]
// events, or any event when it found no snapshot. Snapshots are best
// effort: a failed read or write is logged and the load goes on from the
// stream; a snapshot is never of a sequence beyond what was folded. A
// model is snapshotted only if it survives a JSON round trip unchanged
// (reflect.DeepEqual): one with unexported fields, or that fails to
// encode, is folded from the stream on every load, as with [Replay].
//
// Correctness does not depend on the snapshot being recent: the
// [Processor] appends on the condition that nothing matching the filters
// was stored after the returned position, which the server checks.
//
// A snapshot never folds the events stored within the idempotency horizon
// ([WithIdempotencyHorizon], a day by default), so that a command sent again
// within it still finds its own events in the replay.
//
// Options: [WithModelVersion], [WithSnapshotEvery],
// [WithIdempotencyHorizon], [WithSnapshotLogger].
// It returns an error matching [ErrInvalidOption] for a nil store or a bad
// option.
func Snapshots[M any](store state.SnapshotStore, opts ...SnapshotOption) (*SnapshotLoader[M], error) {
	if store == nil {
		return nil, fmt.Errorf("%w: Snapshots needs a snapshot store", ErrInvalidOption)
	}
	c := snapshotConfig{version: reflect.TypeFor[M]().String(), every: DefaultSnapshotEvery, horizon: DefaultIdempotencyHorizon}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return &SnapshotLoader[M]{store: store, version: c.version, every: c.every, horizon: c.horizon, log: c.logger}, nil
}

// NewWithSnapshots is [NewWithLoader] with the loader [Snapshots] of
// store. Without [WithModelVersion] the version is the Go types of the
// decider and the model, so that deciders sharing a model type keep their
// snapshots apart.
//
// It returns an error matching [ErrInvalidOption] for a nil store or a bad
// option.
func NewWithSnapshots[P, M any](d Decider[P, M], store state.SnapshotStore, opts ...SnapshotOption) (Handler, error) {
	def := []SnapshotOption{WithModelVersion(fmt.Sprintf("%T/%s", d, reflect.TypeFor[M]()))}
	l, err := Snapshots[M](store, append(def, opts...)...)
	if err != nil {
		return nil, err
	}
	return NewWithLoader(d, l), nil
}

// Version returns the model version the loader keeps snapshots under.
func (l *SnapshotLoader[M]) Version() string { return l.version }

// Key returns the key of the snapshot of the filters: the model version
// and the canonical filters, hashed into one token under "decision".
func (l *SnapshotLoader[M]) Key(filters []subjects.Filter) subjects.Subject {
	fs := subjects.Canonical(filters...)
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	sum := sha256.Sum256([]byte(l.version + "\x00" + strings.Join(parts, " ")))
	s, err := subjects.Join("decision", hex.EncodeToString(sum[:]))
	if err != nil { // cannot happen: both tokens are plain
		panic(err)
	}
	return s
}

// Load implements [Loader]: the snapshot of the filters, or initial, with
// the events matching the filters stored after it folded in. It returns
// the reader's errors and the context's; failures of the snapshot store
// are logged and do not fail the load.
func (l *SnapshotLoader[M]) Load(ctx context.Context, r Reader, filters []subjects.Filter, initial M, evolve func(M, jetsource.Event) M) (M, uint64, error) {
	if len(filters) == 0 {
		return initial, 0, nil
	}
	key := l.Key(filters)
	m, from, count, found := l.get(ctx, key, initial)
	if err := ctx.Err(); err != nil {
		return initial, 0, err
	}
	// The snapshot to write is the model before the first event within the
	// idempotency horizon (or after the last event, when all are older).
	cutoff := time.Now().Add(-l.horizon)
	var snap []byte
	snapPos, snapFolded, captured := from, 0, false
	capture := func(pos uint64, folded int) {
		captured = true
		if folded >= l.every || (!found && folded > 0) {
			snap, snapPos, snapFolded = l.encode(m), pos, folded
		}
	}
	pos, folded := from, 0
	for e, err := range r.Read(ctx, jetsource.Query{Filters: filters, FromSequence: from + 1}) {
		if err != nil {
			return initial, 0, err
		}
		if !captured && !e.Stored.Before(cutoff) {
			capture(pos, folded)
		}
		pos = max(pos, e.Sequence)
		if e.Malformed != nil {
			continue // not folded, as with Replay
		}
		m = evolve(m, e)
		folded++
	}
	if !captured {
		capture(pos, folded)
	}
	if snap != nil {
		l.put(ctx, key, snap, snapPos, count+uint64(snapFolded))
	}
	return m, pos, nil
}

// get returns the model, sequence and event count of the snapshot under
// key, or initial and zeros when there is none that can be used.
func (l *SnapshotLoader[M]) get(ctx context.Context, key subjects.Subject, initial M) (M, uint64, uint64, bool) {
	s, err := l.store.Get(ctx, key)
	switch {
	case errors.Is(err, state.ErrSnapshotNotFound):
		return initial, 0, 0, false
	case err != nil:
		if ctx.Err() == nil {
			l.log.Warn("decision snapshot not read: folding from the stream", "key", key.String(), "err", err)
		}
		return initial, 0, 0, false
	case s.Version != l.version:
		return initial, 0, 0, false
	}
	var m M
	if err := json.Unmarshal(s.State, &m); err != nil {
		l.log.Warn("decision snapshot not decoded: folding from the stream", "key", key.String(), "version", l.version, "err", err)
		return initial, 0, 0, false
	}
	return m, s.Sequence, s.Count, true
}

// encode returns the JSON of m, or nil when m does not survive a JSON round
// trip (logged once).
func (l *SnapshotLoader[M]) encode(m M) []byte {
	b, err := json.Marshal(m)
	if err == nil {
		var back M
		if err = json.Unmarshal(b, &back); err == nil && !reflect.DeepEqual(back, m) {
			err = fmt.Errorf("the model %s does not survive a JSON round trip (unexported fields?)", l.version)
		}
	}
	if err != nil {
		if !l.warned.Swap(true) {
			l.log.Warn("decision model not snapshotted: every load folds from the stream", "version", l.version, "err", err)
		}
		return nil
	}
	return b
}

// put writes the snapshot b at seq, the fold of count events. Failures are
// logged.
func (l *SnapshotLoader[M]) put(ctx context.Context, key subjects.Subject, b []byte, seq, count uint64) {
	snap := state.Snapshot{Version: l.version, Sequence: seq, Count: count, State: b}
	if err := l.store.Put(ctx, key, snap); err != nil {
		l.log.Warn("decision snapshot not written", "key", key.String(), "sequence", seq, "err", err)
	}
}
