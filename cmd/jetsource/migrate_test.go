package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/migrate"
)

// migrateShop copies the sample mapping next to a fresh SQLite database
// made from testdata/migrate/shop.sql, and returns the mapping's path and
// the database.
func migrateShop(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"mapping.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "migrate", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script, err := os.ReadFile(filepath.Join("..", "..", "testdata", "migrate", "shop.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(string(script)); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "mapping.yaml"), db
}

func shopServer(t *testing.T) string {
	t.Helper()
	return importServer(t, func(c *jetstore.StreamConfig) { c.Subjects = []string{"customers.>", "orders.>"} })
}

// migrateJSON runs migrate or sync with -o json and decodes the counts.
func migrateJSON(t *testing.T, args ...string) (int, migrate.Counts, string) {
	t.Helper()
	if !slices.Contains(args, "--index") {
		args = append(args, "--index", t.TempDir())
	}
	code, out, errOut := run(t, context.Background(), "", append(args, "-o", "json", "--no-progress")...)
	var c migrate.Counts
	if code == 0 || strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("%v: output %q is not JSON (code %d, stderr %q)", args, out, code, errOut)
		}
	}
	return code, c, errOut
}

func TestMigrateAndSyncCommands(t *testing.T) {
	srv := shopServer(t)
	mapping, db := migrateShop(t)
	index := t.TempDir()
	step := func(cmd string, want migrate.Counts) string {
		t.Helper()
		code, got, errOut := migrateJSON(t, cmd, "--mapping", mapping, "--index", index, srv)
		if code != 0 || got != want {
			t.Fatalf("%s: code %d, counts %+v, want %+v; stderr %s", cmd, code, got, want, errOut)
		}
		return errOut
	}
	// The surface index files are created in --index, and said so.
	if errOut := step("migrate", migrate.Counts{New: 11}); strings.Count(errOut, "surface index "+index) != 2 || !strings.Contains(errOut, "created") {
		t.Fatalf("stderr %q: want the two index files created", errOut)
	}
	if errOut := step("migrate", migrate.Counts{Unchanged: 11}); errOut != "" {
		t.Fatalf("stderr %q", errOut)
	}
	// Without the index, the same.
	if code, got, errOut := migrateJSON(t, "migrate", "--mapping", mapping, "--no-index", srv); code != 0 || got != (migrate.Counts{Unchanged: 11}) {
		t.Fatalf("--no-index: code %d, counts %+v, stderr %s", code, got, errOut)
	}
	for _, s := range []string{
		`UPDATE customers SET email = 'bob@new.example' WHERE id = 2`,
		`DELETE FROM orders WHERE id = 104`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	step("sync", migrate.Counts{Changed: 1, Deleted: 1, Unchanged: 9})
	step("sync", migrate.Counts{Unchanged: 10})
	lines := importExported(t, srv, "customers.2.>")
	if len(lines) != 2 || !strings.Contains(lines[1], `"data":{"email":"bob@new.example"}`) || !strings.Contains(lines[1], `"statehash":`) || !strings.Contains(lines[1], `"actor":"migrate"`) {
		t.Fatalf("customers.2 events: %v", lines)
	}
	// The table output and the progress report.
	code, out, errOut := run(t, context.Background(), "", "sync", "--mapping", mapping, "--index", index, srv)
	if code != 0 || !strings.Contains(out, "unchanged  10") || !strings.Contains(errOut, "sync: 10 rows") {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestMigrateCommandBadInput(t *testing.T) {
	srv := shopServer(t)
	mapping, db := migrateShop(t)
	if _, err := db.Exec(`CREATE TABLE notes (code TEXT, body TEXT); INSERT INTO notes VALUES ('a', 'x'), (NULL, 'y')`); err != nil {
		t.Fatal(err)
	}
	write := func(body string) string {
		p := filepath.Join(filepath.Dir(mapping), "m.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, mapping, stderr string
		code                  int
		want                  migrate.Counts
	}{
		{name: "unknown table", mapping: "source: sqlite:./shop.db\ntables:\n  - table: clients\n    subject: customers.{id}\n", stderr: `no table "clients"`, code: 1},
		{name: "unknown column", mapping: "source: sqlite:./shop.db\ntables:\n  - table: customers\n    subject: customers.{id}\n    data: [phone]\n", stderr: `no column "phone"`, code: 1},
		{name: "null key", mapping: "source: sqlite:./shop.db\ntables:\n  - table: notes\n    subject: customers.notes.{code}\n", stderr: "table notes, row 1 (code=?): key column code: migrate: null key", code: 1},
		{name: "not captured", mapping: "source: sqlite:./shop.db\ntables:\n  - table: customers\n    subject: clients.{id}\n", stderr: "does not capture clients.*.>", code: 1},
		{name: "missing database", mapping: "source: sqlite:./nope.db\ntables:\n  - table: customers\n    subject: customers.{id}\n", stderr: "nope.db", code: 1},
		{name: "bad mapping", mapping: "source: sqlite:./shop.db\ntables:\n  - table: customers\n    subject: customers.id\n", stderr: "no key column", code: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := migrateJSON(t, "migrate", "--mapping", write(tc.mapping), srv)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("code %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.stderr)
			}
			if lines := importExported(t, srv); len(lines) != 0 {
				t.Fatalf("written: %v", lines)
			}
		})
	}
	t.Run("skip", func(t *testing.T) {
		m := write("source: sqlite:./shop.db\ntables:\n  - table: notes\n    subject: customers.notes.{code}\n")
		code, got, errOut := migrateJSON(t, "migrate", "--mapping", m, "--on-error", "skip", srv)
		if code != 1 || got != (migrate.Counts{New: 1, Bad: 1}) || !strings.Contains(errOut, "table notes, row 1") {
			t.Fatalf("code %d, counts %+v, stderr %q", code, got, errOut)
		}
	})
	code, _, errOut := migrateJSON(t, "migrate", "--mapping", mapping, "--on-error", "maybe", srv)
	if code != 2 {
		t.Fatalf("bad --on-error: code %d, stderr %q", code, errOut)
	}
}
