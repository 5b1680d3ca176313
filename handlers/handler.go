package handlers

import (
	"context"
	"iter"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Reader is the read side a decision needs: the events matching a query,
// in sequence order. A [jetsource.Store] is one; a cache or a snapshot
// store may stand in for it.
type Reader interface {
	Read(ctx context.Context, q jetsource.Query) iter.Seq2[jetsource.Event, error]
}

// Decision is what a handler decided for one command.
type Decision struct {
	// Filters select the events the decision depends on: its consistency
	// boundary. The events are recorded only if nothing matching them was
	// stored after Position. None: the events are recorded
	// unconditionally.
	Filters []subjects.Filter
	// Position is the read position: the sequence up to which every
	// event matching Filters was taken into account (0: none existed).
	Position uint64
	// Events are the events to record, in order, as one transaction.
	// None: the command is accepted with nothing to record.
	Events []jetsource.Event
}

// Handler decides one kind of command: it reads what it needs through r,
// and returns the events to record with the boundary they depend on, or an
// error. To refuse the command it returns an error from [Reject]; any other
// error makes the command fail (status "error").
//
// A handler may be called again for the same command when its boundary
// changed before its events were recorded; it must then decide afresh
// from what it reads, and must not have side effects beyond its decision.
type Handler interface {
	Handle(ctx context.Context, r Reader, cmd Command) (Decision, error)
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, r Reader, cmd Command) (Decision, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, r Reader, cmd Command) (Decision, error) {
	return f(ctx, r, cmd)
}

// Middleware wraps a handler, for checks every command passes (such as
// whether the actor may issue it) or for instrumentation. Middlewares given
// to [WithMiddleware] run in the order given: the first is the outermost,
// and sees the command first.
type Middleware func(Handler) Handler

// Bounded is a [Handler] that tells its consistency boundary before it
// decides. The handlers of typed deciders ([New]) are. A [Processor] then
// lets only one command per boundary decide at a time in this process
// (see [WithSerialBoundaries]), so that commands on one busy aggregate
// queue instead of deciding in parallel and losing the race to each other.
type Bounded interface {
	Handler
	// Query returns the filters Handle will decide on for cmd, or the
	// error Handle would return without reading.
	Query(cmd Command) ([]subjects.Filter, error)
}
