package subscriber

import (
	"context"
	"fmt"

	"github.com/jetsource/jetsource"
)

// Replay calls h for every event of store matching q, one at a time and
// in stream order, with nothing durable on the server: an ordered
// ephemeral read for rebuilding a view or answering a question. Malformed
// messages ([jetsource.Event.Malformed]) are passed over without calling
// h. It returns the sequence of the last event read (0: none), so a later
// Replay can go on from the next one. With q.Follow it keeps handling new
// events until ctx ends.
//
// It stops at the first error: the store's ([jetsource.ErrInvalidOption],
// [jetsource.ErrInvalidSubject], [jetsource.ErrStreamNotFound],
// [jetsource.ErrUnavailable], ...) as it is, or the handler's wrapped with
// the event's subject and sequence. A nil handler is an
// [ErrInvalidOption].
func Replay(ctx context.Context, store jetsource.Store, q jetsource.Query, h Handler) (uint64, error) {
	if store == nil {
		return 0, invalid("nil store")
	}
	if h == nil {
		return 0, invalid("nil handler")
	}
	var last uint64
	for e, err := range store.Read(ctx, q) {
		if err != nil {
			return last, err
		}
		if e.Malformed != nil {
			// As a durable worker, never hand a malformed message to
			// the handler; a replay has no dead letters: pass it.
			last = e.Sequence
			continue
		}
		if err := h(ctx, e); err != nil {
			return last, fmt.Errorf("subscriber: replay %s at sequence %d: %w", e.Subject, e.Sequence, err)
		}
		last = e.Sequence
	}
	return last, ctx.Err()
}
