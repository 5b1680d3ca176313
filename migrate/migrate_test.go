package migrate_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/migrate"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

type env struct {
	js    jetstream.JetStream
	store *jetstore.Store
	index string // the surface index directory of run
}

func newEnv(t *testing.T, dup time.Duration) *env {
	t.Helper()
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"customers.>", "orders.>", "probe.>"}, Duplicates: dup}); err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	return &env{js: js, store: st, index: t.TempDir()}
}

// shopDB creates the sample shop database from testdata/migrate/shop.sql
// in a temporary directory and returns its path and an open handle.
func shopDB(t *testing.T) (string, *sql.DB) {
	t.Helper()
	script, err := os.ReadFile("../testdata/migrate/shop.sql")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shop.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(string(script)); err != nil {
		t.Fatal(err)
	}
	return path, db
}

func exec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

const shopMapping = `
source: sqlite:./shop.db
tables:
  - table: customers
    subject: customers.{id}
    data: [name, email, country, vip]
    transforms:
      email: [trim, lower, omit_empty]
      vip: [bool]
  - table: orders
    subject: orders.{id}
`

func mapping(t *testing.T, yaml, dir string) *migrate.Mapping {
	t.Helper()
	m, err := migrate.ParseMapping([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func run(t *testing.T, e *env, m *migrate.Mapping, mode migrate.Mode, opts ...migrate.Option) (migrate.Counts, error) {
	t.Helper()
	ctx := context.Background()
	src, err := migrate.Open(ctx, m.Source, m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := migrate.NewRunner(e.store, m, src, append([]migrate.Option{migrate.WithJetStream(e.js), migrate.WithIndex(e.index, nil)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r.Run(ctx, mode)
}

func mustRun(t *testing.T, e *env, m *migrate.Mapping, mode migrate.Mode, want migrate.Counts) {
	t.Helper()
	got, err := run(t, e, m, mode)
	if err != nil {
		t.Fatalf("%v: %v", mode, err)
	}
	if got != want {
		t.Fatalf("%v counts: got %+v, want %+v", mode, got, want)
	}
}

func last(t *testing.T, e *env) uint64 {
	t.Helper()
	seq, err := e.store.LastSequence(context.Background(), subjects.All())
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// events returns subject -> data of every event, and the subjects in order.
func events(t *testing.T, e *env, filter string) ([]string, map[string]string) {
	t.Helper()
	var order []string
	data := map[string]string{}
	for ev, err := range e.store.Read(context.Background(), jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter(filter)}}) {
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, ev.Subject.String())
		data[ev.Subject.String()] = string(ev.Data)
	}
	return order, data
}

func fold(t *testing.T, e *env, agg string) string {
	t.Helper()
	s, _, err := state.Load(context.Background(), e.store, state.MergeReducer(), subjects.MustParse(agg))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func TestMigrateSQLite(t *testing.T) {
	e := newEnv(t, 0)
	path, _ := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{New: 11})
	order, data := events(t, e, ">")
	if len(order) != 11 || order[0] != "customers.1.imported" || order[5] != "orders.101.imported" {
		t.Fatalf("events: %v", order)
	}
	for subj, want := range map[string]string{
		"customers.1.imported": `{"country":"DE","email":"ann@example.com","name":"Ann Archer","vip":true}`,
		"customers.4.imported": `{"country":"BE","name":"Dan Duval","vip":false}`,
		"orders.103.imported":  `{"customer_id":2,"placed_at":"2026-02-01T17:45:00Z","status":"open","total_cents":9900}`,
	} {
		if data[subj] != want {
			t.Errorf("%s: got %s, want %s", subj, data[subj], want)
		}
	}
	// A re-run stores nothing new.
	before := last(t, e)
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{Unchanged: 11})
	if got := last(t, e); got != before {
		t.Fatalf("re-run wrote: last sequence %d, want %d", got, before)
	}
}

func TestMigrateCSVMatchesSQLite(t *testing.T) {
	es, ec := newEnv(t, 0), newEnv(t, 0)
	path, _ := shopDB(t)
	mustRun(t, es, mapping(t, shopMapping, filepath.Dir(path)), migrate.Migrate, migrate.Counts{New: 11})
	m, err := migrate.LoadMapping("../testdata/migrate/mapping-csv.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, ec, m, migrate.Migrate, migrate.Counts{New: 11})
	_, ds := events(t, es, ">")
	_, dc := events(t, ec, ">")
	for subj, want := range ds {
		if dc[subj] != want {
			t.Errorf("%s: csv %s, sqlite %s", subj, dc[subj], want)
		}
	}
}

// The stream's duplicate window is short: a re-run after it is
// idempotent through the surface, not through event ids.
func TestMigrateIdempotentAfterDuplicateWindow(t *testing.T) {
	e := newEnv(t, 200*time.Millisecond)
	path, _ := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{New: 11})
	waitDuplicateWindow(t, e)
	before := last(t, e)
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{Unchanged: 11})
	mustRun(t, e, m, migrate.Sync, migrate.Counts{Unchanged: 11})
	if got := last(t, e); got != before {
		t.Fatalf("re-run after the duplicate window wrote: last sequence %d, want %d", got, before)
	}
}

// waitDuplicateWindow waits until an id stored now is no longer a
// duplicate: the window of everything stored before has passed.
func waitDuplicateWindow(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	ev := jetsource.Event{ID: "probe-" + t.Name(), Subject: subjects.MustParse("probe.p.x"), Data: []byte(`{}`)}
	if _, err := e.store.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ack, err := e.store.Append(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if !ack.Duplicate {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	t.Fatal("duplicate window did not pass")
}

func TestSyncChangesAndDeletes(t *testing.T) {
	e := newEnv(t, 0)
	path, db := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{New: 11})
	exec(t, db,
		`UPDATE customers SET email = 'bob@new.example' WHERE id = 2`,
		`UPDATE customers SET email = NULL, vip = 1 WHERE id = 3`,
		`INSERT INTO customers (id, name, country) VALUES (6, 'Finn Fox', 'IE')`,
		`UPDATE orders SET status = 'delivered' WHERE id = 103`,
		`DELETE FROM orders WHERE id = 104`,
	)
	mustRun(t, e, m, migrate.Sync, migrate.Counts{New: 1, Changed: 3, Deleted: 1, Unchanged: 7})
	_, data := events(t, e, ">")
	for subj, want := range map[string]string{
		"customers.2.changed":  `{"email":"bob@new.example"}`,
		"customers.3.changed":  `{"email":null,"vip":true}`,
		"customers.6.imported": `{"country":"IE","name":"Finn Fox","vip":false}`,
		"orders.103.changed":   `{"status":"delivered"}`,
		"orders.104.deleted":   ``,
	} {
		got, ok := data[subj]
		if !ok || got != want {
			t.Errorf("%s: got %q (stored %v), want %q", subj, got, ok, want)
		}
	}
	if got, want := fold(t, e, "customers.3"), `{"country":"DE","name":"Cleo Carter","vip":true}`; got != want {
		t.Errorf("folded customers.3: %s, want %s", got, want)
	}
	// Nothing changed upstream: nothing written.
	before := last(t, e)
	mustRun(t, e, m, migrate.Sync, migrate.Counts{Unchanged: 11})
	if got := last(t, e); got != before {
		t.Fatalf("sync without upstream change wrote: last sequence %d, want %d", got, before)
	}
	// A deleted row that comes back is new again.
	exec(t, db, `INSERT INTO orders (id, customer_id, status, total_cents, placed_at) VALUES (104, 3, 'open', 300, '2026-03-01T00:00:00Z')`)
	mustRun(t, e, m, migrate.Sync, migrate.Counts{New: 1, Unchanged: 11})
}

// Events of other writers on a row's aggregate are folded into the state
// the row is compared with.
func TestSyncAfterForeignEvent(t *testing.T) {
	e := newEnv(t, 0)
	path, _ := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{New: 11})
	ctx := context.Background()
	if _, err := e.store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("customers.2.renamed"), Data: []byte(`{"name":"Bobby"}`)}); err != nil {
		t.Fatal(err)
	}
	// A foreign event that changes nothing the row has.
	if _, err := e.store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("customers.5.touched"), Data: []byte(`{"vip":true}`)}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, e, m, migrate.Sync, migrate.Counts{Changed: 1, Unchanged: 10})
	_, data := events(t, e, "customers.2.>")
	if got := data["customers.2.changed"]; got != `{"name":"Bob Baker"}` {
		t.Fatalf("patch: %s", got)
	}
}

