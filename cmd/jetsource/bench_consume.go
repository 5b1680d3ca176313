package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
	"github.com/jetsource/jetsource/subscriber"
)

func (m *Main) newBenchConsumeCmd(g *globals) *cobra.Command {
	var bf benchFlags
	var aggs, conc int
	var lazy bool
	cmd := &cobra.Command{
		Use:   "consume [--json] [--events N] [--concurrency C]",
		Short: "Durable workers with acknowledgements against a raw pull consumer",
		Long: `bench consume stores N events spread over many aggregates, then handles them
all with a durable subscriber (C lanes, per-aggregate order, each event decoded
and acknowledged after a trivial handler) and with a raw nats.go pull consumer
(Consume with a callback that acknowledges each message) with the same
consumer settings (explicit acks, ack wait, max ack pending). Each side creates
its own durable over the same events on the same embedded server; rounds
alternate raw and jetsource. A side is done when the server reports every
event acknowledged.

Scenarios: "consume" on a server that syncs every write (the default), and
with --lazy also "consume-lazy-fsync" on a server that syncs every second.
Target: ratio >= 0.8.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bf.check(g); err != nil {
				return err
			}
			if conc <= 0 || aggs <= 0 {
				return usagef("--concurrency and --aggregates must be positive")
			}
			scen := []struct {
				name string
				sync time.Duration
			}{{"consume", 0}}
			if lazy {
				scen = append(scen, struct {
					name string
					sync time.Duration
				}{"consume-lazy-fsync", time.Second})
			}
			var results []benchResult
			for _, sc := range scen {
				r, err := benchConsume(cmd.Context(), sc.name, sc.sync, bf, aggs, conc)
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
	// Consumption runs are short: one more round by default evens out noise.
	bf.rounds = 3
	cmd.Flags().Lookup("rounds").DefValue = "3"
	f := cmd.Flags()
	f.IntVar(&conc, "concurrency", 4, "lanes of the subscriber (events handled at once)")
	f.IntVar(&aggs, "aggregates", 1000, "number of aggregates the events spread over")
	f.BoolVar(&lazy, "lazy", false, "also measure on a server that syncs every second")
	return cmd
}

// benchConsumeAckWait and benchConsumeMaxAckPending are the consumer
// settings of both sides.
const (
	benchConsumeAckWait       = 30 * time.Second
	benchConsumeMaxAckPending = subscriber.DefaultMaxAckPending
)

func benchConsume(ctx context.Context, name string, sync time.Duration, bf benchFlags, aggs, conc int) (benchResult, error) {
	env, err := newBenchEnv(ctx, sync)
	if err != nil {
		return benchResult{}, err
	}
	defer env.Close()
	last, err := benchStoreEvents(ctx, env.store, bf.events, aggs, benchData(bf.size))
	if err != nil {
		return benchResult{}, err
	}
	var rawDur, jsDur time.Duration
	for round := range bf.rounds {
		d, err := rawConsume(ctx, env.js, fmt.Sprintf("raw%d", round), bf.events, last)
		if err != nil {
			return benchResult{}, fmt.Errorf("raw: %w", err)
		}
		rawDur += d
		d, err = subscriberConsume(ctx, env.js, fmt.Sprintf("js%d", round), bf.events, last, conc)
		if err != nil {
			return benchResult{}, fmt.Errorf("jetsource: %w", err)
		}
		jsDur += d
	}
	total := float64(bf.events * bf.rounds)
	return newResult(name, total/jsDur.Seconds(), total/rawDur.Seconds(), 0.8, bf.events*bf.rounds, conc, sync), nil
}

// benchStoreEvents stores n events (the same messages as rawMsg builds)
// over aggs aggregates in atomic batches, one sync per batch, and returns
// the last sequence.
func benchStoreEvents(ctx context.Context, st *jetstore.Store, n, aggs int, data []byte) (uint64, error) {
	var last uint64
	batch := make([]jetsource.Event, 0, jetsource.MaxBatch)
	for i := 0; i < n; i += jetsource.MaxBatch {
		batch = batch[:0]
		for j := i; j < min(i+jetsource.MaxBatch, n); j++ {
			subj, err := subjects.Parse(fmt.Sprintf("bench.c.a%d.changed", j%aggs))
			if err != nil {
				return 0, err
			}
			batch = append(batch, jetsource.Event{Subject: subj, Type: "bench.changed", Data: data})
		}
		acks, err := st.AppendBatch(ctx, batch)
		if err != nil {
			return 0, err
		}
		last = acks[len(acks)-1].Sequence
	}
	return last, nil
}

// rawConsume handles the events with a plain nats.go pull consumer that
// acknowledges every message in its callback.
func rawConsume(ctx context.Context, js jetstream.JetStream, durable string, n int, last uint64) (time.Duration, error) {
	start := time.Now()
	cons, err := js.CreateOrUpdateConsumer(ctx, "BENCH", jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: benchConsumeAckWait,
		MaxDeliver: -1, MaxAckPending: benchConsumeMaxAckPending,
	})
	if err != nil {
		return 0, err
	}
	var count atomic.Int64
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if count.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	if err := waitDone(ctx, done); err != nil {
		return 0, err
	}
	if err := waitAckFloor(ctx, js, durable, last); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// subscriberConsume handles the events with a durable subscriber.
func subscriberConsume(ctx context.Context, js jetstream.JetStream, durable string, n int, last uint64, conc int) (time.Duration, error) {
	var count atomic.Int64
	done := make(chan struct{})
	sub, err := subscriber.New(js, "BENCH", durable, func(context.Context, jetsource.Event) error {
		if count.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}, subscriber.WithConcurrency(conc), subscriber.WithAckWait(benchConsumeAckWait), subscriber.WithMaxAckPending(benchConsumeMaxAckPending))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := sub.Start(ctx); err != nil {
		return 0, err
	}
	defer sub.Close()
	if err := waitDone(ctx, done); err != nil {
		return 0, err
	}
	if err := waitAckFloor(ctx, js, durable, last); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func waitDone(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Minute):
		return errors.New("timed out waiting for the events")
	}
}

// waitAckFloor waits until the server has every event up to last
// acknowledged on the durable.
func waitAckFloor(ctx context.Context, js jetstream.JetStream, durable string, last uint64) error {
	for {
		cons, err := js.Consumer(ctx, "BENCH", durable)
		if err != nil {
			return err
		}
		if cons.CachedInfo().AckFloor.Stream >= last {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
