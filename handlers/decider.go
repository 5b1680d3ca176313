package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Decider is the logic of one command with payload type P over its own
// small model M, built only from the events the command depends on (there
// is no application-wide model):
//
//   - Query returns the filters of the events the decision depends on,
//     which may be derived from the payload (users.<id>.> and
//     companies.<c>.usernames.<name>.>). They are the command's
//     consistency boundary.
//   - Initial returns the model before any event.
//   - Evolve folds one event into the model.
//   - Decide checks the rules against the model and returns the events to
//     record, or an error from [Reject] with the reasons.
//
// Evolve and Decide should be pure functions: Decide may run more than once
// for one command when its boundary changes before its events are stored.
type Decider[P, M any] interface {
	Query(payload P) ([]subjects.Filter, error)
	Initial() M
	Evolve(model M, e jetsource.Event) M
	Decide(model M, payload P) ([]jetsource.Event, error)
}

// Funcs is a [Decider] made of functions. Query and Decide are required;
// a nil Initial starts from the zero model, a nil Evolve ignores events.
type Funcs[P, M any] struct {
	QueryFunc   func(P) ([]subjects.Filter, error)
	InitialFunc func() M
	EvolveFunc  func(M, jetsource.Event) M
	DecideFunc  func(M, P) ([]jetsource.Event, error)
}

// Query calls QueryFunc.
func (f Funcs[P, M]) Query(p P) ([]subjects.Filter, error) { return f.QueryFunc(p) }

// Initial calls InitialFunc, or returns the zero M.
func (f Funcs[P, M]) Initial() M {
	if f.InitialFunc == nil {
		var m M
		return m
	}
	return f.InitialFunc()
}

// Evolve calls EvolveFunc, or returns the model unchanged.
func (f Funcs[P, M]) Evolve(m M, e jetsource.Event) M {
	if f.EvolveFunc == nil {
		return m
	}
	return f.EvolveFunc(m, e)
}

// Decide calls DecideFunc.
func (f Funcs[P, M]) Decide(m M, p P) ([]jetsource.Event, error) { return f.DecideFunc(m, p) }

// Loader builds the model of a decision: the fold of every event matching
// the filters, starting from initial, and the read position it reflects
// (the sequence up to which every matching event was folded; 0 when none
// existed). [Replay] reads every matching event; a loader that starts from
// a snapshot of the model and reads only the events after it can replace
// it without changing the decider.
type Loader[M any] interface {
	Load(ctx context.Context, r Reader, filters []subjects.Filter, initial M, evolve func(M, jetsource.Event) M) (M, uint64, error)
}

// Replay returns the loader that reads every event matching the filters,
// up to the last one stored when the read began, and folds them. Without
// filters it reads nothing. Malformed messages ([jetsource.Event.Malformed])
// are not folded (Evolve never sees one), but the read position passes
// them, so that they do not make the decision's condition fail.
func Replay[M any]() Loader[M] { return replay[M]{} }

type replay[M any] struct{}

func (replay[M]) Load(ctx context.Context, r Reader, filters []subjects.Filter, m M, evolve func(M, jetsource.Event) M) (M, uint64, error) {
	if len(filters) == 0 {
		return m, 0, nil
	}
	var pos uint64
	for e, err := range r.Read(ctx, jetsource.Query{Filters: filters}) {
		if err != nil {
			return m, 0, err
		}
		pos = max(pos, e.Sequence)
		if e.Malformed != nil {
			continue // no event to fold; the position still passes it
		}
		m = evolve(m, e)
	}
	return m, pos, nil
}

// New returns the handler of a typed decider: it decodes the payload into
// P (JSON; unknown fields are refused), loads the model of the decider's
// query with [Replay], and decides.
func New[P, M any](d Decider[P, M]) Handler {
	return NewWithLoader(d, Replay[M]())
}

// NewWithLoader is [New] with another loader of the model, such as one that
// starts from a snapshot.
func NewWithLoader[P, M any](d Decider[P, M], l Loader[M]) Handler {
	return typed[P, M]{d: d, l: l}
}

type typed[P, M any] struct {
	d Decider[P, M]
	l Loader[M]
}

var _ Bounded = typed[int, int]{}

// Query implements [Bounded].
func (t typed[P, M]) Query(cmd Command) ([]subjects.Filter, error) {
	_, filters, err := t.query(cmd)
	return filters, err
}

func (t typed[P, M]) query(cmd Command) (P, []subjects.Filter, error) {
	var p P
	if err := decodePayload(cmd.Data, &p); err != nil {
		return p, nil, Reject(fmt.Sprintf("payload: %v", err))
	}
	filters, err := t.d.Query(p)
	if err != nil {
		return p, nil, err
	}
	for _, f := range filters {
		if f.IsZero() {
			return p, nil, fmt.Errorf("%w: the query of %s holds an empty filter", jetsource.ErrInvalidSubject, cmd.Name)
		}
	}
	return p, filters, nil
}

// Handle implements [Handler].
func (t typed[P, M]) Handle(ctx context.Context, r Reader, cmd Command) (Decision, error) {
	p, filters, err := t.query(cmd)
	if err != nil {
		return Decision{}, err
	}
	m, pos, err := t.l.Load(ctx, r, filters, t.d.Initial(), t.d.Evolve)
	if err != nil {
		return Decision{}, err
	}
	events, err := t.d.Decide(m, p)
	if err != nil {
		return Decision{}, err
	}
	return Decision{Filters: filters, Position: pos, Events: events}, nil
}

// decodePayload decodes JSON strictly: no unknown fields, nothing after
// the value. Empty data is null.
func decodePayload(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("null")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}
