package jetstore

import (
	"slices"

	"github.com/jetsource/jetsource"
)

// placeConditions assigns the exact conditions of a batch to its messages,
// one per message, as expected-last-subject-sequence headers. The server
// checks every such header against the state before the batch, except
// that it refuses a header whose filter is literally the subject of an
// earlier message of the same batch (it cannot see staged messages). So a
// literal filter goes on a message at or before the first one written to
// it; wildcard filters can go anywhere.
//
// slots[i] is the message index of condition i, or -1 when it did not fit:
// such conditions must be checked another way (the stream-wide expected
// last sequence, see appendBatch). An end-of-batch marker cannot carry a
// condition: the server does not check the headers of a message it does
// not store.
func placeConditions(events []jetsource.Event, conds []jetsource.Condition) (slots []int, overflow bool) {
	slots = make([]int, len(conds))
	limit := make([]int, len(conds)) // last message index a condition may go on
	written := make([]bool, len(conds))
	order := make([]int, len(conds))
	for i, c := range conds {
		order[i] = i
		limit[i] = len(events) - 1
		if !c.Filter.IsLiteral() {
			continue
		}
		for j, e := range events {
			if e.Subject.String() == c.Filter.String() {
				limit[i], written[i] = j, true
				break
			}
		}
	}
	// Earliest deadline first fills the slots whenever that is possible.
	// On equal deadlines a condition on a subject the batch writes goes
	// first: one left over needs a guard before the events, which shifts
	// their sequences, while any other can follow them.
	slices.SortStableFunc(order, func(a, b int) int {
		if d := limit[a] - limit[b]; d != 0 {
			return d
		}
		switch {
		case written[a] && !written[b]:
			return -1
		case written[b] && !written[a]:
			return 1
		}
		return 0
	})
	next := 0
	for _, i := range order {
		if next <= limit[i] {
			slots[i] = next
			next++
			continue
		}
		slots[i] = -1
		overflow = true
	}
	return slots, overflow
}
