package state_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

func ExampleLoad() {
	ctx := context.Background()
	store, _ := jetsource.NewMemoryStore()
	store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("users.A.added"), Data: []byte(`{"name":"Ann","age":30}`)})
	store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("users.A.renamed"), Data: []byte(`{"name":"Anne","age":null}`)})

	user := subjects.MustParse("users.A")
	s, seq, _ := state.Load(ctx, store, state.MergeReducer(), user)
	b, _ := json.Marshal(s)
	fmt.Println(seq, string(b))

	// As of the first event, with snapshots kept in memory.
	snaps := state.NewMemorySnapshots()
	s, seq, _ = state.Load(ctx, store, state.MergeReducer(), user, state.AtSequence(1), state.WithSnapshots(snaps))
	b, _ = json.Marshal(s)
	fmt.Println(seq, string(b))
	// Output:
	// 2 {"name":"Anne"}
	// 1 {"age":30,"name":"Ann"}
}

func ExampleMergePatch() {
	doc, _ := state.MergePatch([]byte(`{"title":"Hi","tags":["a"],"author":{"name":"Ann","email":"a@x"}}`),
		[]byte(`{"title":"Hello","tags":["b"],"author":{"email":null}}`))
	fmt.Println(string(doc))
	// Output: {"author":{"name":"Ann"},"tags":["b"],"title":"Hello"}
}

// A reducer of your own: count the events of each name.
func ExampleReducer() {
	counts := state.Reducer[map[string]int]{
		Version: "counts/1",
		Initial: func() map[string]int { return map[string]int{} },
		Apply: func(s map[string]int, e jetsource.Event) (map[string]int, error) {
			s[e.Name()]++
			return s, nil
		},
	}
	ctx := context.Background()
	store, _ := jetsource.NewMemoryStore()
	for _, subj := range []string{"carts.C.added", "carts.C.added", "carts.C.removed"} {
		store.Append(ctx, jetsource.Event{Subject: subjects.MustParse(subj)})
	}
	s, seq, _ := state.Load(ctx, store, counts, subjects.MustParse("carts.C"))
	fmt.Println(seq, s)
	// Output: 3 map[added:2 removed:1]
}