// failingSource drops after n rows of every table read.
type failingSource struct {
	migrate.Source
	n int
}

func (s failingSource) Rows(ctx context.Context, table string, cols, order []string) iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		i := 0
		for v, err := range s.Source.Rows(ctx, table, cols, order) {
			if err == nil && i == s.n {
				yield(nil, errors.Join(migrate.ErrSource, errors.New("connection reset")))
				return
			}
			i++
			if !yield(v, err) {
				return
			}
		}
	}
}

func TestMigrateResumesAfterSourceDrop(t *testing.T) {
	e := newEnv(t, 0)
	path, _ := shopDB(t)
	m := mapping(t, shopMapping, filepath.Dir(path))
	ctx := context.Background()
	src, err := migrate.Open(ctx, m.Source, m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := migrate.NewRunner(e.store, m, failingSource{src, 3}, migrate.WithValidation(false))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Run(ctx, migrate.Migrate)
	if !errors.Is(err, migrate.ErrSource) || !strings.Contains(err.Error(), "table customers after row 3") {
		t.Fatalf("err = %v, want ErrSource naming the table and row", err)
	}
	if got != (migrate.Counts{New: 3}) || last(t, e) != 3 {
		t.Fatalf("counts %+v, last %d: want the 3 rows before the drop written", got, last(t, e))
	}
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{New: 8, Unchanged: 3})
	if last(t, e) != 11 {
		t.Fatalf("last sequence %d after the resumed run, want 11", last(t, e))
	}
}

