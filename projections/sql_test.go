package projections_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

func TestSQLRunner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.appendN(t, 0, 3000, 10)
	db := openDB(t, t.TempDir())
	p, err := projections.NewSQL(ctx, db, counting("counter"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := projections.NewRunner(e.store, []projections.Projection{p}, projections.WithBatchSize(256))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRunner(t, r)
	waitFor(t, 20*time.Second, "catch up", func() bool { return checkpointOf(t, p) == 3000 })
	e.appendN(t, 3000, 500, 10) // live events
	waitFor(t, 20*time.Second, "live events", func() bool { return checkpointOf(t, p) == 3500 })
	sts, err := r.Status(ctx)
	if err != nil || len(sts) != 1 || sts[0].Lag != 0 || sts[0].Head != 3500 || !sts[0].Running {
		t.Fatalf("status %+v, %v", sts, err)
	}
	stop()
	if n, applied, total := counts(t, db); n != 10 || applied != 3500 || total != 3499*3500/2 {
		t.Fatalf("got %d entities, %d applied, total %d", n, applied, total)
	}

	t.Run("RestartResumesFromCheckpoint", func(t *testing.T) {
		e.appendN(t, 3500, 100, 10)
		st, err := projections.StatusOf(ctx, e.store, p)
		if err != nil || st.Lag != 100 || st.Checkpoint != 3500 {
			t.Fatalf("status %+v, %v", st, err)
		}
		r2, _ := projections.NewRunner(e.store, []projections.Projection{p})
		stop := runRunner(t, r2)
		waitFor(t, 20*time.Second, "resume", func() bool { return checkpointOf(t, p) == 3600 })
		stop()
		if _, applied, _ := counts(t, db); applied != 3600 {
			t.Fatalf("applied %d, want 3600", applied)
		}
	})
	t.Run("RedeliveryHasNoEffect", func(t *testing.T) {
		var evs []jetsource.Event
		for ev, err := range e.store.Read(ctx, jetsource.Query{FromSequence: 3590}) {
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
		cp, err := p.Apply(ctx, 3589, evs)
		if err != nil || cp != 3600 {
			t.Fatalf("got %d, %v", cp, err)
		}
		if _, applied, _ := counts(t, db); applied != 3600 {
			t.Fatalf("applied %d after redelivery, want 3600", applied)
		}
	})
	t.Run("CheckpointBehindIsRefused", func(t *testing.T) {
		_, err := p.Apply(ctx, 4000, nil)
		var ce *projections.CheckpointError
		if !errors.Is(err, projections.ErrCheckpointMoved) || !errors.As(err, &ce) || ce.Current != 3600 {
			t.Fatalf("got %v", err)
		}
	})
}

func TestSQLApplyErrorIsRecordedAndRetried(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.appendN(t, 0, 100, 5)
	db := openDB(t, t.TempDir())
	var broken atomic.Bool
	broken.Store(true)
	def := counting("fragile")
	apply := def.Apply
	def.Apply = func(ctx context.Context, tx *projections.SQLTx, ev jetsource.Event) error {
		if ev.Sequence == 60 && broken.Load() {
			return errors.New("cannot handle 60")
		}
		return apply(ctx, tx, ev)
	}
	p, err := projections.NewSQL(ctx, db, def)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := projections.NewRunner(e.store, []projections.Projection{p}, projections.WithBatchSize(1000), projections.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
	runRunner(t, r)
	waitFor(t, 10*time.Second, "the events before the poison event", func() bool { return checkpointOf(t, p) == 59 })
	waitFor(t, 10*time.Second, "the error in the status", func() bool {
		st, err := projections.StatusOf(ctx, e.store, p)
		return err == nil && st.ErrorSequence == 60 && st.LastError != "" && st.Lag == 41
	})
	sts, _ := r.Status(ctx)
	if sts[0].ErrorSequence != 60 {
		t.Fatalf("runner status %+v", sts[0])
	}
	broken.Store(false)
	waitFor(t, 10*time.Second, "recovery", func() bool { return checkpointOf(t, p) == 100 })
	if _, applied, _ := counts(t, db); applied != 100 {
		t.Fatalf("applied %d", applied)
	}
}

func TestSQLRebuildWhileRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 5000 events and rebuilds while running")
	}
	e := newEnv(t)
	ctx := context.Background()
	e.appendN(t, 0, 5000, 20)
	db := openDB(t, t.TempDir())
	p, err := projections.NewSQL(ctx, db, counting("counter"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := projections.NewRunner(e.store, []projections.Projection{p})
	runRunner(t, r)
	waitFor(t, 20*time.Second, "catch up", func() bool { return checkpointOf(t, p) == 5000 })
	// Corrupt the live read model, as a bug in an older version would.
	if _, err := db.Exec(`UPDATE counts SET applied = 0, total = 0`); err != nil {
		t.Fatal(err)
	}
	var reports []projections.Progress
	appended := make(chan struct{})
	go func() {
		defer close(appended) // also when appendN fails (t.Fatal ends this goroutine)
		e.appendN(t, 5000, 1000, 20)
	}()
	final, err := projections.Rebuild(ctx, e.store, p, projections.WithProgress(func(pr projections.Progress) { reports = append(reports, pr) }, 0), projections.WithRebuildBatchSize(500))
	if err != nil {
		t.Fatal(err)
	}
	<-appended
	if !final.Done || len(reports) < 3 || final.Target < 5000 || final.Applied < 5000 {
		t.Fatalf("final %+v after %d reports", final, len(reports))
	}
	waitFor(t, 20*time.Second, "the runner after the swap", func() bool { return checkpointOf(t, p) == 6000 })
	if n, applied, total := counts(t, db); n != 20 || applied != 6000 || total != 5999*6000/2 {
		t.Fatalf("got %d entities, %d applied, total %d", n, applied, total)
	}
	info, err := p.Info(ctx)
	if err != nil || info.Generation != 1 {
		t.Fatalf("info %+v, %v", info, err)
	}
	var leftovers int
	db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name LIKE 'counts__g%' AND type = 'table'`).Scan(&leftovers)
	if leftovers != 0 {
		t.Fatalf("%d generation tables left", leftovers)
	}
}

func TestSQLDocuments(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, ev := range []struct{ subj, data string }{
		{"users.A.added", `{"name":"Ann","tags":{"x":1}}`},
		{"users.B.added", `{"name":"Bob"}`},
		{"users.A.renamed", `{"name":"Anne","tags":{"x":null,"y":2}}`},
		{"users.B.deleted", ``},
		{"groups.G.added", `{"name":"G"}`},
	} {
		if _, err := e.store.Append(ctx, jetsource.Event{Subject: subjects.MustParse(ev.subj), Data: []byte(ev.data)}); err != nil {
			t.Fatal(err)
		}
	}
	db := openDB(t, t.TempDir())
	d := projections.Documents{Name: "users", Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}, Delete: []string{"deleted"}}
	p, err := projections.NewSQL(ctx, db, d.SQL("", "sqlite:test"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := projections.NewRunner(e.store, []projections.Projection{p})
	runRunner(t, r)
	waitFor(t, 10*time.Second, "catch up", func() bool { return checkpointOf(t, p) == 4 })
	rows, err := db.Query(`SELECT entity, document, sequence, updated FROM users ORDER BY entity`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var ent, doc, updated string
		var seq int
		if err := rows.Scan(&ent, &doc, &seq, &updated); err != nil {
			t.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339Nano, updated); err != nil {
			t.Fatal(err)
		}
		got = append(got, ent+" "+doc)
		if seq != 3 {
			t.Fatalf("sequence %d", seq)
		}
	}
	if len(got) != 1 || got[0] != `users.A {"name":"Anne","tags":{"y":2}}` {
		t.Fatalf("got %q", got)
	}
	var name string
	if err := db.QueryRow(`SELECT json_extract(document, '$.name') FROM users WHERE entity = 'users.A'`).Scan(&name); err != nil || name != "Anne" {
		t.Fatalf("json_extract: %q, %v", name, err)
	}
}

func TestNewSQLRefusesBadDefinitions(t *testing.T) {
	db := openDB(t, t.TempDir())
	ok := counting("ok")
	cases := []struct {
		name   string
		change func(*projections.SQL)
	}{
		{"ErrNameRequired", func(d *projections.SQL) { d.Name = "" }},
		{"ErrNameInvalid", func(d *projections.SQL) { d.Name = "a b" }},
		{"ErrNoTables", func(d *projections.SQL) { d.Tables = nil }},
		{"ErrBadTable", func(d *projections.SQL) { d.Tables = []string{"x;drop"} }},
		{"ErrReservedTable", func(d *projections.SQL) { d.Tables = []string{projections.CheckpointTable} }},
		{"ErrNoApply", func(d *projections.SQL) { d.Apply = nil }},
		{"ErrEmptyFilter", func(d *projections.SQL) { d.Filters = []subjects.Filter{{}} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := ok
			c.change(&d)
			if _, err := projections.NewSQL(context.Background(), db, d); !errors.Is(err, projections.ErrInvalidProjection) {
				t.Fatalf("got %v", err)
			}
		})
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table'`).Scan(&n)
	if n != 0 {
		t.Fatalf("bad definitions created %d tables", n)
	}
}
