package migrate_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/migrate"
	"github.com/jetsource/jetsource/subjects"
)

// notices records what WithIndex reports.
type notices struct {
	mu   sync.Mutex
	list []string
}

func (n *notices) add(path, what string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, filepath.Base(path)+": "+what)
}

func (n *notices) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.list
	n.list = nil
	return l
}

// indexRun runs the mapping with the surface index in e.index, counting
// the consumers the run creates.
func indexRun(t *testing.T, e *env, m *migrate.Mapping, mode migrate.Mode, n *notices) (migrate.Counts, int, error) {
	t.Helper()
	var count int
	var mu sync.Mutex
	sub, err := e.js.Conn().Subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED.EVENTS.>", func(*nats.Msg) {
		mu.Lock()
		count++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := run(t, e, m, mode, migrate.WithIndex(e.index, n.add))
	e.js.Conn().Flush()
	sub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	return got, count, err
}

func indexFile(e *env, filter string) string {
	return migrate.IndexFile(e.index, "EVENTS", filter)
}

// A run brings the index up to date with only the events stored since
// its last run: after the first run, a sync that has nothing new to read
// creates no consumer, and results are those of a run without index.
func TestIndexFollowsTheStream(t *testing.T) {
	e := newEnv(t, 0)
	path, db := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	var n notices
	got, _, err := indexRun(t, e, m, migrate.Migrate, &n)
	if err != nil || got != (migrate.Counts{New: 11}) {
		t.Fatalf("migrate: %+v, %v", got, err)
	}
	if l := n.take(); len(l) != 2 || !strings.Contains(l[0], "created") {
		t.Fatalf("notices: %v, want two index files created", l)
	}
	for _, f := range []string{"customers.*.>", "orders.*.>"} {
		if _, err := os.Stat(indexFile(e, f)); err != nil {
			t.Fatalf("index of %s: %v", f, err)
		}
	}
	// The migrate brought the index up to date with its own events:
	// a sync has nothing to read from the stream.
	got, cons, err := indexRun(t, e, m, migrate.Sync, &n)
	if err != nil || got != (migrate.Counts{Unchanged: 11}) || cons != 0 {
		t.Fatalf("first sync: %+v, %d consumers (want none: nothing new), %v", got, cons, err)
	}
	exec(t, db,
		`UPDATE customers SET email = NULL, vip = 1 WHERE id = 3`,
		`DELETE FROM orders WHERE id = 104`,
	)
	// Its own events are read once, after its writes, one consumer per
	// table written to.
	got, cons, err = indexRun(t, e, m, migrate.Sync, &n)
	if err != nil || got != (migrate.Counts{Changed: 1, Deleted: 1, Unchanged: 9}) || cons != 2 {
		t.Fatalf("sync of changes: %+v, %d consumers, %v", got, cons, err)
	}
	// Another writer's event is read at the start of the next run.
	if _, err := e.store.Append(context.Background(), jetsource.Event{Subject: subjects.MustParse("customers.5.touched"), Data: []byte(`{"vip":true}`)}); err != nil {
		t.Fatal(err)
	}
	got, cons, err = indexRun(t, e, m, migrate.Sync, &n)
	if err != nil || got != (migrate.Counts{Unchanged: 10}) || cons != 1 {
		t.Fatalf("sync after another writer: %+v, %d consumers, %v", got, cons, err)
	}
	_, data := events(t, e, "customers.3.>")
	if got := data["customers.3.changed"]; got != `{"email":null,"vip":true}` {
		t.Fatalf("patch %s", got)
	}
	if l := n.take(); len(l) != 0 {
		t.Fatalf("notices: %v", l)
	}
	exec(t, db, `UPDATE customers SET name = 'C. Carter' WHERE id = 3`)
	got, _, err = indexRun(t, e, m, migrate.Sync, &n)
	if err != nil || got != (migrate.Counts{Changed: 1, Unchanged: 9}) {
		t.Fatalf("sync of a second change: %+v, %v", got, err)
	}
	if got, want := fold(t, e, "customers.3"), `{"country":"DE","name":"C. Carter","vip":true}`; got != want {
		t.Fatalf("customers.3 folds to %s, want %s", got, want)
	}
}

