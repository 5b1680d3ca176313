package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jetsource/jetsource/migrate"
)

// postgresURL returns the server of JETSOURCE_TEST_POSTGRES with a new
// schema of its own loaded with the sample shop (search_path set to it),
// or skips the test when the variable is unset.
func postgresURL(t *testing.T) (string, *sql.DB) {
	t.Helper()
	base := os.Getenv("JETSOURCE_TEST_POSTGRES")
	if base == "" {
		t.Skip("JETSOURCE_TEST_POSTGRES is not set (.ci/migrate.sh sets it)")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := fmt.Sprintf("t%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if db, err := sql.Open("pgx", base); err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	script, err := os.ReadFile("../testdata/migrate/shop.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(script)); err != nil {
		t.Fatal(err)
	}
	return u.String(), db
}

func TestPostgres(t *testing.T) {
	src, db := postgresURL(t)
	e := newEnv(t, 0)
	m := mapping(t, strings.Replace(shopMapping, "sqlite:./shop.db", src, 1), "")
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{New: 11})
	_, data := events(t, e, ">")
	for subj, want := range map[string]string{
		"customers.1.imported": `{"country":"DE","email":"ann@example.com","name":"Ann Archer","vip":true}`,
		"orders.103.imported":  `{"customer_id":2,"placed_at":"2026-02-01T17:45:00Z","status":"open","total_cents":9900}`,
	} {
		if data[subj] != want {
			t.Errorf("%s: got %s, want %s", subj, data[subj], want)
		}
	}
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{Unchanged: 11})
	exec(t, db,
		`UPDATE customers SET email = 'bob@new.example' WHERE id = 2`,
		`DELETE FROM orders WHERE id = 104`,
		`INSERT INTO customers (id, name, country) VALUES (6, 'Finn Fox', 'IE')`,
	)
	mustRun(t, e, m, migrate.Sync, migrate.Counts{New: 1, Changed: 1, Deleted: 1, Unchanged: 9})
	mustRun(t, e, m, migrate.Sync, migrate.Counts{Unchanged: 11})
	_, data = events(t, e, "customers.2.>")
	if got := data["customers.2.changed"]; got != `{"email":"bob@new.example"}` {
		t.Fatalf("patch %s", got)
	}
}

// PostgreSQL types: numeric, json, timestamps, booleans map to JSON; a
// bytea, a NULL key and an unknown table are errors that name the row.
func TestPostgresTypes(t *testing.T) {
	src, db := postgresURL(t)
	e := newEnv(t, 0)
	exec(t, db,
		`CREATE TABLE things (id text PRIMARY KEY, price numeric(10,2), meta jsonb, at timestamptz, ok boolean, n bigint, f double precision)`,
		`INSERT INTO things VALUES ('a b', 12.50, '{"tags":["x"],"k":1}', '2026-01-02T03:04:05Z', true, 9007199254740993, 0.25)`,
	)
	m := mapping(t, "source: "+src+"\ntables:\n  - table: things\n    subject: customers.things.{id}\n", "")
	mustRun(t, e, m, migrate.Migrate, migrate.Counts{New: 1})
	_, data := events(t, e, ">")
	want := `{"at":"2026-01-02T03:04:05Z","f":0.25,"meta":{"k":1,"tags":["x"]},"n":9007199254740993,"ok":true,"price":12.50}`
	if got := data["customers.things.a=20b.imported"]; got != want {
		t.Fatalf("got %s, want %s (all: %v)", got, want, data)
	}
	exec(t, db, `CREATE TABLE blobs (id int PRIMARY KEY, b bytea)`, `INSERT INTO blobs VALUES (1, '\x00ff')`,
		`CREATE TABLE nokey (id int, v text)`, `INSERT INTO nokey VALUES (NULL, 'x')`)
	for _, tc := range []struct {
		table string
		err   error
		msg   string
	}{
		{"blobs", migrate.ErrUnsupportedType, "table blobs, row 1"},
		{"nokey", migrate.ErrNullKey, "table nokey, row 1"},
		{"missing", migrate.ErrUnknownTable, `"missing"`},
	} {
		m := mapping(t, "source: "+src+"\ntables:\n  - table: "+tc.table+"\n    subject: orders.x.{id}\n", "")
		_, err := run(t, e, m, migrate.Migrate)
		if !errorsIs(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want %v naming %s", tc.table, err, tc.err, tc.msg)
		}
	}
	ctx := context.Background()
	if n, _ := e.store.LastSequence(ctx, mustFilter("orders.>")); n != 0 {
		t.Fatalf("bad tables wrote up to %d", n)
	}
}
