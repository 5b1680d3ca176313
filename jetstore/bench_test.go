package jetstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// BenchmarkConditionedAppend compares conditioned appends with and
// without strict mode, on a single-replica stream of one server (R1) and
// on a replicated stream of a three-node cluster on this machine (R3).
// Every iteration runs the default and the strict variant back to back,
// each on a stream of its own, so that a machine busy with other work
// slows both alike; the metrics are per append of each variant:
//
//   - ExpectSequence: one writer appends to one aggregate, each append
//     expecting the previous one (an exact condition: no read before).
//   - ExpectNoneAfter: one writer appends under a read-position condition
//     on a wildcard boundary (a read of the boundary before each append).
//   - Contended: 8 writers on 8 connections spread over the nodes, each
//     appending 16 events to an aggregate of its own with ExpectSequence.
//     In strict mode they collide on the stream's last sequence:
//     strict-retries/op tells how often an append was published again,
//     strict-busy/op how often one gave up with ErrStreamBusy.
//
// Run with: go test -run '^$' -bench ConditionedAppend ./jetstore/
func BenchmarkConditionedAppend(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("R%d", replicas), func(b *testing.B) {
			env := &raceEnv{}
			if replicas == 1 {
				env.nodes = []*embedded.Server{embeddedtest.Run(b)}
			} else {
				env.nodes = embeddedtest.RunCluster(b, 3)
			}
			var n atomic.Int64
			// open provisions a stream of its own, on root.>, and opens
			// conns stores on it, spread over the nodes.
			open := func(b *testing.B, strict bool, conns int) (root string, stores []*jetstore.Store) {
				i := n.Add(1)
				name, root := fmt.Sprintf("BENCH%d", i), fmt.Sprintf("bench%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				_, js := env.conn(b, 0)
				if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: name, Subjects: []string{root + ".>"}, Replicas: replicas}); err != nil {
					b.Fatal(err)
				}
				var opts []jetstore.Option
				if strict {
					opts = append(opts, jetstore.WithStrict())
				}
				stores = make([]*jetstore.Store, conns)
				for i := range stores {
					_, js := env.conn(b, i)
					st, err := jetstore.New(ctx, js, name, opts...)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := st.LastSequence(ctx, subjects.All()); err != nil {
						b.Fatal(err)
					}
					stores[i] = st
				}
				return root, stores
			}
			ctx := context.Background()

			b.Run("ExpectSequence", func(b *testing.B) {
				var v [2]variant
				for i, strict := range []bool{false, true} {
					root, stores := open(b, strict, 1)
					st, subject := stores[0], root+".A.changed"
					v[i] = variant{stores: stores, run: func(last uint64) (jetsource.Ack, error) {
						return st.Append(ctx, event(subject, `{"n":1}`), jetsource.ExpectSequence(last))
					}}
				}
				sequential(b, v)
			})

			b.Run("ExpectNoneAfter", func(b *testing.B) {
				var v [2]variant
				for i, strict := range []bool{false, true} {
					root, stores := open(b, strict, 1)
					st, subject, boundary := stores[0], root+".A.seat", subjects.MustParseFilter(root+".*.seat")
					v[i] = variant{stores: stores, run: func(last uint64) (jetsource.Ack, error) {
						return st.Append(ctx, event(subject, `{"n":1}`), jetsource.ExpectNoneAfter(last, boundary))
					}}
				}
				sequential(b, v)
			})

			b.Run("Contended", func(b *testing.B) {
				const writers, perWriter = 8, 16
				var roots [2]string
				var stores [2][]*jetstore.Store
				for i, strict := range []bool{false, true} {
					roots[i], stores[i] = open(b, strict, writers)
				}
				var took [2]time.Duration
				var busy [2]atomic.Int64
				round := 0
				for b.Loop() {
					for i := range 2 {
						start := time.Now()
						var wg sync.WaitGroup
						for w := range writers {
							st := stores[i][w]
							subject := fmt.Sprintf("%s.W%d_%d.changed", roots[i], round, w)
							wg.Go(func() {
								var last uint64
								for range perWriter {
									ack, err := st.Append(ctx, event(subject, `{"n":1}`), jetsource.ExpectSequence(last))
									switch {
									case errors.Is(err, jetstore.ErrStreamBusy):
										busy[i].Add(1)
									case err != nil:
										b.Error(err)
										return
									default:
										last = ack.Sequence
									}
								}
							})
						}
						wg.Wait()
						took[i] += time.Since(start)
					}
					round++
				}
				appends := float64(round * writers * perWriter)
				b.ReportMetric(appends/took[0].Seconds(), "default-appends/s")
				b.ReportMetric(appends/took[1].Seconds(), "strict-appends/s")
				b.ReportMetric(retriesPerAppend(stores[1]), "strict-retries/op")
				b.ReportMetric(float64(busy[1].Load())/appends, "strict-busy/op")
				b.ReportMetric(retriesPerAppend(stores[0]), "default-retries/op")
			})
		})
	}
}

// variant is the default or the strict form of a sequential benchmark:
// run appends one event expecting last, the previous append's sequence.
type variant struct {
	stores []*jetstore.Store
	run    func(last uint64) (jetsource.Ack, error)
}

// sequential runs the default and the strict variant in turn, one append
// each per iteration, and reports the time per append of each.
func sequential(b *testing.B, v [2]variant) {
	var took [2]time.Duration
	var last [2]uint64
	for b.Loop() {
		for i := range v {
			start := time.Now()
			ack, err := v[i].run(last[i])
			took[i] += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			last[i] = ack.Sequence
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(took[0].Microseconds())/n, "default-µs/op")
	b.ReportMetric(float64(took[1].Microseconds())/n, "strict-µs/op")
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "strict/default")
	b.ReportMetric(retriesPerAppend(v[1].stores), "strict-retries/op")
}

// retriesPerAppend returns the stores' retries per conditioned append.
func retriesPerAppend(stores []*jetstore.Store) float64 {
	var st jetstore.Stats
	for _, s := range stores {
		ss := s.Stats()
		st.Conditioned += ss.Conditioned
		st.Retries += ss.Retries
	}
	return float64(st.Retries) / float64(max(st.Conditioned, 1))
}
