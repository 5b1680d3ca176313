package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

// commandBenchResult is one line of "jetsource bench commands --json".
type commandBenchResult struct {
	Scenario string `json:"scenario"`
	Clients  int    `json:"clients"`
	Commands int    `json:"commands"`
	Fsync    string `json:"fsync"`
	// CommandsPerSec is the rate of accepted commands over the bus;
	// RawPerSec the rate of raw expected-sequence appends.
	CommandsPerSec float64 `json:"commands_per_sec"`
	RawPerSec      float64 `json:"raw_per_sec"`
	Ratio          float64 `json:"ratio"`
	// Latencies of one command (send to result) and one raw append
	// (including its retries), in milliseconds.
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	RawP50Ms float64 `json:"raw_p50_ms"`
	RawP99Ms float64 `json:"raw_p99_ms"`
	// RetryRate is the number of repeated decisions per command after a
	// conflict; RawRetryRate the repeated publishes per raw append.
	RetryRate    float64 `json:"retry_rate"`
	RawRetryRate float64 `json:"raw_retry_rate"`
	// Conflicts counts commands whose attempts all lost the race.
	Conflicts int     `json:"conflicts"`
	Target    float64 `json:"target"`
	Pass      bool    `json:"pass"`
}

func (m *Main) newBenchCommandsCmd(g *globals) *cobra.Command {
	var clients, distinct, contended, attempts, prefill, prefillCommands, prefillClients, prefillAggregates, twoFilter int
	var asJSON, lazy bool
	cmd := &cobra.Command{
		Use:   "commands [--json] [--clients N]",
		Short: "Commands over the bus against raw expected-sequence appends",
		Long: `bench commands measures the command pipeline end to end: N concurrent clients
send commands over NATS request/reply to a command worker (a queue group on
the same embedded server), which replays the command's aggregate, decides one
event and appends it with the condition that nothing matching the aggregate
was stored after its read, deciding again after a conflict. It is compared
with raw nats.go PublishMsg carrying Nats-Expected-Last-Subject-Sequence on
the same aggregates, which on a conflict looks up the last sequence and
publishes again with the same jittered backoff.

Scenarios: "commands-distinct" (every client on an aggregate of its own)
and "commands-contended" (every client on one aggregate), with --lazy also
on a server that syncs every second. Each line gives commands/s, raw
appends/s, their ratio, p50 and p99 latency of both, and the retry rates
(repeated decisions or publishes per command). A command does more than a
raw append (a request/reply hop and a replay of the aggregate before the
conditional append), so the targets are a fraction of raw: 0.25 on distinct
aggregates; on one contended aggregate the replay grows with the history,
target 0.1.

The prefilled scenarios ("commands-prefill-N", skipped with --prefill 0)
append --prefill background events to one stream in batches of 1000, in
two stages (a tenth, then all), and at each stage send commands to
aggregates that already hold a few events and have decided before, loading
the model with the replay of the boundary and with the snapshot loader
(snapshots in a key-value bucket) on the same server. Each line gives the
p50 and p99 latency of both and the ratio of the p50s: the snapshot loader
reads only the events after its snapshot, so its latency should stay flat
as the stream grows.

The two-filter scenario ("two-filter-unrelated", skipped with --two-filter 0)
appends --two-filter events one at a time, each conditioned on nothing
having been stored after a fresh read position under two filters (the shape
of the example's AddUserToGroup: users.<u>.> and groups.<g>.>), while 8
writers append to unrelated aggregates as fast as they can. A condition may
fail only because of events matching its filters, so at least 95% of these
appends must succeed at the first try (target 0.95).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clients <= 0 || distinct <= 0 || contended <= 0 || attempts <= 0 {
				return usagef("--clients, --distinct, --contended and --attempts must be positive")
			}
			if prefill < 0 || prefillCommands <= 0 || prefillClients <= 0 || prefillAggregates <= 0 {
				return usagef("--prefill may not be negative; --prefill-commands, --prefill-clients and --prefill-aggregates must be positive")
			}
			if asJSON {
				g.output = "json"
			}
			syncs := []time.Duration{0}
			if lazy {
				syncs = append(syncs, time.Second)
			}
			var results []commandBenchResult
			for _, sync := range syncs {
				for _, sc := range []struct {
					name     string
					commands int
					hot      bool
					target   float64
				}{{"commands-distinct", distinct, false, 0.25}, {"commands-contended", contended, true, 0.1}} {
					name := sc.name
					if sync > 0 {
						name += "-lazy-fsync"
					}
					r, err := benchCommands(cmd.Context(), name, sync, clients, sc.commands, sc.hot, attempts, sc.target)
					if err != nil {
						return err
					}
					results = append(results, r)
				}
			}
			m.printCommandResults(g, results)
			if twoFilter > 0 {
				r, err := benchTwoFilter(cmd.Context(), twoFilter, 8)
				if err != nil {
					return fmt.Errorf("two-filter: %w", err)
				}
				m.printTwoFilterResult(g, r)
			}
			if prefill > 0 {
				pr, err := benchPrefilled(cmd.Context(), prefill, prefillClients, prefillCommands, prefillAggregates)
				if err != nil {
					return fmt.Errorf("prefilled: %w", err)
				}
				m.printPrefillResults(g, pr)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON line per scenario (same as --output json)")
	f.IntVar(&clients, "clients", 100, "concurrent clients")
	f.IntVar(&distinct, "distinct", 4000, "commands (and raw appends) on distinct aggregates")
	f.IntVar(&contended, "contended", 500, "commands (and raw appends) on the contended aggregate")
	f.IntVar(&attempts, "attempts", 1000, "attempts of a command (and of a raw append) before it gives up")
	f.BoolVar(&lazy, "lazy", false, "also measure on a server that syncs every second")
	f.IntVar(&prefill, "prefill", 200000, "background events in the stream of the prefilled scenarios, measured at a tenth and at all of it (0: skip them)")
	f.IntVar(&prefillCommands, "prefill-commands", 1000, "commands per loader and stage of the prefilled scenarios")
	f.IntVar(&prefillClients, "prefill-clients", 8, "concurrent clients of the prefilled scenarios")
	f.IntVar(&twoFilter, "two-filter", 500, "two-filter appends beside 8 unrelated writers (0: skip the scenario)")
	f.IntVar(&prefillAggregates, "prefill-aggregates", 200, "aggregates per loader of the prefilled scenarios (each with a few events)")
	return cmd
}

func (m *Main) printCommandResults(g *globals, results []commandBenchResult) {
	if g.output == "json" {
		for _, r := range results {
			m.writeJSON(r)
		}
		return
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFSYNC\tCOMMANDS/S\tRAW/S\tRATIO\tP50 MS\tP99 MS\tRAW P50\tRAW P99\tRETRIES\tRAW RETRIES\tTARGET\tPASS")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.3f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%v\n", r.Scenario, r.Fsync, r.CommandsPerSec, r.RawPerSec, r.Ratio,
			r.P50Ms, r.P99Ms, r.RawP50Ms, r.RawP99Ms, r.RetryRate, r.RawRetryRate, r.Target, r.Pass)
	}
	tw.Flush()
}

// bump is the payload of the bench command: one more event on an aggregate.
type bump struct {
	Aggregate string `json:"aggregate"`
}

// bumpDecider replays the aggregate (counting its events) and decides one
// event carrying the new count.
func bumpDecider() handlers.Decider[bump, int] {
	return handlers.Funcs[bump, int]{
		QueryFunc: func(p bump) ([]subjects.Filter, error) {
			f, err := subjects.ParseFilter(p.Aggregate + ".>")
			return []subjects.Filter{f}, err
		},
		EvolveFunc: func(n int, _ jetsource.Event) int { return n + 1 },
		DecideFunc: func(n int, p bump) ([]jetsource.Event, error) {
			s, err := subjects.Parse(p.Aggregate + ".bumped")
			if err != nil {
				return nil, handlers.Reject(err.Error())
			}
			return []jetsource.Event{{Subject: s, Data: []byte(`{"n":` + strconv.Itoa(n+1) + `}`)}}, nil
		},
	}
}

// benchBackoff is the processor's default backoff: a random wait up to a
// limit doubling from 1ms to 100ms.
func benchBackoff(attempt int) time.Duration {
	limit := time.Millisecond << min(attempt-1, 7)
	limit = min(limit, 100*time.Millisecond)
	return time.Millisecond + rand.N(limit)
}

func benchCommands(ctx context.Context, name string, sync time.Duration, clients, total int, hot bool, attempts int, target float64) (commandBenchResult, error) {
	env, err := newBenchEnv(ctx, sync)
	if err != nil {
		return commandBenchResult{}, err
	}
	defer env.Close()
	// Every decision reads through an ordered consumer, which the server
	// keeps until it has been inactive for 5 minutes; lift the stream's
	// default limit of 1000 consumers so the run does not hit it.
	if err := liftConsumerLimit(ctx, env.js, "BENCH"); err != nil {
		return commandBenchResult{}, err
	}
	aggregate := func(side string, client int) string {
		if hot {
			return "bench." + side + ".hot"
		}
		return fmt.Sprintf("bench.%s.a%d", side, client)
	}

	// The command side: a worker on its own connection, clients on another.
	reg := handlers.NewRegistry()
	if err := reg.Register("Bump", handlers.New(bumpDecider())); err != nil {
		return commandBenchResult{}, err
	}
	proc, err := handlers.NewProcessor(env.store, reg, handlers.WithMaxAttempts(attempts))
	if err != nil {
		return commandBenchResult{}, err
	}
	srv, err := handlers.Serve(ctx, env.nc, proc, handlers.WithConcurrency(2*clients))
	if err != nil {
		return commandBenchResult{}, err
	}
	defer srv.Close()
	cnc, err := env.srv.Connect()
	if err != nil {
		return commandBenchResult{}, err
	}
	defer cnc.Close()
	client, err := handlers.NewClient(cnc, handlers.WithRequestTimeout(5*time.Minute))
	if err != nil {
		return commandBenchResult{}, err
	}
	var conflicts atomic.Int32
	cmdDur, cmdLat, cmdRetries, err := runClients(ctx, clients, total, func(ctx context.Context, c int) (int, error) {
		res, err := client.Send(ctx, "Bump", bump{Aggregate: aggregate("cmd", c)})
		if err != nil {
			return 0, err
		}
		switch res.Status {
		case handlers.StatusAccepted:
		case handlers.StatusConflict:
			conflicts.Add(1)
		default:
			return 0, res.Err()
		}
		return res.Attempts - 1, nil
	})
	if err != nil {
		return commandBenchResult{}, fmt.Errorf("commands: %w", err)
	}

	// The raw side: expected-sequence publishes, looking up the last
	// sequence after a conflict.
	data := benchData(16)
	lasts := make([]atomic.Uint64, clients)
	rawDur, rawLat, rawRetries, err := runClients(ctx, clients, total, func(ctx context.Context, c int) (int, error) {
		agg := aggregate("raw", c)
		filter := agg + ".>"
		last := &lasts[c]
		if hot {
			last = &lasts[0]
		}
		id, msg := rawMsg(agg+".bumped", data)
		for attempt := 1; attempt <= attempts; attempt++ {
			ack, err := env.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream("BENCH"),
				jetstream.WithExpectLastSequenceForSubject(last.Load(), filter))
			if err == nil {
				last.Store(max(last.Load(), ack.Sequence))
				return attempt - 1, nil
			}
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || (apiErr.ErrorCode != 10071 && apiErr.ErrorCode != 10164) {
				return 0, err
			}
			m, err := rawLast(ctx, env.js, filter)
			if err != nil {
				return 0, err
			}
			last.Store(m)
			if err := sleepCtx(ctx, benchBackoff(attempt)); err != nil {
				return 0, err
			}
		}
		return attempts - 1, nil
	})
	if err != nil {
		return commandBenchResult{}, fmt.Errorf("raw: %w", err)
	}
	r := commandBenchResult{
		Scenario: name, Clients: clients, Commands: total, Fsync: fsyncName(sync),
		CommandsPerSec: float64(total) / cmdDur.Seconds(), RawPerSec: float64(total) / rawDur.Seconds(),
		P50Ms: percentileMs(cmdLat, 0.50), P99Ms: percentileMs(cmdLat, 0.99),
		RawP50Ms: percentileMs(rawLat, 0.50), RawP99Ms: percentileMs(rawLat, 0.99),
		RetryRate: float64(cmdRetries) / float64(total), RawRetryRate: float64(rawRetries) / float64(total),
		Conflicts: int(conflicts.Load()), Target: target,
	}
	r.Ratio = r.CommandsPerSec / r.RawPerSec
	r.Pass = r.Ratio >= r.Target && r.Conflicts == 0
	return r, nil
}

// rawLast returns the last sequence matching a filter.
func rawLast(ctx context.Context, js jetstream.JetStream, filter string) (uint64, error) {
	st, err := js.Stream(ctx, "BENCH")
	if err != nil {
		return 0, err
	}
	m, err := st.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// runClients runs clients goroutines that together do total operations,
// client c doing every operation i with i%clients == c, one at a time. It
// returns the wall time, each operation's latency and the sum of retries.
func runClients(ctx context.Context, clients, total int, op func(ctx context.Context, client int) (int, error)) (time.Duration, []time.Duration, int, error) {
	lat := make([]time.Duration, total)
	var retries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := c; i < total; i += clients {
				t := time.Now()
				n, err := op(ctx, c)
				if err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t)
				retries.Add(int64(n))
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	return d, lat, int(retries.Load()), <-errs
}

func percentileMs(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := min(int(float64(len(s))*p), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}

func liftConsumerLimit(ctx context.Context, js jetstream.JetStream, stream string) error {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	cfg.MaxConsumers = 1 << 30
	_, err = js.UpdateStream(ctx, cfg)
	return err
}

// prefillBenchResult is one line of the prefilled scenarios of "jetsource
// bench commands --json": the latency of commands on aggregates that have
// a few events, in a stream holding Prefill other events, with the model
// loaded by replaying the boundary and from a snapshot.
type prefillBenchResult struct {
	Scenario string `json:"scenario"`
	// Prefill is how many background events the stream holds; Stream its
	// last sequence.
	Prefill  int    `json:"prefill"`
	Stream   uint64 `json:"stream"`
	Clients  int    `json:"clients"`
	Commands int    `json:"commands"`
	// Latencies of one command in milliseconds, loading with
	// [handlers.Replay] and with [handlers.Snapshots].
	ReplayP50Ms   float64 `json:"replay_p50_ms"`
	ReplayP99Ms   float64 `json:"replay_p99_ms"`
	SnapshotP50Ms float64 `json:"snapshot_p50_ms"`
	SnapshotP99Ms float64 `json:"snapshot_p99_ms"`
	// Ratio is replay p50 over snapshot p50: how many times faster the
	// snapshot loader decides.
	Ratio float64 `json:"ratio"`
}

// prefillStages returns the stream sizes the prefilled scenarios measure
// at: a tenth of the prefill, then all of it.
func prefillStages(prefill int) []int {
	if prefill < 10 {
		return []int{prefill}
	}
	return []int{prefill / 10, prefill}
}

// benchPrefilled fills one stream in stages with background events and at
// each stage measures commands on aggregates that already have events,
// with the replay loader and the snapshot loader on the same server.
func benchPrefilled(ctx context.Context, prefill, clients, total, aggregates int) ([]prefillBenchResult, error) {
	env, err := newBenchEnv(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if err := liftConsumerLimit(ctx, env.js, "BENCH"); err != nil {
		return nil, err
	}
	snaps, err := state.NewKVSnapshots(ctx, env.js, "bench_decisions")
	if err != nil {
		return nil, err
	}
	snapHandler, err := handlers.NewWithSnapshots(bumpDecider(), snaps)
	if err != nil {
		return nil, err
	}
	reg := handlers.NewRegistry()
	if err := reg.Register("BumpReplay", handlers.New(bumpDecider())); err != nil {
		return nil, err
	}
	if err := reg.Register("BumpSnapshot", snapHandler); err != nil {
		return nil, err
	}
	proc, err := handlers.NewProcessor(env.store, reg, handlers.WithMaxAttempts(100))
	if err != nil {
		return nil, err
	}
	srv, err := handlers.Serve(ctx, env.nc, proc, handlers.WithConcurrency(2*clients))
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	cnc, err := env.srv.Connect()
	if err != nil {
		return nil, err
	}
	defer cnc.Close()
	client, err := handlers.NewClient(cnc, handlers.WithRequestTimeout(5*time.Minute))
	if err != nil {
		return nil, err
	}
	aggregate := func(side string, i int) string { return fmt.Sprintf("bench.%s.a%d", side, i) }
	send := func(command, side string) func(ctx context.Context, c int) (int, error) {
		var next atomic.Int64
		return func(ctx context.Context, _ int) (int, error) {
			i := int(next.Add(1)-1) % aggregates
			res, err := client.Send(ctx, command, bump{Aggregate: aggregate(side, i)})
			if err != nil {
				return 0, err
			}
			if res.Status != handlers.StatusAccepted {
				return 0, fmt.Errorf("%s: %s: %w", command, res.Status, res.Err())
			}
			return res.Attempts - 1, nil
		}
	}
	// Every aggregate starts with a few events, and has decided once with
	// each loader (the snapshot loader then holds a snapshot of it).
	var seed []jetsource.Event
	for i := range aggregates {
		for _, side := range []string{"replay", "snap"} {
			for range 3 {
				seed = append(seed, jetsource.Event{Subject: subjects.MustParse(aggregate(side, i) + ".seeded"), Data: []byte(`{}`)})
			}
		}
	}
	if err := appendChunks(ctx, env.store, seed); err != nil {
		return nil, err
	}
	if _, _, _, err := runClients(ctx, clients, aggregates, send("BumpReplay", "replay")); err != nil {
		return nil, err
	}
	if _, _, _, err := runClients(ctx, clients, aggregates, send("BumpSnapshot", "snap")); err != nil {
		return nil, err
	}
	var results []prefillBenchResult
	filled := 0
	data := benchData(64)
	for _, stage := range prefillStages(prefill) {
		bg := make([]jetsource.Event, 0, jetsource.MaxBatch)
		for ; filled < stage; filled++ {
			bg = append(bg, jetsource.Event{Subject: subjects.MustParse(fmt.Sprintf("bench.bg.b%d.filled", filled%10000)), Data: data})
			if len(bg) == jetsource.MaxBatch {
				if err := appendChunks(ctx, env.store, bg); err != nil {
					return nil, err
				}
				bg = bg[:0]
			}
		}
		if err := appendChunks(ctx, env.store, bg); err != nil {
			return nil, err
		}
		_, replayLat, _, err := runClients(ctx, clients, total, send("BumpReplay", "replay"))
		if err != nil {
			return nil, err
		}
		_, snapLat, _, err := runClients(ctx, clients, total, send("BumpSnapshot", "snap"))
		if err != nil {
			return nil, err
		}
		head, err := env.store.LastSequence(ctx, subjects.All())
		if err != nil {
			return nil, err
		}
		r := prefillBenchResult{
			Scenario: fmt.Sprintf("commands-prefill-%d", stage), Prefill: stage, Stream: head, Clients: clients, Commands: total,
			ReplayP50Ms: percentileMs(replayLat, 0.50), ReplayP99Ms: percentileMs(replayLat, 0.99),
			SnapshotP50Ms: percentileMs(snapLat, 0.50), SnapshotP99Ms: percentileMs(snapLat, 0.99),
		}
		if r.SnapshotP50Ms > 0 {
			r.Ratio = r.ReplayP50Ms / r.SnapshotP50Ms
		}
		results = append(results, r)
	}
	return results, nil
}

// appendChunks appends events unconditionally in transactions of at most
// [jetsource.MaxBatch].
func appendChunks(ctx context.Context, st jetsource.Store, events []jetsource.Event) error {
	for chunk := range slices.Chunk(events, jetsource.MaxBatch) {
		if _, err := st.AppendBatch(ctx, chunk); err != nil {
			return err
		}
	}
	return nil
}

func (m *Main) printPrefillResults(g *globals, results []prefillBenchResult) {
	if g.output == "json" {
		for _, r := range results {
			m.writeJSON(r)
		}
		return
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tSTREAM\tREPLAY P50\tREPLAY P99\tSNAPSHOT P50\tSNAPSHOT P99\tRATIO")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\n", r.Scenario, r.Stream, r.ReplayP50Ms, r.ReplayP99Ms, r.SnapshotP50Ms, r.SnapshotP99Ms, r.Ratio)
	}
	tw.Flush()
}

// twoFilterResult is the outcome of the two-filter scenario.
type twoFilterResult struct {
	Scenario  string `json:"scenario"`
	Appends   int    `json:"appends"`
	Unrelated int    `json:"unrelated_writers"`
	// UnrelatedAppends counts the unrelated writers' appends meanwhile.
	UnrelatedAppends int64 `json:"unrelated_appends"`
	// Succeeded counts the two-filter appends stored at the first call;
	// Failed those that failed (a conflict, or busy), with the first error.
	Succeeded  int     `json:"succeeded"`
	Failed     int     `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
	Rate       float64 `json:"success_rate"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	Target     float64 `json:"target"`
	Pass       bool    `json:"pass"`
}

// benchTwoFilter appends n events one at a time, each with ExpectNoneAfter
// a fresh read position on two filters, while writers append to unrelated
// aggregates.
func benchTwoFilter(ctx context.Context, n, writers int) (twoFilterResult, error) {
	env, err := newBenchEnv(ctx, 0)
	if err != nil {
		return twoFilterResult{}, err
	}
	defer env.Close()
	r := twoFilterResult{Scenario: "two-filter-unrelated", Appends: n, Unrelated: writers, Target: 0.95}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var unrelated atomic.Int64
	errs := make(chan error, writers)
	data := benchData(16)
	for w := range writers {
		wg.Go(func() {
			for i := 0; wctx.Err() == nil; i++ {
				e := jetsource.Event{Subject: subjects.MustParse(fmt.Sprintf("bench.other.w%d.n%d.added", w, i%100)), Data: data}
				if _, err := env.store.Append(wctx, e); err != nil {
					if wctx.Err() == nil {
						errs <- err
					}
					return
				}
				unrelated.Add(1)
			}
		})
	}
	defer func() { stop(); wg.Wait() }()
	users := subjects.MustParseFilter("bench.users.ann.>")
	group := subjects.MustParseFilter("bench.groups.g.>")
	lat := make([]time.Duration, 0, n)
	for i := range n {
		select {
		case err := <-errs:
			return r, fmt.Errorf("unrelated writer: %w", err)
		default:
		}
		start := time.Now()
		pos, err := env.store.LastSequence(ctx, subjects.All())
		if err != nil {
			return r, err
		}
		e := jetsource.Event{Subject: subjects.MustParse("bench.groups.g.joined"), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		_, err = env.store.Append(ctx, e, jetsource.ExpectNoneAfter(pos, users, group))
		lat = append(lat, time.Since(start))
		if err != nil {
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			r.Failed++
			if r.FirstError == "" {
				r.FirstError = err.Error()
			}
			continue
		}
		r.Succeeded++
	}
	r.UnrelatedAppends = unrelated.Load()
	slices.Sort(lat)
	r.P50Ms, r.P99Ms = percentileMs(lat, 0.50), percentileMs(lat, 0.99)
	r.Rate = float64(r.Succeeded) / float64(n)
	r.Pass = r.Rate >= r.Target
	return r, nil
}

func (m *Main) printTwoFilterResult(g *globals, r twoFilterResult) {
	if g.output == "json" {
		m.writeJSON(r)
		return
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tAPPENDS\tUNRELATED WRITERS\tUNRELATED APPENDS\tSUCCEEDED\tRATE\tP50 MS\tP99 MS\tTARGET\tPASS")
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.3f\t%.2f\t%.2f\t%.2f\t%v\n", r.Scenario, r.Appends, r.Unrelated, r.UnrelatedAppends, r.Succeeded, r.Rate, r.P50Ms, r.P99Ms, r.Target, r.Pass)
	tw.Flush()
	if r.FirstError != "" {
		fmt.Fprintf(m.Stderr, "two-filter: %d appends failed, the first with: %s\n", r.Failed, r.FirstError)
	}
}
