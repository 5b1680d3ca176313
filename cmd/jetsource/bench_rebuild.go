package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/projections/projectiontest"
	"github.com/jetsource/jetsource/subjects"
)

// rebuildBenchResult is a benchResult with the memory figures of a rebuild.
type rebuildBenchResult struct {
	benchResult
	ReadModel string `json:"read_model"`
	// PeakHeapBytes is the highest HeapInuse sampled during the rebuild,
	// minus HeapInuse before it (after a GC): what the rebuild itself
	// holds.
	PeakHeapBytes uint64 `json:"peak_heap_bytes"`
	// HeapRatio is PeakHeapBytes relative to the smaller run's (memory
	// scenarios only; target 1.2: memory does not grow with the stream).
	HeapRatio float64 `json:"heap_ratio,omitempty"`
}

func (m *Main) newBenchRebuildCmd(g *globals) *cobra.Command {
	var asJSON, memory bool
	var events, rounds, size int
	cmd := &cobra.Command{
		Use:   "rebuild [--json] [--events N] [--memory]",
		Short: "Projection rebuild against a raw ordered consumer",
		Long: `bench rebuild appends N events (on 1000 aggregates, in transactions of 1000, to
a server that syncs every second) and then, in alternating rounds, reads
them all:

  raw        a raw nats.go ordered consumer on the stream, touching each
             message's data and metadata;
  jetsource  projections.Rebuild of an SQLite projection: the store's read
             (CloudEvents decoding), batches of 2000 events per SQL
             transaction, each event an upsert of its aggregate's row
             (count and sum), the checkpoint written in the same
             transaction, and the final swap of the tables.

The counting projection is deliberately trivial, so the figure shows the
cost of the projection machinery (feed, batching, transactions,
checkpoints) rather than of a particular read model. Target: ratio >= 0.8.

With --memory it also rebuilds 100,000 and 1,000,000 events and reports
the peak heap (HeapInuse sampled every 10ms, minus the heap before the
rebuild): the rebuild streams, so the 1M figure must stay within 1.2x of
the 100k one. The server runs in the same process; its heap counts too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if events <= 0 || rounds <= 0 || size < 0 {
				return usagef("--events and --rounds must be positive, --size not negative")
			}
			if asJSON {
				g.output = "json"
			}
			ctx := cmd.Context()
			var results []rebuildBenchResult
			r, err := benchRebuild(ctx, "rebuild-sqlite", events, rounds, size)
			if err != nil {
				return err
			}
			results = append(results, r)
			if memory {
				small, err := benchRebuild(ctx, "rebuild-memory-100k", 100_000, 1, size)
				if err != nil {
					return err
				}
				big, err := benchRebuild(ctx, "rebuild-memory-1m", 1_000_000, 1, size)
				if err != nil {
					return err
				}
				big.HeapRatio = float64(big.PeakHeapBytes) / float64(max(small.PeakHeapBytes, 1))
				small.HeapRatio = 1
				results = append(results, small, big)
			}
			m.printRebuildResults(g, results)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON line per scenario (same as --output json)")
	f.IntVar(&events, "events", 100_000, "events in the stream")
	f.IntVar(&rounds, "rounds", 2, "rounds per side (alternating raw and jetsource)")
	f.IntVar(&size, "size", 128, "bytes of JSON data per event")
	f.BoolVar(&memory, "memory", false, "also measure the peak heap of rebuilds of 100k and 1M events")
	return cmd
}

func (m *Main) printRebuildResults(g *globals, results []rebuildBenchResult) {
	if g.output == "json" {
		for _, r := range results {
			m.writeJSON(r)
		}
		return
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tEVENTS\tJETSOURCE/S\tRAW/S\tRATIO\tTARGET\tPASS\tPEAK HEAP\tHEAP RATIO")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.3f\t%.2f\t%v\t%.1f MB\t%.2f\n", r.Scenario, r.Events, r.JetsourcePerSec, r.RawPerSec, r.Ratio, r.Target, r.Pass, float64(r.PeakHeapBytes)/1e6, r.HeapRatio)
	}
	tw.Flush()
}

func benchRebuild(ctx context.Context, name string, events, rounds, size int) (rebuildBenchResult, error) {
	env, err := newBenchEnv(ctx, time.Second)
	if err != nil {
		return rebuildBenchResult{}, err
	}
	defer env.Close()
	data := benchData(size)
	batch := make([]jetsource.Event, 0, jetsource.MaxBatch)
	for i := range events {
		subj, err := subjects.Parse(fmt.Sprintf("bench.u%d.changed", i%1000))
		if err != nil {
			return rebuildBenchResult{}, err
		}
		batch = append(batch, jetsource.Event{Subject: subj, Data: data})
		if len(batch) == cap(batch) || i == events-1 {
			if _, err := env.store.AppendBatch(ctx, batch); err != nil {
				return rebuildBenchResult{}, fmt.Errorf("append: %w", err)
			}
			batch = batch[:0]
		}
	}
	db, err := projections.OpenSQLite(filepath.Join(env.dir, "bench.db"))
	if err != nil {
		return rebuildBenchResult{}, err
	}
	defer db.Close()
	def := projectiontest.Counting("bench", "bench.>")
	p, err := projections.NewSQL(ctx, db, def)
	if err != nil {
		return rebuildBenchResult{}, err
	}
	var rawDur, jsDur time.Duration
	var peak uint64
	for range rounds {
		start := time.Now()
		if err := rawRead(ctx, env.js, events); err != nil {
			return rebuildBenchResult{}, fmt.Errorf("raw: %w", err)
		}
		rawDur += time.Since(start)

		stop := sampleHeap()
		start = time.Now()
		pr, err := projections.Rebuild(ctx, env.store, p)
		jsDur += time.Since(start)
		if pk := stop(); pk > peak {
			peak = pk
		}
		if err != nil {
			return rebuildBenchResult{}, fmt.Errorf("rebuild: %w", err)
		}
		if pr.Applied != uint64(events) {
			return rebuildBenchResult{}, fmt.Errorf("rebuild applied %d of %d events", pr.Applied, events)
		}
	}
	total := float64(events * rounds)
	r := rebuildBenchResult{benchResult: newResult(name, total/jsDur.Seconds(), total/rawDur.Seconds(), 0.8, events, 1, time.Second), ReadModel: "sqlite", PeakHeapBytes: peak}
	return r, nil
}

// rawRead reads n messages with a raw ordered consumer, touching each
// message's data and metadata as any consumer does.
func rawRead(ctx context.Context, js jetstream.JetStream, n int) error {
	cons, err := js.OrderedConsumer(ctx, "BENCH", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"bench.>"}})
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	var bytes int
	for range n {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		bytes += len(msg.Data()) + int(md.Sequence.Stream&1)
	}
	if bytes == 0 {
		return fmt.Errorf("read nothing")
	}
	return nil
}

// sampleHeap samples HeapInuse every 10ms until the returned function is
// called, which returns the peak above the heap at the start (after a GC).
func sampleHeap() func() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
					peak.Store(ms.HeapInuse - base)
				}
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}
