package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

// kvCounting counts applications per entity in one document per entity
// and in a second document shared by all (two documents per event).
func kvCounting(name string) projections.KV {
	return projections.KV{
		Name: name, Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}, Memory: true,
		Apply: func(ctx context.Context, tx *projections.KVTx, e jetsource.Event) error {
			for _, key := range []string{projections.EntityKey(e), "all"} {
				v, _, err := tx.Get(ctx, key)
				if err != nil {
					return err
				}
				var n int
				if v != nil {
					fmt.Sscan(string(v), &n)
				}
				if err := tx.Put(ctx, key, fmt.Append(nil, n+1)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func kvInt(t testing.TB, kv jetstream.KeyValue, key string) int {
	t.Helper()
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	var n int
	fmt.Sscan(string(e.Value()), &n)
	return n
}

func TestKVRunner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.appendN(t, 0, 2000, 10)
	p, err := projections.NewKV(ctx, e.js, kvCounting("kvcount"))
	if err != nil {
		t.Fatal(err)
	}
	// Two runners of one projection: the compare-and-set fences them, so
	// every event still counts once.
	r1, _ := projections.NewRunner(e.store, []projections.Projection{p}, projections.WithBatchSize(100))
	p2, err := projections.NewKV(ctx, e.js, kvCounting("kvcount"))
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := projections.NewRunner(e.store, []projections.Projection{p2}, projections.WithBatchSize(70))
	runRunner(t, r1)
	runRunner(t, r2)
	e.appendN(t, 2000, 500, 10)
	waitFor(t, 30*time.Second, "catch up", func() bool { return checkpointOf(t, p) == 2500 })
	kv, err := p.KeyValue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := kvInt(t, kv, "all"); got != 2500 {
		t.Fatalf("all = %d, want 2500", got)
	}
	for i := range 10 {
		if got := kvInt(t, kv, fmt.Sprintf("users.u%d", i)); got != 250 {
			t.Fatalf("users.u%d = %d, want 250", i, got)
		}
	}
	st, err := projections.StatusOf(ctx, e.store, p)
	if err != nil || st.Checkpoint != 2500 || st.Lag != 0 || st.Location != "kv:kvcount" {
		t.Fatalf("status %+v, %v", st, err)
	}

	t.Run("RebuildSwapsBucket", func(t *testing.T) {
		if _, err := kv.Put(ctx, "all", []byte("0")); err != nil { // break it
			t.Fatal(err)
		}
		var last projections.Progress
		final, err := projections.Rebuild(ctx, e.store, p, projections.WithProgress(func(pr projections.Progress) { last = pr }, time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if !final.Done || !last.Done || final.Checkpoint != 2500 {
			t.Fatalf("final %+v", final)
		}
		e.appendN(t, 2500, 100, 10)
		waitFor(t, 30*time.Second, "the runners after the swap", func() bool { return checkpointOf(t, p) == 2600 })
		kv2, err := p.KeyValue(ctx)
		if err != nil || kv2.Bucket() != "kvcount_g1" {
			t.Fatalf("bucket %v, %v", kv2, err)
		}
		if got := kvInt(t, kv2, "all"); got != 2600 {
			t.Fatalf("all = %d after rebuild, want 2600", got)
		}
		if _, err := e.js.KeyValue(ctx, "kvcount"); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Fatalf("old bucket: %v", err)
		}
	})
}

func TestKVDocumentsAndBigBatches(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// 1500 entities in one batch: more documents than one atomic batch holds.
	e.appendN(t, 0, 1500, 1500)
	if _, err := e.store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("users." + subjects.Escape("ann@example.com") + ".added"), Data: []byte(`{"a":{"b":1}}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("users.u7.removed")}); err != nil {
		t.Fatal(err)
	}
	d := projections.Documents{Name: "users", Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}, Delete: []string{"removed"}}
	def := d.KV("")
	def.Memory = true
	p, err := projections.NewKV(ctx, e.js, def)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := projections.NewRunner(e.store, []projections.Projection{p}, projections.WithBatchSize(2000))
	runRunner(t, r)
	waitFor(t, 30*time.Second, "catch up", func() bool { return checkpointOf(t, p) == 1502 })
	kv, _ := p.KeyValue(ctx)
	v, err := kv.Get(ctx, "users.u42")
	if err != nil || string(v.Value()) != `{"n":42}` {
		t.Fatalf("users.u42: %v", err)
	}
	v, err = kv.Get(ctx, "users.ann=40example=2Ecom")
	if err != nil || string(v.Value()) != `{"a":{"b":1}}` {
		t.Fatalf("escaped entity: %v", err)
	}
	if _, err := kv.Get(ctx, "users.u7"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("deleted document: %v", err)
	}
}

func TestKVApplyErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.appendN(t, 0, 10, 2)
	def := kvCounting("bad")
	def.Apply = func(ctx context.Context, tx *projections.KVTx, e jetsource.Event) error {
		return tx.Put(ctx, "_jetsource_x", nil)
	}
	p, err := projections.NewKV(ctx, e.js, def)
	if err != nil {
		t.Fatal(err)
	}
	var evs []jetsource.Event
	for ev, err := range e.store.Read(ctx, jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	_, err = p.Apply(ctx, 0, evs)
	var ae *projections.ApplyError
	if !errors.As(err, &ae) || ae.Sequence != 1 || !strings.Contains(err.Error(), "_jetsource_x") {
		t.Fatalf("got %v", err)
	}
	if cp := checkpointOf(t, p); cp != 0 {
		t.Fatalf("checkpoint %d after a failed batch", cp)
	}
	for _, c := range []struct {
		name string
		def  projections.KV
	}{
		{"ErrNameRequired", projections.KV{Apply: def.Apply}},
		{"ErrBadBucket", projections.KV{Name: "x", Bucket: "a.b", Apply: def.Apply}},
		{"ErrNoApply", projections.KV{Name: "x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := projections.NewKV(ctx, e.js, c.def); !errors.Is(err, projections.ErrInvalidProjection) {
				t.Fatalf("got %v", err)
			}
		})
	}
}
