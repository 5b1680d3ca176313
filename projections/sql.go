package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the pure Go SQLite driver, "sqlite"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// CheckpointTable is the SQL table that holds the checkpoint of every
// projection of a database: one row per projection, and one per rebuild
// under way (named "<projection>#rebuild").
const CheckpointTable = "jetsource_projections"

// SQL defines a projection into tables of an SQL database.
//
// Every table the projection writes is named in Tables and referred to in
// SQL through [SQLTx.Table], never by its plain name: a rebuild builds
// the tables under other names and renames them in one transaction.
type SQL struct {
	// Name identifies the projection (see [ValidName]).
	Name string
	// Filters select the events the projection reads (none: every event).
	Filters []subjects.Filter
	// Tables names the tables the projection owns: letters, digits and
	// '_', starting with a letter or '_'.
	Tables []string
	// Setup creates the tables and their indexes, naming each through
	// tx.Table (index names too, so that those of a rebuild differ). It
	// runs when the read model is created and at every rebuild.
	Setup func(ctx context.Context, tx *SQLTx) error
	// Apply applies one event inside the batch's transaction. An error
	// rolls the whole transaction back, checkpoint included.
	//
	// ctx carries the values of the batch's context but not its
	// cancellation (its Done channel is nil), so that a statement does not
	// start a watcher of its own: the transaction is bound to the batch's
	// context, which is checked between events, and a batch whose context
	// ends is rolled back once the statement under way has finished.
	//
	// An error matching [ErrSkipEvent] skips the event (return it before
	// writing: what was written stays). A panic is an error ([ErrPanic]).
	// Apply is not called with malformed messages
	// ([jetsource.Event.Malformed]): those are skipped with a warning and
	// counted, unless ApplyMalformed is set.
	Apply func(ctx context.Context, tx *SQLTx, e jetsource.Event) error
	// ApplyMalformed makes Apply be called with malformed messages too,
	// for a projection that wants to see them (their Malformed field is
	// set; their Subject may be empty).
	ApplyMalformed bool
	// Location describes the database for status output, such as
	// "sqlite:app.db" (optional).
	Location string
}

// SQLTx is the transaction of one batch: the [*sql.Tx] and the names of
// the projection's tables in this read model.
type SQLTx struct {
	*sql.Tx
	suffix string
	m      *sqlModel
	stmts  map[string]*sql.Stmt
	tables map[string]string
}

// Table returns the quoted name under which the projection's table name
// lives in this read model: "name" for the live one, "name__g3" for
// generation 3 being rebuilt. Use it for index names too.
func (tx *SQLTx) Table(name string) string {
	if q, ok := tx.tables[name]; ok {
		return q
	}
	q := quoteIdent(name + tx.suffix)
	if tx.tables == nil {
		tx.tables = make(map[string]string, 4)
	}
	tx.tables[name] = q
	return q
}

// Generation returns the suffix of this read model's names ("" for the
// live read model before any rebuild, "__g3" for generation 3).
func (tx *SQLTx) Generation() string { return tx.suffix }

// Prepared returns query prepared once per read model and bound to this
// transaction, which saves parsing the statement for every event.
func (tx *SQLTx) Prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := tx.stmts[query]; ok {
		return s, nil
	}
	ps, err := tx.m.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	s := tx.StmtContext(ctx, ps)
	if tx.stmts == nil {
		tx.stmts = map[string]*sql.Stmt{}
	}
	tx.stmts[query] = s
	return s, nil
}

// SQLProjection is a [Projection] into SQL tables: the rows and the
// checkpoint change in one SQL transaction per batch.
type SQLProjection struct {
	def SQL
	*sqlModel
}

var _ Projection = (*SQLProjection)(nil)

// OpenSQLite opens (creating it if needed) an SQLite database file for
// projections: WAL journal (readers such as report engines never block the
// projection, nor it them), synchronous=NORMAL (a power loss may undo the
// last transactions, rows and checkpoint together, never one without the
// other), a busy timeout of 10 s, and write transactions that take the
// write lock when they begin.
func OpenSQLite(path string) (*sql.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty SQLite path", ErrInvalidOption)
	}
	q := url.Values{}
	// The busy timeout comes first (the driver applies _busy_timeout before
	// the _pragma list): switching a new file to WAL needs a lock that
	// another process opening it may hold for a moment.
	q.Set("_busy_timeout", "10000")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("projections: open %s: %w", path, err)
	}
	return db, nil
}

