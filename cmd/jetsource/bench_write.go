package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/publisher"
	"github.com/jetsource/jetsource/subjects"
)

// printResults prints bench results as JSON lines or a table.
func (m *Main) printResults(g *globals, results []benchResult) {
	if g.output == "json" {
		for _, r := range results {
			m.writeJSON(r)
		}
		return
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFSYNC\tJETSOURCE/S\tRAW/S\tRATIO\tTARGET\tPASS")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.3f\t%.2f\t%v\n", r.Scenario, r.Fsync, r.JetsourcePerSec, r.RawPerSec, r.Ratio, r.Target, r.Pass)
	}
	tw.Flush()
}

type benchFlags struct {
	maxBatch int
	inFlight int
	asJSON   bool
	events   int
	rounds   int
	size     int
}

func (b *benchFlags) register(cmd *cobra.Command, events int) {
	f := cmd.Flags()
	f.BoolVar(&b.asJSON, "json", false, "print one JSON line per scenario (same as --output json)")
	f.IntVar(&b.events, "events", events, "events per round and side")
	f.IntVar(&b.rounds, "rounds", 4, "rounds per side (alternating raw and jetsource)")
	f.IntVar(&b.size, "size", 128, "bytes of JSON data per event")
}

func (b *benchFlags) check(g *globals) error {
	if b.events <= 0 || b.rounds <= 0 || b.size < 0 {
		return usagef("--events and --rounds must be positive, --size not negative")
	}
	if b.asJSON {
		g.output = "json"
	}
	return nil
}

