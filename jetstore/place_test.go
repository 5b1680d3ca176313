package jetstore

import (
	"testing"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

func TestPlaceConditions(t *testing.T) {
	evs := func(subjs ...string) []jetsource.Event {
		out := make([]jetsource.Event, len(subjs))
		for i, s := range subjs {
			out[i] = jetsource.Event{Subject: subjects.MustParse(s)}
		}
		return out
	}
	cond := func(f string) jetsource.Condition {
		return jetsource.Condition{Filter: subjects.MustParseFilter(f), Exact: true}
	}
	for _, tc := range []struct {
		name     string
		events   []jetsource.Event
		conds    []jetsource.Condition
		want     []int
		overflow bool
	}{
		{"one on one", evs("a.A.x"), []jetsource.Condition{cond("a.A.>")}, []int{0}, false},
		{"more conditions than events", evs("a.A.x"), []jetsource.Condition{cond("a.A.>"), cond("b.>")}, []int{0, -1}, true},
		{"literal before its first write", evs("a.B.x", "a.A.x"), []jetsource.Condition{cond("a.A.x"), cond("a.B.x")}, []int{1, 0}, false},
		{"two literals on the first message's subject", evs("a.A.x", "a.B.x"), []jetsource.Condition{cond("a.A.x"), cond("a.A.x")}, []int{0, -1}, true},
		{"wildcards anywhere", evs("a.A.x", "a.A.y"), []jetsource.Condition{cond("a.A.>"), cond("a.*.x")}, []int{0, 1}, false},
		{"literal deadline first", evs("a.A.x", "a.B.x", "a.C.x"), []jetsource.Condition{cond("a.>"), cond("a.B.x"), cond("a.A.x")}, []int{2, 1, 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, overflow := placeConditions(tc.events, tc.conds)
			if overflow != tc.overflow {
				t.Errorf("overflow %v, want %v", overflow, tc.overflow)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("slots %v, want %v", got, tc.want)
					break
				}
			}
		})
	}
}
