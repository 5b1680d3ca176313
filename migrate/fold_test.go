package migrate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/migrate"
	"github.com/jetsource/jetsource/subjects"
)

// A sync of many changed rows reads their aggregates without a consumer
// per aggregate (the surface is read by one), folds them concurrently,
// and writes exactly the patches a fold through the store gives: with
// direct gets ([migrate.WithJetStream]) and through the store.
func TestSyncManyChangedRows(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			e := newEnv(t, 0)
			path, db := shopDB(t)
			const extra = 300
			var ins strings.Builder
			ins.WriteString("INSERT INTO customers (id, name, email, country, vip) VALUES ")
			for i := range extra {
				if i > 0 {
					ins.WriteString(", ")
				}
				fmt.Fprintf(&ins, "(%d, 'Customer %d', 'c%d@example.com', 'DE', 0)", 1000+i, i, i)
			}
			exec(t, db, ins.String())
			m := mapping(t, shopMapping, filepath.Dir(path))
			opts := []migrate.Option{migrate.WithFoldConcurrency(8)}
			got, err := runWith(t, e, m, migrate.Migrate, direct, opts...)
			if err != nil || got != (migrate.Counts{New: 11 + extra}) {
				t.Fatalf("migrate: %+v, %v", got, err)
			}
			// Another writer's event on one aggregate (sync takes its
			// member nick out again: the row has none), then every extra
			// row changes twice over two syncs.
			if _, err := e.store.Append(context.Background(), jetsource.Event{Subject: subjects.MustParse("customers.1000.renamed"), Data: []byte(`{"name":"Renamed","nick":"R"}`)}); err != nil {
				t.Fatal(err)
			}
			for round := 1; round <= 2; round++ {
				exec(t, db, fmt.Sprintf(`UPDATE customers SET name = name || ' v%d' WHERE id >= 1000`, round))
				var created atomic.Int64
				sub, err := e.js.Conn().Subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED.EVENTS.>", func(*nats.Msg) { created.Add(1) })
				if err != nil {
					t.Fatal(err)
				}
				got, err := runWith(t, e, m, migrate.Sync, direct, opts...)
				e.js.Conn().Flush()
				sub.Unsubscribe()
				if err != nil || got != (migrate.Counts{Changed: extra, Unchanged: 11}) {
					t.Fatalf("sync %d: %+v, %v", round, got, err)
				}
				if n := created.Load(); direct && n > 2 {
					t.Errorf("sync %d created %d consumers, want at most 2 (the surfaces of two tables)", round, n)
				}
			}
			for i := range extra {
				agg := fmt.Sprintf("customers.%d", 1000+i)
				want := fmt.Sprintf(`{"country":"DE","email":"c%d@example.com","name":"Customer %d v1 v2","vip":false}`, i, i)
				if got := fold(t, e, agg); got != want {
					t.Fatalf("%s folds to %s, want %s", agg, got, want)
				}
			}
			// Nothing more to do.
			got, err = runWith(t, e, m, migrate.Sync, direct, opts...)
			if err != nil || got != (migrate.Counts{Unchanged: 11 + extra}) {
				t.Fatalf("last sync: %+v, %v", got, err)
			}
		})
	}
}

// runWith runs the mapping with direct gets (direct) or through the store
// only.
func runWith(t *testing.T, e *env, m *migrate.Mapping, mode migrate.Mode, direct bool, opts ...migrate.Option) (migrate.Counts, error) {
	t.Helper()
	ctx := context.Background()
	src, err := migrate.Open(ctx, m.Source, m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if direct {
		opts = append(opts, migrate.WithJetStream(e.js))
	}
	r, err := migrate.NewRunner(e.store, m, src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r.Run(ctx, mode)
}
