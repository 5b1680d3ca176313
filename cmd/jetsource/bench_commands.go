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
	var clients, distinct, contended, attempts int
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
target 0.1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clients <= 0 || distinct <= 0 || contended <= 0 || attempts <= 0 {
				return usagef("--clients, --distinct, --contended and --attempts must be positive")
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
