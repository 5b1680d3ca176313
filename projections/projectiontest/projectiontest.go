// Package projectiontest holds what tests of projections share: a
// counting projection that makes an event applied twice (or never)
// visible, and a worker program (killworker) that runs it in a process of
// its own, to be killed.
package projectiontest

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

// Counting returns an SQL projection of the events matching filter into
// the table counts (entity, applied, total): per entity (the aggregate),
// how many events were applied and the sum of their data's member n. An
// event applied twice or never changes both.
func Counting(name, filter string) projections.SQL {
	return projections.SQL{
		Name:    name,
		Filters: []subjects.Filter{subjects.MustParseFilter(filter)},
		Tables:  []string{"counts"},
		Setup: func(ctx context.Context, tx *projections.SQLTx) error {
			_, err := tx.ExecContext(ctx, `CREATE TABLE `+tx.Table("counts")+` (entity TEXT PRIMARY KEY, applied INTEGER NOT NULL, total INTEGER NOT NULL)`)
			return err
		},
		Apply: func(ctx context.Context, tx *projections.SQLTx, e jetsource.Event) error {
			var v struct{ N int64 }
			if err := json.Unmarshal(e.Data, &v); err != nil {
				return err
			}
			st, err := tx.Prepared(ctx, `INSERT INTO `+tx.Table("counts")+` (entity, applied, total) VALUES (?, 1, ?)
ON CONFLICT (entity) DO UPDATE SET applied = applied + 1, total = total + excluded.total`)
			if err != nil {
				return err
			}
			_, err = st.ExecContext(ctx, e.Aggregate().String(), v.N)
			return err
		},
	}
}

// Counts reads the counts table of [Counting]: entity to (applied, total).
func Counts(ctx context.Context, db *sql.DB) (map[string][2]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT entity, applied, total FROM counts`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][2]int64{}
	for rows.Next() {
		var ent string
		var a, s int64
		if err := rows.Scan(&ent, &a, &s); err != nil {
			return nil, err
		}
		out[ent] = [2]int64{a, s}
	}
	return out, rows.Err()
}