func (m *Main) newBenchPipelineCmd(g *globals) *cobra.Command {
	var bf benchFlags
	var aggs int
	cmd := &cobra.Command{
		Use:   "pipeline [--json]",
		Short: "Pipelined appends (group commit) against raw PublishAsync",
		Long: `bench pipeline appends events to many aggregates through the pipelined
publisher, which coalesces them into atomic batches (group commit), and
compares it with raw nats.go PublishMsgAsync of the same messages (CloudEvents
headers, Nats-Msg-Id, expected stream), every acknowledgement checked on both
sides.

Scenarios: "pipeline" on a server that syncs every write (target: 5x raw,
since raw async publish pays one sync per message and a batch one sync per
batch) and "pipeline-lazy-fsync" on a server that syncs every second
(target 0.5x raw, the cost of atomic batches against plain publishes).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bf.check(g); err != nil {
				return err
			}
			var results []benchResult
			for _, sc := range []struct {
				name   string
				sync   time.Duration
				target float64
			}{{"pipeline", 0, 5}, {"pipeline-lazy-fsync", time.Second, 0.5}} {
				r, err := benchPipeline(cmd.Context(), sc.name, sc.sync, sc.target, bf, aggs)
				if err != nil {
					return err
				}
				results = append(results, r)
			}
			m.printResults(g, results)
			return nil
		},
	}
	bf.register(cmd, 50000)
	cmd.Flags().IntVar(&aggs, "aggregates", 1000, "number of aggregates the events spread over")
	cmd.Flags().IntVar(&bf.maxBatch, "max-batch", jetsource.MaxBatch, "events per batch at most")
	cmd.Flags().IntVar(&bf.inFlight, "max-in-flight", 8, "batches in flight at most (the publisher's default)")
	return cmd
}

func benchPipeline(ctx context.Context, name string, sync time.Duration, target float64, bf benchFlags, aggs int) (benchResult, error) {
	env, err := newBenchEnv(ctx, sync)
	if err != nil {
		return benchResult{}, err
	}
	defer env.Close()
	data := benchData(bf.size)
	var rawDur, jsDur time.Duration
	for round := range bf.rounds {
		start := time.Now()
		futs := make([]jetstream.PubAckFuture, 0, bf.events)
		for i := range bf.events {
			id, msg := rawMsg(fmt.Sprintf("bench.raw%d.a%d.changed", round, i%aggs), data)
			f, err := env.js.PublishMsgAsync(msg, jetstream.WithMsgID(id), jetstream.WithExpectStream("BENCH"), jetstream.WithStallWait(time.Minute))
			if err != nil {
				return benchResult{}, fmt.Errorf("raw: %w", err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return benchResult{}, fmt.Errorf("raw: %w", err)
			case <-ctx.Done():
				return benchResult{}, ctx.Err()
			}
		}
		rawDur += time.Since(start)

		d, err := runPipeline(ctx, env, round, bf.events, aggs, data, nil, publisher.WithMaxBatch(bf.maxBatch), publisher.WithMaxInFlight(bf.inFlight))
		if err != nil {
			return benchResult{}, err
		}
		jsDur += d
	}
	total := float64(bf.events * bf.rounds)
	return newResult(name, total/jsDur.Seconds(), total/rawDur.Seconds(), target, bf.events*bf.rounds, aggs, sync), nil
}

// runPipeline appends n events spread over aggs aggregates through a new
// publisher, with the option opt(i) for event i (nil: none), and returns the
// time until every append has its result.
func runPipeline(ctx context.Context, env *benchEnv, round, n, aggs int, data []byte, opt func(int) jetsource.AppendOption, popts ...publisher.Option) (time.Duration, error) {
	p, err := publisher.New(env.store, popts...)
	if err != nil {
		return 0, err
	}
	subs := make([]subjects.Subject, aggs)
	for a := range subs {
		subs[a] = subjects.MustParse(fmt.Sprintf("bench.js%d.a%d.changed", round, a))
	}
	start := time.Now()
	for i := range n {
		var opts []jetsource.AppendOption
		if opt != nil {
			opts = append(opts, opt(i))
		}
		if _, err := p.Append(ctx, jetsource.Event{Subject: subs[i%aggs], Data: data}, opts...); err != nil {
			p.Close(ctx)
			return 0, err
		}
	}
	results, err := p.Close(ctx)
	d := time.Since(start)
	if err := firstErr(results, err); err != nil {
		return 0, fmt.Errorf("jetsource: %w", err)
	}
	return d, nil
}

func firstErr(results []publisher.Result, err error) error {
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Err != nil {
			return fmt.Errorf("%s: %w", r.Subject, r.Err)
		}
	}
	return nil
}

func (m *Main) newBenchOCCCmd(g *globals) *cobra.Command {
	var bf benchFlags
	var aggs int
	cmd := &cobra.Command{
		Use:   "occ [--json]",
		Short: "Pipelined conditional appends against sequential expected-sequence publishes",
		Long: `bench occ appends chains of conditional events to 100 aggregates: through the
pipelined publisher every event expects its aggregate's previous event
(ExpectSequence(0) first, then ExpectPrevious), so nothing waits for a
sequence before sending the next. The raw side publishes the same events one
at a time with nats.go PublishMsg and the expected last subject sequence of
the aggregate's filter, as a writer without pipelining must. Server: fsync on
every write. Target: 5x.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bf.check(g); err != nil {
				return err
			}
			r, err := benchOCC(cmd.Context(), bf, aggs)
			if err != nil {
				return err
			}
			m.printResults(g, []benchResult{r})
			return nil
		},
	}
	bf.register(cmd, 3000)
	cmd.Flags().IntVar(&aggs, "aggregates", 100, "number of aggregates")
	return cmd
}

func benchOCC(ctx context.Context, bf benchFlags, aggs int) (benchResult, error) {
	env, err := newBenchEnv(ctx, 0)
	if err != nil {
		return benchResult{}, err
	}
	defer env.Close()
	data := benchData(bf.size)
	var rawDur, jsDur time.Duration
	for round := range bf.rounds {
		last := make([]uint64, aggs)
		start := time.Now()
		for i := range bf.events {
			a := i % aggs
			seq, err := rawAppend(ctx, env.js, fmt.Sprintf("bench.raw%d.a%d.changed", round, a), data, last[a])
			if err != nil {
				return benchResult{}, fmt.Errorf("raw: %w", err)
			}
			last[a] = seq
		}
		rawDur += time.Since(start)

		d, err := runPipeline(ctx, env, round, bf.events, aggs, data, func(i int) jetsource.AppendOption {
			if i < aggs {
				return jetsource.ExpectSequence(0) // the first event of each aggregate
			}
			return publisher.ExpectPrevious()
		})
		if err != nil {
			return benchResult{}, err
		}
		jsDur += d
	}
	total := float64(bf.events * bf.rounds)
	return newResult("occ", total/jsDur.Seconds(), total/rawDur.Seconds(), 5, bf.events*bf.rounds, aggs, 0), nil
}