// NewSQL prepares an SQL projection on db: it creates the checkpoint table
// and, the first time, runs Setup for the live tables. db should come from
// [OpenSQLite] or be configured alike (write transactions that lock when
// they begin).
//
// Errors: [ErrInvalidProjection] for a bad definition, and the database's
// errors.
func NewSQL(ctx context.Context, db *sql.DB, def SQL) (*SQLProjection, error) {
	if err := def.validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, fmt.Errorf("%w: %s: no database", ErrInvalidProjection, def.Name)
	}
	p := &SQLProjection{def: def, sqlModel: &sqlModel{db: db, def: &def, row: def.Name, stmts: &stmtCache{}}}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("projections: %s: %w", def.Name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+CheckpointTable+` (
	name TEXT PRIMARY KEY,
	sequence INTEGER NOT NULL DEFAULT 0,
	generation INTEGER NOT NULL DEFAULT 0,
	updated TEXT,
	last_error TEXT,
	last_error_at TEXT,
	error_sequence INTEGER)`); err != nil {
		return nil, fmt.Errorf("projections: %s: create checkpoint table: %w", def.Name, err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+CheckpointTable+` WHERE name = ?`, def.Name).Scan(&n); err != nil {
		return nil, fmt.Errorf("projections: %s: %w", def.Name, err)
	}
	if n == 0 {
		if err := def.Setup(ctx, &SQLTx{Tx: tx, m: p.sqlModel}); err != nil {
			return nil, fmt.Errorf("projections: %s: setup: %w", def.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+CheckpointTable+` (name, sequence, generation, updated) VALUES (?, 0, 0, ?)`, def.Name, now()); err != nil {
			return nil, fmt.Errorf("projections: %s: %w", def.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("projections: %s: %w", def.Name, err)
	}
	return p, nil
}

func (def SQL) validate() error {
	var errs []error
	if err := ValidName(def.Name); err != nil {
		errs = append(errs, err)
	}
	if err := checkFilters(def.Filters); err != nil {
		errs = append(errs, err)
	}
	if len(def.Tables) == 0 {
		errs = append(errs, fmt.Errorf("%w: %s: no tables", ErrInvalidProjection, def.Name))
	}
	for _, t := range def.Tables {
		if !validTable(t) {
			errs = append(errs, fmt.Errorf("%w: %s: table name %q: use letters, digits and '_', starting with a letter or '_'", ErrInvalidProjection, def.Name, t))
		}
		if t == CheckpointTable {
			errs = append(errs, fmt.Errorf("%w: %s: table name %q is reserved", ErrInvalidProjection, def.Name, t))
		}
	}
	if def.Setup == nil || def.Apply == nil {
		errs = append(errs, fmt.Errorf("%w: %s: Setup and Apply are required", ErrInvalidProjection, def.Name))
	}
	return errors.Join(errs...)
}

func validTable(t string) bool {
	if t == "" || len(t) > 100 || strings.Contains(t, "__g") {
		return false
	}
	for i, c := range []byte(t) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// Name implements [Projection].
func (p *SQLProjection) Name() string { return p.def.Name }

// Filters implements [Projection].
func (p *SQLProjection) Filters() []subjects.Filter { return p.def.Filters }

// DB returns the database.
func (p *SQLProjection) DB() *sql.DB { return p.db }

// Info implements [Projection].
func (p *SQLProjection) Info(ctx context.Context) (ModelInfo, error) {
	var info ModelInfo
	var updated, lastErr, lastErrAt sql.NullString
	var errSeq sql.NullInt64
	err := p.db.QueryRowContext(ctx, `SELECT sequence, generation, updated, last_error, last_error_at, error_sequence FROM `+CheckpointTable+` WHERE name = ?`, p.def.Name).
		Scan(&info.Checkpoint, &info.Generation, &updated, &lastErr, &lastErrAt, &errSeq)
	if err != nil {
		return info, fmt.Errorf("projections: %s: %w", p.def.Name, err)
	}
	info.Updated, _ = time.Parse(time.RFC3339Nano, updated.String)
	info.LastError = lastErr.String
	info.LastErrorAt, _ = time.Parse(time.RFC3339Nano, lastErrAt.String)
	info.ErrorSequence = uint64(errSeq.Int64)
	loc := p.def.Location
	if loc == "" {
		loc = "sql"
	}
	info.Location = loc + " tables " + strings.Join(p.def.Tables, ", ")
	return info, nil
}

// RecordError implements [Projection].
func (p *SQLProjection) RecordError(ctx context.Context, seq uint64, err error) error {
	var msg, at any
	if err != nil {
		msg, at = err.Error(), now()
	}
	_, e := p.db.ExecContext(ctx, `UPDATE `+CheckpointTable+` SET last_error = ?, last_error_at = ?, error_sequence = ? WHERE name = ?`, msg, at, int64(seq), p.def.Name)
	return e
}

// NewGeneration implements [Projection]: it creates the projection's
// tables under the names of a new generation (dropping those of an
// unfinished rebuild) with a checkpoint row of their own.
func (p *SQLProjection) NewGeneration(ctx context.Context) (Generation, error) {
	name := p.def.Name
	rebuildRow := name + "#rebuild"
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("projections: %s: %w", name, err)
	}
	defer tx.Rollback()
	var live, old uint64
	if err := tx.QueryRowContext(ctx, `SELECT generation FROM `+CheckpointTable+` WHERE name = ?`, name).Scan(&live); err != nil {
		return nil, fmt.Errorf("projections: %s: %w", name, err)
	}
	err = tx.QueryRowContext(ctx, `SELECT generation FROM `+CheckpointTable+` WHERE name = ?`, rebuildRow).Scan(&old)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("projections: %s: %w", name, err)
	default:
		if err := dropTables(ctx, tx, p.def.Tables, genSuffix(old)); err != nil {
			return nil, fmt.Errorf("projections: %s: drop unfinished rebuild: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+CheckpointTable+` WHERE name = ?`, rebuildRow); err != nil {
			return nil, err
		}
	}
	gen := max(live, old) + 1
	suffix := genSuffix(gen)
	if err := dropTables(ctx, tx, p.def.Tables, suffix); err != nil {
		return nil, fmt.Errorf("projections: %s: %w", name, err)
	}
	m := &sqlModel{db: p.db, def: &p.def, row: rebuildRow, suffix: suffix, generation: gen, stmts: p.stmts}
	if err := p.def.Setup(ctx, &SQLTx{Tx: tx, suffix: suffix, m: m}); err != nil {
		return nil, fmt.Errorf("projections: %s: setup: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+CheckpointTable+` (name, sequence, generation, updated) VALUES (?, 0, ?, ?)`, rebuildRow, gen, now()); err != nil {
		return nil, fmt.Errorf("projections: %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("projections: %s: %w", name, err)
	}
	return &sqlGeneration{sqlModel: m, p: p}, nil
}

func genSuffix(gen uint64) string { return "__g" + strconv.FormatUint(gen, 10) }

func dropTables(ctx context.Context, tx *sql.Tx, tables []string, suffix string) error {
	for _, t := range tables {
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+quoteIdent(t+suffix)); err != nil {
			return err
		}
	}
	return nil
}

// sqlModel is one read model of an SQL projection: the live one (row
// = name) or a generation being rebuilt.
type sqlModel struct {
	db         *sql.DB
	def        *SQL
	row        string
	suffix     string
	generation uint64
	stmts      *stmtCache
}

type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (m *sqlModel) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	m.stmts.mu.Lock()
	defer m.stmts.mu.Unlock()
	if s, ok := m.stmts.m[query]; ok {
		return s, nil
	}
	s, err := m.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if m.stmts.m == nil {
		m.stmts.m = map[string]*sql.Stmt{}
	}
	m.stmts.m[query] = s
	return s, nil
}

// Checkpoint implements [Model].
func (m *sqlModel) Checkpoint(ctx context.Context) (uint64, error) {
	var cp uint64
	err := m.db.QueryRowContext(ctx, `SELECT sequence FROM `+CheckpointTable+` WHERE name = ?`, m.row).Scan(&cp)
	if errors.Is(err, sql.ErrNoRows) && m.suffix != "" {
		return 0, fmt.Errorf("%w: %s: the rebuild was replaced", ErrRebuildConflict, m.def.Name)
	}
	if err != nil {
		return 0, fmt.Errorf("projections: %s: checkpoint: %w", m.def.Name, err)
	}
	return cp, nil
}

// The statements that read and write a read model's checkpoint.
const (
	sqlReadCheckpoint  = `SELECT sequence FROM ` + CheckpointTable + ` WHERE name = ?`
	sqlWriteCheckpoint = `UPDATE ` + CheckpointTable + ` SET sequence = ?, updated = ? WHERE name = ?`
)

// Apply implements [Model]: one SQL transaction that reads the
// checkpoint, applies the events after it and writes the new checkpoint.
func (m *sqlModel) Apply(ctx context.Context, after uint64, events []jetsource.Event) (uint64, error) {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return after, fmt.Errorf("projections: %s: begin: %w", m.def.Name, err)
	}
	defer tx.Rollback()
	// The checkpoint statements are prepared once per database: a batch
	// then parses no SQL of its own.
	stx := &SQLTx{Tx: tx, suffix: m.suffix, m: m}
	sel, err := stx.Prepared(ctx, sqlReadCheckpoint)
	if err != nil {
		return after, fmt.Errorf("projections: %s: checkpoint: %w", m.def.Name, err)
	}
	var cp uint64
	err = sel.QueryRowContext(ctx, m.row).Scan(&cp)
	switch {
	case errors.Is(err, sql.ErrNoRows) && m.suffix != "":
		return after, fmt.Errorf("%w: %s: the rebuild was replaced", ErrRebuildConflict, m.def.Name)
	case errors.Is(err, sql.ErrNoRows):
		return after, &CheckpointError{Expected: after}
	case err != nil:
		return after, fmt.Errorf("projections: %s: checkpoint: %w", m.def.Name, err)
	case cp < after:
		return after, &CheckpointError{Expected: after, Current: cp}
	}
	// The statements of the batch run without a context of their own to
	// watch (the driver would start a goroutine per statement): the
	// transaction is bound to ctx, checked between events.
	actx := context.WithoutCancel(ctx)
	last := cp
	for i := range events {
		e := &events[i]
		if e.Sequence <= last {
			continue
		}
		err := ctx.Err()
		if err == nil {
			var skipped bool
			skipped, err = applyOne(ctx, m.def.ApplyMalformed, *e, func() error { return m.def.Apply(actx, stx, *e) })
			if skipped {
				last = e.Sequence
				continue
			}
			if errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil {
				// The context ended during the statement, which found
				// its transaction rolled back.
				err = ctx.Err()
			}
		}
		if err != nil {
			return after, &ApplyError{Projection: m.def.Name, Sequence: e.Sequence, Subject: e.Subject.String(), Err: err}
		}
		last = e.Sequence
	}
	if last == cp {
		return cp, nil
	}
	upd, err := stx.Prepared(ctx, sqlWriteCheckpoint)
	if err == nil {
		_, err = upd.ExecContext(ctx, last, now(), m.row)
	}
	if err != nil {
		return after, fmt.Errorf("projections: %s: write checkpoint: %w", m.def.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return after, fmt.Errorf("projections: %s: commit: %w", m.def.Name, err)
	}
	return last, nil
}

// sqlGeneration is an SQL read model being rebuilt.
type sqlGeneration struct {
	*sqlModel
	p *SQLProjection
}

func (g *sqlGeneration) Location() string {
	var names []string
	for _, t := range g.def.Tables {
		names = append(names, t+g.suffix)
	}
	return "tables " + strings.Join(names, ", ")
}

// Swap drops the live tables, renames the generation's tables to the live
// names and moves its checkpoint to the live row, in one transaction.
func (g *sqlGeneration) Swap(ctx context.Context) error {
	name := g.def.Name
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("projections: %s: swap: %w", name, err)
	}
	defer tx.Rollback()
	var seq, gen uint64
	err = tx.QueryRowContext(ctx, `SELECT sequence, generation FROM `+CheckpointTable+` WHERE name = ?`, g.row).Scan(&seq, &gen)
	if errors.Is(err, sql.ErrNoRows) || err == nil && gen != g.generation {
		return fmt.Errorf("%w: %s: another rebuild replaced this one", ErrRebuildConflict, name)
	}
	if err != nil {
		return fmt.Errorf("projections: %s: swap: %w", name, err)
	}
	var live uint64
	if err := tx.QueryRowContext(ctx, `SELECT sequence FROM `+CheckpointTable+` WHERE name = ?`, name).Scan(&live); err != nil {
		return fmt.Errorf("projections: %s: swap: %w", name, err)
	}
	if live > seq {
		return errBehindLive
	}
	if err := dropTables(ctx, tx, g.def.Tables, ""); err != nil {
		return fmt.Errorf("projections: %s: swap: %w", name, err)
	}
	for _, t := range g.def.Tables {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE `+quoteIdent(t+g.suffix)+` RENAME TO `+quoteIdent(t)); err != nil {
			return fmt.Errorf("projections: %s: swap: rename %s: %w", name, t+g.suffix, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+CheckpointTable+` SET sequence = ?, generation = ?, updated = ?, last_error = NULL, last_error_at = NULL, error_sequence = NULL WHERE name = ?`, seq, gen, now(), name); err != nil {
		return fmt.Errorf("projections: %s: swap: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+CheckpointTable+` WHERE name = ?`, g.row); err != nil {
		return fmt.Errorf("projections: %s: swap: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projections: %s: swap: %w", name, err)
	}
	return nil
}

// Discard drops the generation's tables and checkpoint row.
func (g *sqlGeneration) Discard(ctx context.Context) error {
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var gen uint64
	if err := tx.QueryRowContext(ctx, `SELECT generation FROM `+CheckpointTable+` WHERE name = ?`, g.row).Scan(&gen); err != nil || gen != g.generation {
		return nil // replaced or gone: nothing of ours to drop
	}
	if err := dropTables(ctx, tx, g.def.Tables, g.suffix); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+CheckpointTable+` WHERE name = ?`, g.row); err != nil {
		return err
	}
	return tx.Commit()
}
