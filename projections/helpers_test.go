package projections_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/projections/projectiontest"
	"github.com/jetsource/jetsource/subjects"
)

type env struct {
	srv   *embedded.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	store *jetstore.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>", "groups.>"}}); err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, nc: nc, js: js, store: st}
}

// appendN appends n events users.u<i%entities>.added with data {"n":i},
// in batches, numbering from first.
func (e *env) appendN(t testing.TB, first, n, entities int) {
	t.Helper()
	ctx := context.Background()
	var batch []jetsource.Event
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := e.store.AppendBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := first; i < first+n; i++ {
		subj := subjects.MustParse(fmt.Sprintf("users.u%d.added", i%entities))
		batch = append(batch, jetsource.Event{Subject: subj, Data: fmt.Appendf(nil, `{"n":%d}`, i)})
		if len(batch) == jetsource.MaxBatch {
			flush()
		}
	}
	flush()
}

// counting is the counting projection of projectiontest over users.>:
// per entity, how many events were applied and their sum.
func counting(name string) projections.SQL { return projectiontest.Counting(name, "users.>") }

func openDB(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, err := projections.OpenSQLite(filepath.Join(dir, "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// counts returns the number of entities, the applications and the sum.
func counts(t testing.TB, db *sql.DB) (entities, applied, total int64) {
	t.Helper()
	if err := db.QueryRow(`SELECT count(*), coalesce(sum(applied), 0), coalesce(sum(total), 0) FROM counts`).Scan(&entities, &applied, &total); err != nil {
		t.Fatal(err)
	}
	return
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runRunner runs r in the background and stops it when the test ends.
func runRunner(t testing.TB, r *projections.Runner) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("runner did not stop")
		}
	}
	var stopped bool
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return func() { stopped = true; stop() }
}

func checkpointOf(t testing.TB, p projections.Model) uint64 {
	t.Helper()
	cp, err := p.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}
