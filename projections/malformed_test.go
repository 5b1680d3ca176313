package projections_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/projections/projectiontest"
	"github.com/jetsource/jetsource/subjects"
)

// lenient reads the stream as every reader must: malformed messages
// come as events with Malformed set.
func (e *env) lenient() projectiontest.Lenient {
	return projectiontest.Lenient{JS: e.js, Stream: "EVENTS", Last: e.store}
}

func (e *env) add(t *testing.T, subj, data string) uint64 {
	t.Helper()
	ack, err := e.store.Append(context.Background(), jetsource.Event{Subject: subjects.MustParse(subj), Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// The catalogue of malformed messages, and events whose JSON data is no
// object, between good events: the document projections (SQL and KV)
// and a projection of the user's own skip them with a warning and a
// counter, their checkpoints reach the head, and a rebuild skips the same
// events.
func TestProjectionsSkipMalformedEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.add(t, "users.A.added", `{"name":"Ann"}`)
	shapes, seqs := embeddedtest.PublishMalformed(t, e.nc, "users")
	malformed := 0
	for i, s := range shapes {
		if jetsource.DecodeStored(s.Msg.Subject, s.Msg.Header, s.Msg.Data, jetsource.Stored{Stream: "EVENTS", Sequence: seqs[i]}).Malformed != nil {
			malformed++
		}
	}
	e.add(t, "users.A.listed", `[1,2]`) // JSON, no object: no merge patch
	head := e.add(t, "users.A.renamed", `{"name":"Anne"}`)

	users := []subjects.Filter{subjects.MustParseFilter("users.>")}
	d := projections.Documents{Name: "docs", Filters: users}
	db := openDB(t, t.TempDir())
	sqlDocs, err := projections.NewSQL(ctx, db, d.SQL("", ""))
	if err != nil {
		t.Fatal(err)
	}
	kvDocs, err := projections.NewKV(ctx, e.js, func() projections.KV { k := d.KV("kvdocs"); k.Name, k.Memory = "kvdocs", true; return k }())
	if err != nil {
		t.Fatal(err)
	}
	var sawMalformed, applied atomic.Int64
	own, err := projections.NewKV(ctx, e.js, projections.KV{Name: "own", Filters: users, Memory: true,
		Apply: func(ctx context.Context, tx *projections.KVTx, ev jetsource.Event) error {
			if ev.Malformed != nil {
				sawMalformed.Add(1)
			}
			applied.Add(1)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	projs := []projections.Projection{sqlDocs, kvDocs, own}
	r, err := projections.NewRunner(e.lenient(), projs, projections.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runRunner(t, r)
	for _, p := range projs {
		waitFor(t, 20*time.Second, p.Name()+" at the head", func() bool { return checkpointOf(t, p) == head })
	}
	sts, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		want := uint64(malformed)
		if st.Name != "own" {
			want++ // the JSON array
		}
		if st.Skipped < want || st.LastSkipped == nil || st.LastError != "" {
			t.Errorf("%s: skipped %d (want at least %d), last %+v, error %q", st.Name, st.Skipped, want, st.LastSkipped, st.LastError)
		}
	}
	if sawMalformed.Load() != 0 {
		t.Errorf("the user's Apply saw %d malformed events", sawMalformed.Load())
	}
	var doc string
	if err := db.QueryRow(`SELECT document FROM docs WHERE entity = 'users.A'`).Scan(&doc); err != nil || doc != `{"name":"Anne"}` {
		t.Errorf("document %q, %v", doc, err)
	}
	kv, err := kvDocs.KeyValue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := kv.Get(ctx, "users.A"); err != nil || string(v.Value()) != `{"name":"Anne"}` {
		t.Errorf("KV document: %v, %v", v, err)
	}

	var sqlSkipped uint64
	for _, st := range sts {
		if st.Name == "docs" {
			sqlSkipped = st.Skipped
		}
	}
	for _, p := range []projections.Projection{sqlDocs, kvDocs} {
		pr, err := projections.Rebuild(ctx, e.lenient(), p)
		if err != nil {
			t.Fatalf("rebuild %s: %v", p.Name(), err)
		}
		if pr.Skipped != sqlSkipped || pr.Checkpoint != head {
			t.Errorf("rebuild %s: %+v, want %d skipped up to %d", p.Name(), pr, sqlSkipped, head)
		}
	}
}

// A panicking Apply does not end the process: the projection stays at the
// event, reporting the panic, the other projections go on, and a rebuild
// fails with ErrPanic.
func TestApplyPanicIsAnError(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.add(t, "users.A.added", `{"n":1}`)
	bad := e.add(t, "users.B.boom", `{"n":2}`)
	head := e.add(t, "users.C.added", `{"n":3}`)
	users := []subjects.Filter{subjects.MustParseFilter("users.>")}
	boom := func(ev jetsource.Event) {
		if ev.Name() == "boom" {
			panic("apply went boom")
		}
	}
	db := openDB(t, t.TempDir())
	sqlBoom, err := projections.NewSQL(ctx, db, projections.SQL{Name: "sqlboom", Filters: users, Tables: []string{"t"},
		Setup: func(ctx context.Context, tx *projections.SQLTx) error {
			_, err := tx.ExecContext(ctx, `CREATE TABLE `+tx.Table("t")+` (n INTEGER)`)
			return err
		},
		Apply: func(ctx context.Context, tx *projections.SQLTx, ev jetsource.Event) error { boom(ev); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	kvBoom, err := projections.NewKV(ctx, e.js, projections.KV{Name: "kvboom", Filters: users, Memory: true,
		Apply: func(ctx context.Context, tx *projections.KVTx, ev jetsource.Event) error { boom(ev); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	healthy, err := projections.NewSQL(ctx, db, counting("healthy"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := projections.NewRunner(e.store, []projections.Projection{sqlBoom, kvBoom, healthy}, projections.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runRunner(t, r)
	waitFor(t, 20*time.Second, "the healthy projection at the head", func() bool { return checkpointOf(t, healthy) == head })
	for _, p := range []projections.Projection{sqlBoom, kvBoom} {
		waitFor(t, 20*time.Second, p.Name()+" reporting the panic", func() bool {
			sts, err := r.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range sts {
				if st.Name == p.Name() {
					// The events before it are committed on a retry.
					return strings.Contains(st.LastError, "apply went boom") && st.ErrorSequence == bad && st.Checkpoint == bad-1
				}
			}
			return false
		})
		if cp := checkpointOf(t, p); cp != bad-1 {
			t.Errorf("%s: checkpoint %d, want %d (just before the event)", p.Name(), cp, bad-1)
		}
		_, err := projections.Rebuild(ctx, e.store, p)
		var ae *projections.ApplyError
		if !errors.Is(err, projections.ErrPanic) || !errors.As(err, &ae) || ae.Sequence != bad {
			t.Errorf("rebuild %s: %v", p.Name(), err)
		}
		var pe *projections.PanicError
		if !errors.As(err, &pe) || !strings.Contains(string(pe.Stack), "TestApplyPanicIsAnError") {
			t.Errorf("rebuild %s: no stack in %v", p.Name(), err)
		}
	}
}

// A KV projection's buckets take the size limit of its definition.
func TestKVMaxBytes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	def := kvCounting("limited")
	def.MaxBytes = 1 << 20
	if _, err := projections.NewKV(ctx, e.js, def); err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(ctx, "KV_limited")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxBytes; got != 1<<20 {
		t.Fatalf("bucket MaxBytes %d, want %d", got, 1<<20)
	}
}