func (m *Main) newBenchTxCmd(g *globals) *cobra.Command {
	var bf benchFlags
	var size, conc int
	cmd := &cobra.Command{
		Use:   "tx [--json]",
		Short: "Atomic transactions against the raw batch protocol",
		Long: `bench tx appends transactions of 10 events (AppendBatch: all or nothing, one
transaction id) and compares them with the raw JetStream atomic batch protocol
over nats.go (plain publishes with Nats-Batch-Id and Nats-Batch-Sequence, a
request for the commit) carrying the same headers. Writers run concurrently,
each one transaction at a time. Server: fsync on every write. Target: 0.9.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bf.check(g); err != nil {
				return err
			}
			if size < 1 || size > jetsource.MaxBatch || conc < 1 {
				return usagef("--tx-size must be between 1 and %d, --concurrency positive", jetsource.MaxBatch)
			}
			r, err := benchTx(cmd.Context(), bf, size, conc)
			if err != nil {
				return err
			}
			m.printResults(g, []benchResult{r})
			return nil
		},
	}
	bf.register(cmd, 20000)
	cmd.Flags().IntVar(&size, "tx-size", 10, "events per transaction")
	cmd.Flags().IntVar(&conc, "concurrency", 8, "concurrent writers")
	return cmd
}

func benchTx(ctx context.Context, bf benchFlags, size, conc int) (benchResult, error) {
	env, err := newBenchEnv(ctx, 0)
	if err != nil {
		return benchResult{}, err
	}
	defer env.Close()
	data := benchData(bf.size)
	txs := bf.events / size
	var rawDur, jsDur time.Duration
	for round := range bf.rounds {
		d, err := runWriters(ctx, conc, txs, func(ctx context.Context, w, i int, _ uint64) (uint64, error) {
			return 0, rawTx(ctx, env.nc, fmt.Sprintf("bench.raw%d.w%d", round, w), size, data)
		})
		if err != nil {
			return benchResult{}, fmt.Errorf("raw: %w", err)
		}
		rawDur += d
		d, err = runWriters(ctx, conc, txs, func(ctx context.Context, w, i int, _ uint64) (uint64, error) {
			evs := make([]jetsource.Event, size)
			for k := range evs {
				evs[k] = jetsource.Event{Subject: subjects.MustParse(fmt.Sprintf("bench.js%d.w%d.e%d", round, w, k)), Data: data}
			}
			_, err := env.store.AppendBatch(ctx, evs)
			return 0, err
		})
		if err != nil {
			return benchResult{}, fmt.Errorf("jetsource: %w", err)
		}
		jsDur += d
	}
	total := float64(txs * size * bf.rounds)
	return newResult("tx", total/jsDur.Seconds(), total/rawDur.Seconds(), 0.9, txs*size*bf.rounds, conc, 0), nil
}

// rawTx appends one transaction with the atomic batch protocol over plain
// nats.go, with the headers jetsource would send.
func rawTx(ctx context.Context, nc *nats.Conn, prefix string, size int, data []byte) error {
	batch := jetsource.NewID()
	tx := jetsource.NewID()
	for k := range size {
		id, msg := rawMsg(fmt.Sprintf("%s.e%d", prefix, k), data)
		msg.Header.Set("ce-transactionid", tx)
		msg.Header.Set("Nats-Msg-Id", id)
		msg.Header.Set("Nats-Expected-Stream", "BENCH")
		msg.Header.Set("Nats-Batch-Id", batch)
		msg.Header.Set("Nats-Batch-Sequence", strconv.Itoa(k+1))
		if k < size-1 {
			if err := nc.PublishMsg(msg); err != nil {
				return err
			}
			continue
		}
		msg.Header.Set("Nats-Batch-Commit", "1")
		resp, err := nc.RequestMsgWithContext(ctx, msg)
		if err != nil {
			return err
		}
		var ack struct {
			Count int `json:"count"`
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return err
		}
		if ack.Error != nil || ack.Count != size {
			return errors.New("raw batch refused: " + string(resp.Data))
		}
	}
	return nil
}