// A deleted index file is built again from the stream.
func TestIndexDeleted(t *testing.T) {
	e := newEnv(t, 0)
	path, db := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	var n notices
	if _, _, err := indexRun(t, e, m, migrate.Migrate, &n); err != nil {
		t.Fatal(err)
	}
	n.take()
	exec(t, db, `UPDATE customers SET name = 'Bobby' WHERE id = 2`)
	if err := os.RemoveAll(e.index); err != nil {
		t.Fatal(err)
	}
	got, _, err := indexRun(t, e, m, migrate.Sync, &n)
	if err != nil || got != (migrate.Counts{Changed: 1, Unchanged: 10}) {
		t.Fatalf("sync: %+v, %v", got, err)
	}
	if l := n.take(); len(l) != 2 || !strings.Contains(l[0], "created") {
		t.Fatalf("notices: %v", l)
	}
	// A damaged file too.
	f := indexFile(e, "customers.*.>")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, _, err = indexRun(t, e, m, migrate.Sync, &n)
	if err != nil || got != (migrate.Counts{Unchanged: 11}) {
		t.Fatalf("sync: %+v, %v", got, err)
	}
	if l := n.take(); len(l) != 1 || !strings.Contains(l[0], "rebuilt") || !strings.Contains(l[0], "checksum") {
		t.Fatalf("notices: %v", l)
	}
}

// The index of another stream (one deleted and created again under the
// same name, as another server's stream would be) is not used: the rows
// are new there.
func TestIndexOfAnotherStream(t *testing.T) {
	e := newEnv(t, 0)
	path, _ := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	var n notices
	if _, _, err := indexRun(t, e, m, migrate.Migrate, &n); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	if _, err := jetstore.Provision(ctx, e.js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"customers.>", "orders.>", "probe.>"}}); err != nil {
		t.Fatal(err)
	}
	n.take()
	got, _, err := indexRun(t, e, m, migrate.Migrate, &n)
	if err != nil || got != (migrate.Counts{New: 11}) {
		t.Fatalf("migrate into the new stream: %+v, %v", got, err)
	}
	if l := n.take(); len(l) != 2 || !strings.Contains(l[0], "another stream") {
		t.Fatalf("notices: %v", l)
	}
}

// Messages removed from the stream (a purge of an aggregate) make the
// index be built again: the purged row is new.
func TestIndexAfterPurge(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	// A stream that allows purges.
	if err := e.js.DeleteStream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	st, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"customers.>", "orders.>"}, AllowDirect: true, AllowAtomicPublish: true})
	if err != nil {
		t.Fatal(err)
	}
	path, db := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	var n notices
	if _, _, err := indexRun(t, e, m, migrate.Migrate, &n); err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("customers.3.>")); err != nil {
		t.Fatal(err)
	}
	// (A changed row: the same imported event would be a duplicate
	// within the stream's duplicate window.)
	exec(t, db, `UPDATE customers SET name = 'Cleo' WHERE id = 3`)
	n.take()
	got, _, err := indexRun(t, e, m, migrate.Migrate, &n)
	if err != nil || got != (migrate.Counts{New: 1, Unchanged: 10}) {
		t.Fatalf("migrate after the purge: %+v, %v", got, err)
	}
	if l := n.take(); len(l) != 2 || !strings.Contains(l[0], "removed") {
		t.Fatalf("notices: %v", l)
	}
}

// rewriteIndexMeta changes the checkpoint of an index file as if it had
// read up to the stream's current last sequence: a stale index that
// claims to be up to date.
func rewriteIndexMeta(t *testing.T, path string, last, msgs uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nl := bytes.IndexByte(b, '\n') + 1
	n, k := binary.Uvarint(b[nl:])
	var meta map[string]any
	if err := json.Unmarshal(b[nl+k:nl+k+int(n)], &meta); err != nil {
		t.Fatal(err)
	}
	meta["last"], meta["msgs"] = last, msgs
	mb, _ := json.Marshal(meta)
	out := append([]byte(nil), b[:nl]...)
	out = binary.AppendUvarint(out, uint64(len(mb)))
	out = append(out, mb...)
	out = append(out, b[nl+k+int(n):len(b)-4]...)
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// An index that is stale yet claims to be up to date (here: it missed
// another writer's event) cannot make a run write a wrong patch: the
// append is conditional on the aggregate's last sequence, conflicts, and
// the change is computed again from a fresh fold.
func TestIndexStale(t *testing.T) {
	e := newEnv(t, 0)
	path, db := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	var n notices
	if _, _, err := indexRun(t, e, m, migrate.Migrate, &n); err != nil {
		t.Fatal(err)
	}
	if _, _, err := indexRun(t, e, m, migrate.Sync, &n); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("customers.2.renamed"), Data: []byte(`{"name":"Bobby","nick":"B"}`)}); err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rewriteIndexMeta(t, indexFile(e, "customers.*.>"), info.State.LastSeq, info.State.Msgs)
	exec(t, db, `UPDATE customers SET country = 'ES' WHERE id = 2`)
	n.take()
	got, _, err := indexRun(t, e, m, migrate.Sync, &n)
	if err != nil || got != (migrate.Counts{Changed: 1, Unchanged: 10}) {
		t.Fatalf("sync: %+v, %v", got, err)
	}
	if l := n.take(); len(l) != 0 {
		t.Fatalf("notices: %v (the stale index looks up to date)", l)
	}
	_, data := events(t, e, "customers.2.>")
	if got, want := data["customers.2.changed"], `{"country":"ES","name":"Bob Baker","nick":null}`; got != want {
		t.Fatalf("patch %s, want %s (from the fresh fold)", got, want)
	}
	if got, want := fold(t, e, "customers.2"), `{"country":"ES","email":"bob@example.com","name":"Bob Baker","vip":false}`; got != want {
		t.Fatalf("customers.2 folds to %s, want %s", got, want)
	}
}

