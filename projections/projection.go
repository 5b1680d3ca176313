package projections

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Source is the part of an event store that projections read:
// [jetsource.Store] satisfies it.
type Source interface {
	// Read yields the events matching the query in sequence order.
	Read(ctx context.Context, q jetsource.Query) iter.Seq2[jetsource.Event, error]
	// LastSequence returns the sequence of the last event matching the
	// filter, or 0.
	LastSequence(ctx context.Context, filter subjects.Filter) (uint64, error)
}

var _ Source = jetsource.Store(nil)

// Model is a read model that commits events and its checkpoint together.
type Model interface {
	// Checkpoint returns the stream sequence of the last event applied to
	// the read model (0: none).
	Checkpoint(ctx context.Context) (uint64, error)

	// Apply applies events, in stream order, in one atomic unit with the
	// checkpoint, and returns the new checkpoint. Events may be malformed
	// messages ([jetsource.Event.Malformed]): a read model must not stop
	// on one, but skip it (its sequence still moves the checkpoint), as
	// [*SQLProjection] and [*KVProjection] do. after is the checkpoint
	// the caller continues from. Events at or before the read model's
	// checkpoint are skipped (they were applied before), so delivering an
	// event twice has its effect once. When the read model's checkpoint
	// is behind after, nothing is written and the error is a
	// [*CheckpointError] ([ErrCheckpointMoved]).
	//
	// Errors: [ErrCheckpointMoved], [ErrApply] (an [*ApplyError]),
	// [ErrConflict], [ErrTooManyWrites], and the read model's own errors.
	Apply(ctx context.Context, after uint64, events []jetsource.Event) (uint64, error)
}

// Projection is a named read model fed by the events matching its filters.
// [*SQLProjection] and [*KVProjection] implement it.
type Projection interface {
	Model
	// Name identifies the projection.
	Name() string
	// Filters select the events the projection reads (none: every event).
	Filters() []subjects.Filter
	// Info describes the live read model: its location, generation and
	// the last error recorded.
	Info(ctx context.Context) (ModelInfo, error)
	// RecordError records an error of the projection in the read model,
	// so that status commands of other processes see it. nil clears it.
	RecordError(ctx context.Context, seq uint64, err error) error
	// NewGeneration prepares a fresh, empty read model next to the live
	// one, for [Rebuild]. A leftover of an unfinished rebuild is dropped.
	NewGeneration(ctx context.Context) (Generation, error)
}

// Generation is a fresh read model being rebuilt; Swap makes it the live
// one.
type Generation interface {
	Model
	// Location names where the generation is being built.
	Location() string
	// Swap makes the generation the live read model, atomically, and
	// drops the previous one. A runner writing to the previous one finds
	// its checkpoint moved or its writes refused and resumes from the new
	// checkpoint on its own.
	//
	// Errors: [ErrRebuildConflict] when another rebuild was swapped in
	// meanwhile.
	Swap(ctx context.Context) error
	// Discard drops the generation without swapping it in.
	Discard(ctx context.Context) error
}

// ModelInfo describes a live read model.
type ModelInfo struct {
	// Location names the read model, such as "sqlite:app.db table users"
	// or "kv:users_g2".
	Location string `json:"location"`
	// Generation counts the rebuilds swapped in (0: never rebuilt).
	Generation uint64 `json:"generation"`
	// Checkpoint is the sequence of the last event applied.
	Checkpoint uint64 `json:"checkpoint"`
	// Updated is when the checkpoint last moved.
	Updated time.Time `json:"updated,omitzero"`
	// LastError is the last error recorded, if any, with its time and
	// the sequence of the event it happened on (0: not on an event).
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	ErrorSequence uint64    `json:"error_sequence,omitempty"`
}

// Status is the state of a projection: where its read model is, how far
// it got and how far behind the stream it is.
type Status struct {
	Name string `json:"name"`
	ModelInfo
	// Head is the sequence of the last event matching the projection's
	// filters in the stream.
	Head uint64 `json:"head"`
	// Lag is Head minus Checkpoint: how far, in stream sequence, the read
	// model is behind (0: caught up).
	Lag uint64 `json:"lag"`
	// Running is true when the status comes from a runner that runs the
	// projection.
	Running bool `json:"running"`
	// Skipped counts the events this runner skipped since it started:
	// malformed messages and events refused with [ErrSkipEvent] (only
	// from a [Runner]; 0 from [StatusOf]).
	Skipped uint64 `json:"skipped,omitempty"`
	// LastSkipped is the last event skipped, if any.
	LastSkipped *Skipped `json:"last_skipped,omitempty"`
}

// StatusOf returns the status of a projection read from its read model and
// the source, without running it.
//
// Errors: those of the read model and the source (such as
// [jetsource.ErrUnavailable]).
func StatusOf(ctx context.Context, src Source, p Projection) (Status, error) {
	info, err := p.Info(ctx)
	if err != nil {
		return Status{Name: p.Name()}, err
	}
	head, err := Head(ctx, src, p.Filters())
	if err != nil {
		return Status{Name: p.Name(), ModelInfo: info}, err
	}
	st := Status{Name: p.Name(), ModelInfo: info, Head: head}
	if head > info.Checkpoint {
		st.Lag = head - info.Checkpoint
	}
	return st, nil
}

// Head returns the sequence of the last event matching any of the filters
// (every event when there are none).
func Head(ctx context.Context, src Source, filters []subjects.Filter) (uint64, error) {
	if len(filters) == 0 {
		filters = []subjects.Filter{subjects.All()}
	}
	var head uint64
	for _, f := range subjects.Canonical(filters...) {
		seq, err := src.LastSequence(ctx, f)
		if err != nil {
			return 0, err
		}
		head = max(head, seq)
	}
	return head, nil
}

// maxNameLen bounds projection names, which become table and bucket names.
const maxNameLen = 64

// ValidName reports whether a projection name is allowed: 1 to 64
// letters, digits, '_' and '-', starting with a letter. Names become parts
// of table, key and bucket names.
//
// Errors: [ErrInvalidProjection].
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the name is missing", ErrInvalidProjection)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: name %q is longer than %d characters", ErrInvalidProjection, name, maxNameLen)
	}
	for i, c := range []byte(name) {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if letter || i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '-') {
			continue
		}
		return fmt.Errorf("%w: name %q: use letters, digits, '_' and '-', starting with a letter", ErrInvalidProjection, name)
	}
	return nil
}

func checkFilters(fs []subjects.Filter) error {
	for _, f := range fs {
		if f.IsZero() {
			return fmt.Errorf("%w: empty filter", ErrInvalidProjection)
		}
	}
	return nil
}

// ValidTable reports whether an SQL table name is allowed for a
// projection: letters, digits and '_', starting with a letter or '_', at
// most 100 characters, without the "__g" of generation names, and not
// [CheckpointTable].
//
// Errors: [ErrInvalidProjection].
func ValidTable(name string) error {
	if !validTable(name) || name == CheckpointTable {
		return fmt.Errorf("%w: table name %q: use letters, digits and '_', starting with a letter or '_' (not %s, no \"__g\")", ErrInvalidProjection, name, CheckpointTable)
	}
	return nil
}

// ValidBucket reports whether a KV bucket name is allowed: letters,
// digits, '_' and '-'.
//
// Errors: [ErrInvalidProjection].
func ValidBucket(name string) error {
	if !validBucket(name) || name == PointerBucket {
		return fmt.Errorf("%w: bucket name %q: use letters, digits, '_' and '-' (not %s)", ErrInvalidProjection, name, PointerBucket)
	}
	return nil
}
