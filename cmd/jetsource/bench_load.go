package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

// loadResult is one line of "jetsource bench load --json": latencies of
// one load in microseconds, jetsource against a raw filtered consumer.
type loadResult struct {
	Scenario       string  `json:"scenario"`
	StreamEvents   int     `json:"stream_events"`
	History        int     `json:"history"`
	Samples        int     `json:"samples"`
	RawSamples     int     `json:"raw_samples"`
	JetsourceP50us float64 `json:"jetsource_p50_us"`
	JetsourceP99us float64 `json:"jetsource_p99_us"`
	RawP50us       float64 `json:"raw_p50_us"`
	RawP99us       float64 `json:"raw_p99_us"`
	// Ratio is what Compare says; the scenario passes when it is at most
	// Target.
	Ratio   float64 `json:"ratio"`
	Compare string  `json:"compare"`
	Target  float64 `json:"target"`
	Pass    bool    `json:"pass"`
	Fsync   string  `json:"fsync"`
}

type benchLoadFlags struct {
	sizes     []int
	histories []int
	aggs      int
	samples   int
	size      int
	every     int
	asJSON    bool
}

func parseLoadList(flag, s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 {
			return nil, usagef("--%s %q: want positive numbers separated by commas", flag, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func (m *Main) newBenchLoadCmd(g *globals) *cobra.Command {
	var bf benchLoadFlags
	var sizes, histories string
	cmd := &cobra.Command{
		Use:   "load [--json] [--sizes 100000,1000000] [--histories 10,1000,10000]",
		Short: "Aggregate loads with snapshots against raw filtered consumers",
		Long: `bench load builds a file-store stream on an embedded server (fsync every
minute, appends in transactions of 1000) of --aggregates interleaved
aggregates, and measures p50 and p99 of loading one aggregate: through
jetsource (state.Loader with KV snapshots and direct reads, JSON merge patch
reducer) and through a raw nats.go ordered consumer filtered on the
aggregate that reads its events. Every jetsource load is warmed up once
(which writes the aggregate's snapshot), as a service that loads its
aggregates would be.

Scenarios:
  load-stream-N      random aggregates at N stored events (--sizes); the
                     largest size passes when its jetsource p99 is within 2x
                     of the smallest size's (flat in stream size), the
                     smallest when jetsource p99 <= raw p99
  load-stale-N       the same aggregates right after one new event each
                     (the load reads a one-event tail); passes when
                     jetsource p99 <= raw p99
  load-history-H     one aggregate with H events spread over the stream
                     (--histories); passes when its jetsource p99 is within
                     2x of the shortest history's (the shortest: <= raw p99)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if bf.sizes, err = parseLoadList("sizes", sizes); err != nil {
				return err
			}
			if bf.histories, err = parseLoadList("histories", histories); err != nil {
				return err
			}
			slices.Sort(bf.sizes)
			slices.Sort(bf.histories)
			if bf.aggs <= 0 || bf.samples <= 0 || bf.size < 0 || bf.every <= 0 {
				return usagef("--aggregates, --samples and --snapshot-every must be positive, --size not negative")
			}
			if bf.asJSON {
				g.output = "json"
			}
			return m.benchLoad(cmd.Context(), g, bf)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&bf.asJSON, "json", false, "print one JSON line per scenario (same as --output json)")
	f.StringVar(&sizes, "sizes", "100000,1000000", "stream sizes (events) to measure at, comma separated")
	f.StringVar(&histories, "histories", "10,1000,10000", "history lengths of the single-aggregate scenarios, comma separated")
	f.IntVar(&bf.aggs, "aggregates", 10000, "interleaved aggregates the stream is made of")
	f.IntVar(&bf.samples, "samples", 400, "loads measured per scenario and side")
	f.IntVar(&bf.size, "size", 64, "bytes of JSON data per event")
	f.IntVar(&bf.every, "snapshot-every", state.DefaultSnapshotEvery, "snapshot every N events")
	return cmd
}

func (m *Main) benchLoad(ctx context.Context, g *globals, bf benchLoadFlags) error {
	const sync = time.Minute
	env, err := newBenchEnv(ctx, sync)
	if err != nil {
		return err
	}
	defer env.Close()
	snaps, err := state.NewKVSnapshots(ctx, env.js, "BENCH_STATE")
	if err != nil {
		return err
	}
	loader, err := state.NewLoader(env.store, state.MergeReducer(), state.WithSnapshots(snaps),
		state.WithSnapshotEvery(bf.every), state.WithJetStream(env.js, "BENCH"), state.WithTimeout(5*time.Minute))
	if err != nil {
		return err
	}
	total := bf.sizes[len(bf.sizes)-1]
	data := benchData(bf.size)
	aggs := make([]subjects.Subject, bf.aggs)
	for i := range aggs {
		aggs[i] = subjects.MustParse(fmt.Sprintf("bench.a%d", i))
	}
	var hist []subjects.Subject
	for _, h := range bf.histories {
		hist = append(hist, subjects.MustParse(fmt.Sprintf("bench.hist%d", h)))
	}
	changed := func(a subjects.Subject) subjects.Subject { s, _ := a.Append("changed"); return s }
	rng := rand.New(rand.NewPCG(1, 2))

	var results []loadResult
	built, stored := 0, 0 // events of the interleaved aggregates, all events
	batch := make([]jetsource.Event, 0, jetsource.MaxBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := env.store.AppendBatch(ctx, batch); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}
	var first *loadResult
	for _, size := range bf.sizes {
		start := time.Now()
		for ; built < size; built++ {
			evs := []jetsource.Event{{Subject: changed(aggs[built%len(aggs)]), Data: data}}
			// History events are spread evenly over the final stream.
			for i, h := range bf.histories {
				if step := max(total/h, 1); built%step == 0 && built/step < h {
					evs = append(evs, jetsource.Event{Subject: changed(hist[i]), Data: data})
				}
			}
			for _, ev := range evs {
				batch = append(batch, ev)
				stored++
				if len(batch) == cap(batch) {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		fmt.Fprintf(m.Stderr, "stored %d events in %v\n", stored, time.Since(start).Round(time.Millisecond))

		sample := make([]subjects.Subject, bf.samples)
		for i := range sample {
			sample[i] = aggs[rng.IntN(min(len(aggs), size))]
		}
		r, err := benchLoadRound(ctx, env.js, loader, sample, len(sample))
		if err != nil {
			return err
		}
		r.Scenario, r.StreamEvents, r.Fsync = fmt.Sprintf("load-stream-%s", sizeLabel(size)), stored, fsyncName(sync)
		if first == nil {
			r.Ratio, r.Compare, r.Target = r.JetsourceP99us/r.RawP99us, "jetsource p99 / raw p99", 1
			first = &r
		} else {
			r.Ratio, r.Compare, r.Target = r.JetsourceP99us/first.JetsourceP99us, "jetsource p99 / jetsource p99 at "+sizeLabel(bf.sizes[0]), 2
		}
		r.Pass = r.Ratio <= r.Target
		results = append(results, r)
		m.emitLoad(g, r)

		// One new event for each sampled aggregate: loads read a tail.
		seen := map[subjects.Subject]bool{}
		var uniq []subjects.Subject
		for _, a := range sample {
			if !seen[a] {
				seen[a] = true
				uniq = append(uniq, a)
				batch = append(batch, jetsource.Event{Subject: changed(a), Data: []byte(`{"stale":true}`)})
				if len(batch) == cap(batch) {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		stored += len(uniq)
		s, err := benchLoadRound(ctx, env.js, nil, uniq, len(uniq))
		if err != nil {
			return err
		}
		js, err := measureLoads(ctx, loader, uniq, false)
		if err != nil {
			return err
		}
		s.JetsourceP50us, s.JetsourceP99us = loadPctUs(js, 50), loadPctUs(js, 99)
		s.Samples, s.Scenario, s.StreamEvents, s.Fsync = len(js), fmt.Sprintf("load-stale-%s", sizeLabel(size)), stored, fsyncName(sync)
		s.Ratio, s.Compare, s.Target = s.JetsourceP99us/s.RawP99us, "jetsource p99 / raw p99", 1
		s.Pass = s.Ratio <= s.Target
		results = append(results, s)
		m.emitLoad(g, s)
	}

	var shortest *loadResult
	for i, h := range bf.histories {
		sample := make([]subjects.Subject, bf.samples)
		for j := range sample {
			sample[j] = hist[i]
		}
		rawN := max(10, min(bf.samples, 100000/h))
		r, err := benchLoadRound(ctx, env.js, loader, sample, rawN)
		if err != nil {
			return err
		}
		r.Scenario, r.StreamEvents, r.History, r.Fsync = fmt.Sprintf("load-history-%d", h), stored, h, fsyncName(sync)
		if shortest == nil {
			r.Ratio, r.Compare, r.Target = r.JetsourceP99us/r.RawP99us, "jetsource p99 / raw p99", 1
			shortest = &r
		} else {
			r.Ratio, r.Compare, r.Target = r.JetsourceP99us/shortest.JetsourceP99us, fmt.Sprintf("jetsource p99 / jetsource p99 at history %d", shortest.History), 2
		}
		r.Pass = r.Ratio <= r.Target
		results = append(results, r)
		m.emitLoad(g, r)
	}
	if g.output != "json" {
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SCENARIO\tEVENTS\tJETSOURCE P50\tP99\tRAW P50\tP99\tRATIO\tTARGET\tPASS")
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t%d\t%.0fµs\t%.0fµs\t%.0fµs\t%.0fµs\t%.2f\t%.1f\t%v\n", r.Scenario, r.StreamEvents,
				r.JetsourceP50us, r.JetsourceP99us, r.RawP50us, r.RawP99us, r.Ratio, r.Target, r.Pass)
		}
		tw.Flush()
	}
	return nil
}

func (m *Main) emitLoad(g *globals, r loadResult) {
	if g.output == "json" {
		m.writeJSON(r)
	} else {
		fmt.Fprintf(m.Stderr, "%s: jetsource p99 %.0fµs, raw p99 %.0fµs\n", r.Scenario, r.JetsourceP99us, r.RawP99us)
	}
}

func sizeLabel(n int) string {
	switch {
	case n%1000000 == 0:
		return fmt.Sprintf("%dM", n/1000000)
	case n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// benchLoadRound warms each aggregate up with one load (nil loader: no
// jetsource side), then alternates a measured jetsource load and, for the
// first rawN samples, a measured raw read.
func benchLoadRound(ctx context.Context, js jetstream.JetStream, l *state.Loader[any], sample []subjects.Subject, rawN int) (loadResult, error) {
	var jsd, rawd []time.Duration
	if l != nil {
		if _, err := measureLoads(ctx, l, sample, true); err != nil {
			return loadResult{}, err
		}
	}
	for i, a := range sample {
		if l != nil {
			d, err := measureLoads(ctx, l, []subjects.Subject{a}, false)
			if err != nil {
				return loadResult{}, err
			}
			jsd = append(jsd, d...)
		}
		if i < rawN {
			start := time.Now()
			name, err := rawLoad(ctx, js, "BENCH", a.String()+".>")
			if err != nil {
				return loadResult{}, fmt.Errorf("raw: %w", err)
			}
			rawd = append(rawd, time.Since(start))
			// Ordered consumers linger for minutes: delete each one.
			if err := js.DeleteConsumer(ctx, "BENCH", name); err != nil {
				return loadResult{}, fmt.Errorf("raw: %w", err)
			}
		}
	}
	r := loadResult{Samples: len(jsd), RawSamples: len(rawd), RawP50us: loadPctUs(rawd, 50), RawP99us: loadPctUs(rawd, 99)}
	if l != nil {
		r.JetsourceP50us, r.JetsourceP99us = loadPctUs(jsd, 50), loadPctUs(jsd, 99)
	}
	return r, nil
}

func measureLoads(ctx context.Context, l *state.Loader[any], aggs []subjects.Subject, warm bool) ([]time.Duration, error) {
	var out []time.Duration
	seen := map[subjects.Subject]bool{}
	for _, a := range aggs {
		if warm && seen[a] {
			continue
		}
		seen[a] = true
		start := time.Now()
		if _, seq, err := l.Load(ctx, a); err != nil {
			return nil, fmt.Errorf("jetsource: load %s: %w", a, err)
		} else if seq == 0 {
			return nil, fmt.Errorf("jetsource: load %s: no events", a)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// rawLoad reads the events of one aggregate as a raw nats.go client does:
// an ordered consumer filtered on the aggregate, until nothing is pending.
// It returns the consumer's name.
func rawLoad(ctx context.Context, js jetstream.JetStream, stream, filter string) (string, error) {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return "", err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return "", err
	}
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			return "", err
		}
		md, err := msg.Metadata()
		if err != nil {
			return "", err
		}
		if md.NumPending == 0 {
			return cons.CachedInfo().Name, nil
		}
	}
}

// loadPctUs returns the p-th percentile in microseconds.
func loadPctUs(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return float64(s[i].Microseconds())
}
