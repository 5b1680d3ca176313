package migrate

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Column is a column of a source table.
type Column struct {
	// Name is the column's name.
	Name string
	// Type is the database's name of the column type (upper case, such
	// as TEXT, INTEGER, JSONB), empty when unknown (CSV).
	Type string
}

// Source is where rows come from: a database through database/sql, or a
// directory of CSV files. Values are those of database/sql drivers: nil,
// int64, float64, bool, string, []byte, time.Time.
type Source interface {
	// Columns returns the columns of table in order, or an error
	// matching [ErrUnknownTable].
	Columns(ctx context.Context, table string) ([]Column, error)
	// Count returns the number of rows of table (-1: unknown).
	Count(ctx context.Context, table string) (int64, error)
	// Rows yields the values of the columns of each row, sorted by the
	// columns of orderBy when the source can sort. The slice is reused
	// between rows. A source that fails yields an error matching
	// [ErrSource] and stops.
	Rows(ctx context.Context, table string, columns, orderBy []string) iter.Seq2[[]any, error]
	// Close releases the source.
	Close() error
}

// Open opens a source: "sqlite:PATH", "postgres://..." (or
// "postgresql://...", through github.com/jackc/pgx), or "csv:DIR" (one
// file TABLE.csv per table, with a header line of column names; an empty
// field is NULL). A relative PATH or DIR resolves against dir.
//
// Errors: [ErrSource] when the source cannot be opened or reached,
// [ErrInvalidMapping] for a source of no known kind.
func Open(ctx context.Context, source, dir string) (Source, error) {
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) || dir == "" {
			return p
		}
		return filepath.Join(dir, p)
	}
	switch {
	case strings.HasPrefix(source, "sqlite:"):
		path := resolve(strings.TrimPrefix(strings.TrimPrefix(source, "sqlite:"), "//"))
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%w: sqlite database %s: %w", ErrSource, path, err)
		}
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			return nil, fmt.Errorf("%w: sqlite database %s: %w", ErrSource, path, err)
		}
		return newSQL(ctx, db, dialectSQLite, path)
	case strings.HasPrefix(source, "postgres://"), strings.HasPrefix(source, "postgresql://"):
		db, err := sql.Open("pgx", source)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrSource, redact(source), err)
		}
		return newSQL(ctx, db, dialectPostgres, redact(source))
	case strings.HasPrefix(source, "csv:"):
		d := resolve(strings.TrimPrefix(source, "csv:"))
		fi, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("%w: csv directory %s: %w", ErrSource, d, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%w: csv source %s is not a directory", ErrSource, d)
		}
		return &csvSource{dir: d}, nil
	}
	return nil, fmt.Errorf("%w: source %q: want sqlite:PATH, postgres://... or csv:DIR", ErrInvalidMapping, redact(source))
}

// redact hides the password of a URL.
func redact(s string) string {
	at := strings.LastIndex(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	userinfo := s[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return s[:scheme+3] + user + ":xxxxx" + s[at:]
	}
	return s
}

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// NewSQLSource returns a source reading db, a SQLite database (driver
// "sqlite", modernc.org/sqlite) or a PostgreSQL one (driver "pgx"). The
// source closes db on Close.
//
// Errors: [ErrSource] when db cannot be reached, [ErrInvalidOption] for
// another driver.
func NewSQLSource(ctx context.Context, db *sql.DB, driver string) (Source, error) {
	switch driver {
	case "sqlite":
		return newSQL(ctx, db, dialectSQLite, "sqlite")
	case "pgx":
		return newSQL(ctx, db, dialectPostgres, "postgres")
	}
	return nil, fmt.Errorf("%w: driver %q: want sqlite or pgx", ErrInvalidOption, driver)
}

func newSQL(ctx context.Context, db *sql.DB, d dialect, name string) (*sqlSource, error) {
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrSource, name, err)
	}
	return &sqlSource{db: db, dialect: d, name: name}, nil
}

type sqlSource struct {
	db      *sql.DB
	dialect dialect
	name    string
}

func quote(id string) string { return `"` + strings.ReplaceAll(id, `"`, `""`) + `"` }

func (s *sqlSource) exists(ctx context.Context, table string) (bool, error) {
	var n int
	var err error
	switch s.dialect {
	case dialectSQLite:
		err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type IN ('table','view') AND name = ?`, table).Scan(&n)
	default:
		err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = $1 AND table_schema = ANY (current_schemas(false))`, table).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("%w: %s: %w", ErrSource, s.name, err)
	}
	return n > 0, nil
}

func (s *sqlSource) Columns(ctx context.Context, table string) ([]Column, error) {
	ok, err := s.exists(ctx, table)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s has no table %q", ErrUnknownTable, s.name, table)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT * FROM "+quote(table)+" LIMIT 0")
	if err != nil {
		return nil, fmt.Errorf("%w: table %s: %w", ErrSource, table, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("%w: table %s: %w", ErrSource, table, err)
	}
	cols := make([]Column, len(types))
	for i, t := range types {
		cols[i] = Column{Name: t.Name(), Type: strings.ToUpper(t.DatabaseTypeName())}
	}
	return cols, nil
}

func (s *sqlSource) Count(ctx context.Context, table string) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+quote(table)).Scan(&n); err != nil {
		return -1, fmt.Errorf("%w: table %s: %w", ErrSource, table, err)
	}
	return n, nil
}