func TestMigrateResumesAfterCancel(t *testing.T) {
	e := newEnv(t, 0)
	path, db := shopDB(t)
	exec(t, db, `WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM n WHERE i < 2999)
		INSERT INTO customers (id, name) SELECT i, 'n' || i FROM n`)
	m := mapping(t, shopMapping, filepath.Dir(path))
	ctx, cancel := context.WithCancel(context.Background())
	src, err := migrate.Open(ctx, m.Source, m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var rows int64
	r, err := migrate.NewRunner(e.store, m, src, migrate.WithProgress(func(n int64) {
		if rows += n; rows == 700 {
			cancel()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, migrate.Migrate); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	written := last(t, e)
	got, err := run(t, e, m, migrate.Migrate)
	if err != nil {
		t.Fatal(err)
	}
	if got.New+got.Unchanged != 2011 || got.Changed != 0 || uint64(got.Unchanged) != written || last(t, e) != 2011 {
		t.Fatalf("resumed counts %+v after %d written, last %d: want every row once", got, written, last(t, e))
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   []string
		mapping string
		err     error
		msg     string
	}{
		{name: "ErrUnknownTable", mapping: "source: sqlite:./shop.db\ntables:\n  - table: clients\n    subject: clients.{id}\n", err: migrate.ErrUnknownTable, msg: `"clients"`},
		{name: "ErrUnknownColumn/key", mapping: "source: sqlite:./shop.db\ntables:\n  - table: customers\n    subject: customers.{uid}\n", err: migrate.ErrUnknownColumn, msg: `"uid"`},
		{name: "ErrUnknownColumn/data", mapping: "source: sqlite:./shop.db\ntables:\n  - table: customers\n    subject: customers.{id}\n    data: [name, phone]\n", err: migrate.ErrUnknownColumn, msg: `"phone"`},
		{name: "ErrNullKey", setup: []string{`CREATE TABLE notes (code TEXT, body TEXT)`, `INSERT INTO notes VALUES ('a', 'x'), (NULL, 'y')`},
			mapping: "source: sqlite:./shop.db\ntables:\n  - table: notes\n    subject: notes.{code}\n", err: migrate.ErrNullKey, msg: "table notes, row 1 (code=?)"},
		{name: "ErrUnsupportedType/blob", setup: []string{`CREATE TABLE files (id INTEGER PRIMARY KEY, content BLOB)`, `INSERT INTO files VALUES (1, 'text'), (2, x'00ff')`},
			mapping: "source: sqlite:./shop.db\ntables:\n  - table: files\n    subject: files.{id}\n", err: migrate.ErrUnsupportedType, msg: `table files, row 2 (id="2"): column content`},
		{name: "ErrUnsupportedType/transform", mapping: "source: sqlite:./shop.db\ntables:\n  - table: customers\n    subject: customers.{id}\n    transforms:\n      name: [int]\n", err: migrate.ErrUnsupportedType, msg: `table customers, row 1 (id="1"): column name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 0)
			path, db := shopDB(t)
			exec(t, db, tc.setup...)
			m := mapping(t, tc.mapping, filepath.Dir(path))
			_, err := run(t, e, m, migrate.Migrate)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v naming %s", err, tc.err, tc.msg)
			}
			if n := last(t, e); n != 0 {
				t.Fatalf("%d events written, want none", n)
			}
		})
	}
}

func TestSkipBadRows(t *testing.T) {
	e := newEnv(t, 0)
	path, db := shopDB(t)
	exec(t, db, `CREATE TABLE notes (code TEXT, body TEXT)`, `INSERT INTO notes VALUES ('a', 'x'), (NULL, 'y'), ('c', 'z')`)
	m := mapping(t, "source: sqlite:./shop.db\ntables:\n  - table: notes\n    subject: customers.notes.{code}\n", filepath.Dir(path))
	var bad []*migrate.RowError
	got, err := run(t, e, m, migrate.Migrate, migrate.WithSkipBadRows(), migrate.WithBadRowHandler(func(re *migrate.RowError) { bad = append(bad, re) }))
	if err != nil {
		t.Fatal(err)
	}
	if got != (migrate.Counts{New: 2, Bad: 1}) || len(bad) != 1 || bad[0].Row != 1 || !errors.Is(bad[0], migrate.ErrNullKey) {
		t.Fatalf("counts %+v, bad %v", got, bad)
	}
}

func TestInvalidMapping(t *testing.T) {
	for _, tc := range []struct{ name, yaml, msg string }{
		{"no key", "source: csv:.\ntables:\n  - table: a\n    subject: a.b\n", "no key column"},
		{"partial token", "source: csv:.\ntables:\n  - table: a\n    subject: a.x{id}\n", "whole token"},
		{"overlap", "source: csv:.\ntables:\n  - table: a\n    subject: shop.{id}\n  - table: b\n    subject: shop.{code}\n", "overlapping"},
		{"unknown field", "source: csv:.\ntables:\n  - table: a\n    subjet: a.{id}\n", "subjet"},
		{"unknown transform", "source: csv:.\ntables:\n  - table: a\n    subject: a.{id}\n    transforms: {x: [shout]}\n", "shout"},
		{"key as data", "source: csv:.\ntables:\n  - table: a\n    subject: a.{id}\n    data: [id]\n", "key column"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := migrate.ParseMapping([]byte(tc.yaml), ".")
			if !errors.Is(err, migrate.ErrInvalidMapping) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want ErrInvalidMapping with %q", err, tc.msg)
			}
		})
	}
}

func TestLoadMappingResolvesRelativePaths(t *testing.T) {
	m, err := migrate.LoadMapping("../testdata/migrate/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs("../testdata/migrate")
	if m.Dir != want || m.Tables[1].Type != migrate.DefaultType || m.Actor != "migrate" {
		t.Fatalf("mapping: dir %s (want %s), type %q, actor %q", m.Dir, want, m.Tables[1].Type, m.Actor)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func mustFilter(s string) subjects.Filter { return subjects.MustParseFilter(s) }