// writerSource appends another writer's event to an aggregate while the
// run reads the rows, after the index was brought up to date.
type writerSource struct {
	migrate.Source
	write func()
}

func (s writerSource) Rows(ctx context.Context, table string, cols, order []string) iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		first := true
		for v, err := range s.Source.Rows(ctx, table, cols, order) {
			if first && table == "customers" {
				s.write()
				first = false
			}
			if !yield(v, err) {
				return
			}
		}
	}
}

// A concurrent writer that moves an aggregate during the run: the run's
// change of it is computed again from a fresh fold, with or without
// validation.
func TestIndexConcurrentWriter(t *testing.T) {
	for _, validate := range []bool{true, false} {
		t.Run(map[bool]string{true: "validate", false: "direct"}[validate], func(t *testing.T) {
			e := newEnv(t, 0)
			path, db := shopDB(t)
			m := mapping(t, shopMapping, filepath.Dir(path))
			var n notices
			if _, _, err := indexRun(t, e, m, migrate.Migrate, &n); err != nil {
				t.Fatal(err)
			}
			exec(t, db, `UPDATE customers SET country = 'ES' WHERE id = 2`, `DELETE FROM customers WHERE id = 4`)
			ctx := context.Background()
			src, err := migrate.Open(ctx, m.Source, m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ws := writerSource{Source: src, write: func() {
				for _, ev := range []jetsource.Event{
					{Subject: subjects.MustParse("customers.2.renamed"), Data: []byte(`{"name":"Bobby","nick":"B"}`)},
					{Subject: subjects.MustParse("customers.4.touched"), Data: []byte(`{"nick":"D"}`)},
				} {
					if _, err := e.store.Append(ctx, ev); err != nil {
						t.Error(err)
					}
				}
			}}
			r, err := migrate.NewRunner(e.store, m, ws, migrate.WithJetStream(e.js), migrate.WithIndex(e.index, n.add), migrate.WithValidation(validate))
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Run(ctx, migrate.Sync)
			if err != nil || got != (migrate.Counts{Changed: 1, Deleted: 1, Unchanged: 9}) {
				t.Fatalf("sync: %+v, %v", got, err)
			}
			_, data := events(t, e, "customers.>")
			if got, want := data["customers.2.changed"], `{"country":"ES","name":"Bob Baker","nick":null}`; got != want {
				t.Fatalf("patch %s, want %s", got, want)
			}
			if _, ok := data["customers.4.deleted"]; !ok {
				t.Fatalf("customers.4 not deleted: %v", data)
			}
			// The next run finds nothing to do.
			got, _, err = indexRun(t, e, m, migrate.Sync, &n)
			if err != nil || got != (migrate.Counts{Unchanged: 10}) {
				t.Fatalf("second sync: %+v, %v", got, err)
			}
		})
	}
}

// Two runs at once on one index directory: each leaves a whole index
// file, and the next run neither rebuilds it nor finds anything to do.
func TestIndexConcurrentRuns(t *testing.T) {
	e := newEnv(t, 0)
	path, db := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	var n notices
	if _, _, err := indexRun(t, e, m, migrate.Migrate, &n); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `UPDATE customers SET name = 'Bobby' WHERE id = 2`, `DELETE FROM orders WHERE id = 104`)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			ctx := context.Background()
			src, err := migrate.Open(ctx, m.Source, m.Dir)
			if err != nil {
				errs[i] = err
				return
			}
			defer src.Close()
			r, err := migrate.NewRunner(e.store, m, src, migrate.WithJetStream(e.js), migrate.WithIndex(e.index, n.add))
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = r.Run(ctx, migrate.Sync)
		})
	}
	wg.Wait()
	for _, err := range errs {
		// The later of two writers may meet the other's events twice.
		if err != nil && !errorsIs(err, jetsource.ErrConflict) {
			t.Fatalf("concurrent sync: %v", err)
		}
	}
	n.take()
	got, _, err := indexRun(t, e, m, migrate.Sync, &n)
	if err != nil || got != (migrate.Counts{Unchanged: 10}) {
		t.Fatalf("sync after: %+v, %v", got, err)
	}
	if l := n.take(); len(l) != 0 {
		t.Fatalf("notices: %v", l)
	}
	if got, want := fold(t, e, "customers.2"), `{"country":"FR","email":"bob@example.com","name":"Bobby","vip":false}`; got != want {
		t.Fatalf("customers.2 folds to %s, want %s", got, want)
	}
}