func (s *sqlSource) Rows(ctx context.Context, table string, columns, orderBy []string) iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		q := make([]string, len(columns))
		for i, c := range columns {
			q[i] = quote(c)
		}
		query := "SELECT " + strings.Join(q, ", ") + " FROM " + quote(table)
		if len(orderBy) > 0 {
			o := make([]string, len(orderBy))
			for i, c := range orderBy {
				o[i] = quote(c)
			}
			query += " ORDER BY " + strings.Join(o, ", ")
		}
		rows, err := s.db.QueryContext(ctx, query)
		if err != nil {
			yield(nil, s.fail(ctx, table, err))
			return
		}
		defer rows.Close()
		vals := make([]any, len(columns))
		ptrs := make([]any, len(columns))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				yield(nil, s.fail(ctx, table, err))
				return
			}
			if !yield(vals, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(nil, s.fail(ctx, table, err))
		}
	}
}

func (s *sqlSource) fail(ctx context.Context, table string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %s, table %s: %w", ErrSource, s.name, table, err)
}

func (s *sqlSource) Close() error { return s.db.Close() }

// csvSource reads DIR/TABLE.csv files.
type csvSource struct{ dir string }

func (s *csvSource) open(table string) (*os.File, *csv.Reader, []string, error) {
	if table == "" || strings.ContainsAny(table, `/\`) || table == "." || table == ".." {
		return nil, nil, nil, fmt.Errorf("%w: %q is no CSV file name", ErrUnknownTable, table)
	}
	path := filepath.Join(s.dir, table+".csv")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, fmt.Errorf("%w: no file %s", ErrUnknownTable, path)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrSource, err)
	}
	r := csv.NewReader(f)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		f.Close()
		if errors.Is(err, io.EOF) {
			return nil, nil, nil, fmt.Errorf("%w: %s is empty: the first line must name the columns", ErrSource, path)
		}
		return nil, nil, nil, fmt.Errorf("%w: %s: %w", ErrSource, path, err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	return f, r, header, nil
}

func (s *csvSource) Columns(_ context.Context, table string) ([]Column, error) {
	f, _, header, err := s.open(table)
	if err != nil {
		return nil, err
	}
	f.Close()
	cols := make([]Column, len(header))
	for i, h := range header {
		cols[i] = Column{Name: h}
	}
	return cols, nil
}

func (s *csvSource) Count(context.Context, string) (int64, error) { return -1, nil }

func (s *csvSource) Rows(ctx context.Context, table string, columns, _ []string) iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		f, r, header, err := s.open(table)
		if err != nil {
			yield(nil, err)
			return
		}
		defer f.Close()
		idx := make([]int, len(columns))
		for i, c := range columns {
			idx[i] = -1
			for j, h := range header {
				if h == c {
					idx[i] = j
				}
			}
			if idx[i] < 0 {
				yield(nil, fmt.Errorf("%w: %s.csv has no column %q", ErrUnknownColumn, table, c))
				return
			}
		}
		vals := make([]any, len(columns))
		for {
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, fmt.Errorf("%w: %s.csv: %w", ErrSource, table, err))
				return
			}
			for i, j := range idx {
				if rec[j] == "" {
					vals[i] = nil
				} else {
					vals[i] = rec[j]
				}
			}
			if !yield(vals, nil) {
				return
			}
		}
	}
}

func (s *csvSource) Close() error { return nil }

// prefetchBatch is how many rows the reader of a [prefetcher] hands over
// at once, and prefetchAhead how many batches it may read ahead (enough
// to read on while the surface of a table is loaded).
const (
	prefetchBatch = 256
	prefetchAhead = 128
)

type rowBatch struct {
	vals []any // the values of up to prefetchBatch rows, row after row
	err  error
}

// prefetcher reads rows in a goroutine of its own, ahead of the caller,
// so that reading the source overlaps with loading the surface and with
// converting the rows. close ends the goroutine.
type prefetcher struct {
	ch    chan rowBatch
	stop  chan struct{}
	wg    sync.WaitGroup
	ncols int
}

func startPrefetch(rows iter.Seq2[[]any, error], ncols int) *prefetcher {
	f := &prefetcher{ch: make(chan rowBatch, prefetchAhead), stop: make(chan struct{}), ncols: ncols}
	f.wg.Go(func() {
		defer close(f.ch)
		b := rowBatch{vals: make([]any, 0, prefetchBatch*ncols)}
		for vals, err := range rows {
			if err != nil {
				b.err = err
				break
			}
			b.vals = append(b.vals, vals...)
			if len(b.vals) >= prefetchBatch*ncols {
				select {
				case f.ch <- b:
				case <-f.stop:
					return
				}
				b = rowBatch{vals: make([]any, 0, prefetchBatch*ncols)}
			}
		}
		select {
		case f.ch <- b:
		case <-f.stop:
		}
	})
	return f
}

// all yields the rows read (once).
func (f *prefetcher) all() iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		n := f.ncols
		for b := range f.ch {
			for i := 0; i+n <= len(b.vals); i += n {
				if !yield(b.vals[i:i+n:i+n], nil) {
					return
				}
			}
			if b.err != nil {
				yield(nil, b.err)
				return
			}
		}
	}
}

// close stops the reader and waits for it.
func (f *prefetcher) close() {
	close(f.stop)
	f.wg.Wait()
}
