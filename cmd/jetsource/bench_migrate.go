package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource/migrate"
)

func (m *Main) newBenchMigrateCmd(g *globals) *cobra.Command {
	var rows, syncRows, rounds int
	var asJSON bool
	var pgURL string
	cmd := &cobra.Command{
		Use:   "migrate [--json] [--rows N] [--postgres URL]",
		Short: "Rows migrated per second against importing the same events as NDJSON; sync against reading the rows",
		Long: `bench migrate generates a table of customers (id, name, email, country,
vip, about 120 bytes of data per row) and, in one run on one embedded
server (fsync on every write):

  migrate-sqlite    "jetsource migrate" of the table from SQLite against
                    "jetsource import" of the same events as an NDJSON
                    file, both in-process with their defaults (migrate
                    reads the rows once, spooling what to write until
                    every row is checked); rows/s, target 0.7
  migrate-postgres  the same from PostgreSQL, when --postgres (or
                    JETSOURCE_TEST_POSTGRES) names a server
  sync-1pct         "jetsource sync" over --sync-rows rows of which 1%
                    changed against reading the same rows from SQLite
                    through the same source (rows/s of each; target 0.5:
                    sync within twice the time of reading the rows); the
                    surface index lives in the bench's temporary directory
                    and is brought up to date by the migrate before

Rounds alternate the two sides of a comparison.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rows <= 0 || syncRows < 100 || rounds <= 0 {
				return usagef("--rows and --rounds must be positive, --sync-rows at least 100")
			}
			if asJSON {
				g.output = "json"
			}
			if pgURL == "" {
				pgURL = m.Getenv("JETSOURCE_TEST_POSTGRES")
			}
			ctx := cmd.Context()
			var results []benchResult
			r, err := m.benchMigrate(ctx, "migrate-sqlite", "", rows, rounds)
			if err != nil {
				return err
			}
			results = append(results, r)
			if pgURL != "" {
				r, err := m.benchMigrate(ctx, "migrate-postgres", pgURL, rows, rounds)
				if err != nil {
					return err
				}
				results = append(results, r)
			}
			r, err = m.benchSync(ctx, syncRows, rounds)
			if err != nil {
				return err
			}
			results = append(results, r)
			m.printResults(g, results)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON line per scenario (same as --output json)")
	f.IntVar(&rows, "rows", 30000, "rows per round and side of the migrate scenarios")
	f.IntVar(&syncRows, "sync-rows", 20000, "rows of the sync scenario")
	f.IntVar(&rounds, "rounds", 2, "rounds per side")
	f.StringVar(&pgURL, "postgres", "", "PostgreSQL server for migrate-postgres (default: env JETSOURCE_TEST_POSTGRES; none: skipped)")
	return cmd
}

// benchRow is row i of the generated customers table.
func benchRow(i, version int) (name, email, country string, vip bool) {
	countries := [...]string{"DE", "FR", "NL", "BE", "IE", "IT", "ES", "PL"}
	return fmt.Sprintf("Customer %d v%d", i, version), fmt.Sprintf("customer%d@example.com", i), countries[i%len(countries)], i%7 == 0
}

const benchTableSQL = `CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country TEXT, vip BOOLEAN NOT NULL, about TEXT)`

const benchAbout = "a customer of the benchmark, with some text to give the row a realistic size"

// benchFillDB inserts n generated rows into db's customers table.
func benchFillDB(ctx context.Context, db *sql.DB, n int, placeholder func(int) string) error {
	if _, err := db.ExecContext(ctx, benchTableSQL); err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	const per = 500
	for start := 0; start < n; start += per {
		var q strings.Builder
		q.WriteString("INSERT INTO customers (id, name, email, country, vip, about) VALUES ")
		var args []any
		for i := start; i < min(n, start+per); i++ {
			if i > start {
				q.WriteString(", ")
			}
			k := len(args)
			fmt.Fprintf(&q, "(%s, %s, %s, %s, %s, %s)", placeholder(k+1), placeholder(k+2), placeholder(k+3), placeholder(k+4), placeholder(k+5), placeholder(k+6))
			name, email, country, vip := benchRow(i, 0)
			args = append(args, i, name, email, country, vip, benchAbout)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// benchNDJSON writes the events migrate makes of n generated rows, under
// root, as an NDJSON file for import.
func benchNDJSON(path, root string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := range n {
		name, email, country, vip := benchRow(i, 0)
		data, _ := json.Marshal(map[string]any{"about": benchAbout, "country": country, "email": email, "name": name, "vip": vip})
		line, _ := json.Marshal(map[string]any{"subject": fmt.Sprintf("%s.%d.imported", root, i), "id": fmt.Sprintf("bench-%s-%d", root, i), "actor": "migrate", "data": json.RawMessage(data)})
		w.Write(line)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func benchMapping(dir, source, root string) (string, error) {
	p := filepath.Join(dir, root+".yaml")
	body := fmt.Sprintf("source: %s\ntables:\n  - table: customers\n    subject: %s.{id}\n    transforms:\n      vip: [bool]\n", source, root)
	return p, os.WriteFile(p, []byte(body), 0o600)
}

// benchCLI runs a jetsource command in-process against the bench server.
func (m *Main) benchCLI(ctx context.Context, env *benchEnv, args ...string) (time.Duration, string, error) {
	var out, errOut bytes.Buffer
	sub := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	args = append(args, "--server", env.srv.ClientURL(), "--stream", "BENCH", "--timeout", "30s", "--no-progress", "-o", "json")
	if args[0] == "migrate" || args[0] == "sync" {
		args = append(args, "--index", filepath.Join(env.dir, "index"))
	}
	start := time.Now()
	if code := sub.Run(ctx, args); code != 0 {
		return 0, "", fmt.Errorf("%s: exit %d: %s%s", args[0], code, errOut.String(), out.String())
	}
	return time.Since(start), out.String(), nil
}

func (m *Main) benchMigrate(ctx context.Context, name, pgURL string, rows, rounds int) (benchResult, error) {
	env, err := newBenchEnv(ctx, 0)
	if err != nil {
		return benchResult{}, err
	}
	defer env.Close()
	source, cleanup, err := benchSource(ctx, env.dir, pgURL, rows)
	if err != nil {
		return benchResult{}, err
	}
	defer cleanup()
	var migDur, impDur time.Duration
	for round := range rounds {
		file := filepath.Join(env.dir, fmt.Sprintf("import%d.ndjson", round))
		if err := benchNDJSON(file, fmt.Sprintf("bench.i%d", round), rows); err != nil {
			return benchResult{}, err
		}
		d, _, err := m.benchCLI(ctx, env, "import", file)
		if err != nil {
			return benchResult{}, err
		}
		impDur += d
		mapping, err := benchMapping(env.dir, source, fmt.Sprintf("bench.m%d", round))
		if err != nil {
			return benchResult{}, err
		}
		d, out, err := m.benchCLI(ctx, env, "migrate", "--mapping", mapping)
		if err != nil {
			return benchResult{}, err
		}
		if want := fmt.Sprintf(`{"new":%d,`, rows); !strings.HasPrefix(out, want) {
			return benchResult{}, fmt.Errorf("migrate: %s, want %d new", out, rows)
		}
		migDur += d
	}
	total := float64(rows * rounds)
	return newResult(name, total/migDur.Seconds(), total/impDur.Seconds(), 0.7, rows*rounds, 1, 0), nil
}

// benchSource creates the generated table in a new SQLite file in dir, or
// in a new schema of the PostgreSQL server, and returns its source string.
func benchSource(ctx context.Context, dir, pgURL string, rows int) (string, func(), error) {
	if pgURL == "" {
		path := filepath.Join(dir, "bench.db")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			return "", nil, err
		}
		defer db.Close()
		if err := benchFillDB(ctx, db, rows, func(int) string { return "?" }); err != nil {
			return "", nil, err
		}
		return "sqlite:" + path, func() {}, nil
	}
	admin, err := sql.Open("pgx", pgURL)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("bench%d", time.Now().UnixNano())
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return "", nil, err
	}
	cleanup := func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE"); admin.Close() }
	sep := "?"
	if strings.Contains(pgURL, "?") {
		sep = "&"
	}
	src := pgURL + sep + "search_path=" + schema
	db, err := sql.Open("pgx", src)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	defer db.Close()
	if err := benchFillDB(ctx, db, rows, func(k int) string { return fmt.Sprintf("$%d", k) }); err != nil {
		cleanup()
		return "", nil, err
	}
	return src, cleanup, nil
}

// benchSync migrates n rows, changes 1% of them, and compares the time of
// "jetsource sync" with the time of reading the rows through the source.
func (m *Main) benchSync(ctx context.Context, n, rounds int) (benchResult, error) {
	env, err := newBenchEnv(ctx, 0)
	if err != nil {
		return benchResult{}, err
	}
	defer env.Close()
	source, _, err := benchSource(ctx, env.dir, "", n)
	if err != nil {
		return benchResult{}, err
	}
	mapping, err := benchMapping(env.dir, source, "bench.s")
	if err != nil {
		return benchResult{}, err
	}
	if _, _, err := m.benchCLI(ctx, env, "migrate", "--mapping", mapping); err != nil {
		return benchResult{}, err
	}
	db, err := sql.Open("sqlite", strings.TrimPrefix(source, "sqlite:"))
	if err != nil {
		return benchResult{}, err
	}
	defer db.Close()
	var syncDur, readDur time.Duration
	for round := range rounds {
		// 1% of the rows change upstream.
		if _, err := db.ExecContext(ctx, fmt.Sprintf("UPDATE customers SET name = 'Customer ' || id || ' v%d' WHERE id %% 100 = 0", round+1)); err != nil {
			return benchResult{}, err
		}
		d, err := benchReadRows(ctx, source)
		if err != nil {
			return benchResult{}, err
		}
		readDur += d
		d, out, err := m.benchCLI(ctx, env, "sync", "--mapping", mapping)
		if err != nil {
			return benchResult{}, err
		}
		if want := fmt.Sprintf(`{"new":0,"changed":%d,`, (n+99)/100); !strings.HasPrefix(out, want) {
			return benchResult{}, fmt.Errorf("sync: %s, want %d changed", out, (n+99)/100)
		}
		syncDur += d
	}
	total := float64(n * rounds)
	return newResult("sync-1pct", total/syncDur.Seconds(), total/readDur.Seconds(), 0.5, n*rounds, 1, 0), nil
}

// benchReadRows reads every row of the customers table through the source
// migrate reads it with.
func benchReadRows(ctx context.Context, source string) (time.Duration, error) {
	start := time.Now()
	src, err := migrate.Open(ctx, source, "")
	if err != nil {
		return 0, err
	}
	defer src.Close()
	cols := []string{"id", "name", "email", "country", "vip", "about"}
	n := 0
	for _, err := range src.Rows(ctx, "customers", cols, cols[:1]) {
		if err != nil {
			return 0, err
		}
		n++
	}
	if n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	return time.Since(start), nil
}
