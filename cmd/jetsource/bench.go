package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// benchResult is one line of "jetsource bench ... --json".
type benchResult struct {
	Scenario        string  `json:"scenario"`
	JetsourcePerSec float64 `json:"jetsource_per_sec"`
	RawPerSec       float64 `json:"raw_per_sec"`
	Ratio           float64 `json:"ratio"`
	Target          float64 `json:"target"`
	Pass            bool    `json:"pass"`
	Events          int     `json:"events"`
	Concurrency     int     `json:"concurrency"`
	Fsync           string  `json:"fsync"`
}

func (m *Main) newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure jetsource against raw nats.go on an embedded server",
		Long: `bench starts its own embedded server in a temporary directory and, in one
run, measures an operation through jetsource and the same operation through
raw nats.go, printing the rates and their ratio (jetsource / raw) next to
the target. With --json each scenario is one JSON line with the fields
scenario, jetsource_per_sec, raw_per_sec, ratio and target.`,
	}
	var cpuProfile string
	cmd.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	var stopProfile func()
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if err := c.Root().PersistentPreRunE(c, args); err != nil {
			return err
		}
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	cmd.PersistentPostRun = func(*cobra.Command, []string) {
		if stopProfile != nil {
			stopProfile()
		}
	}
	cmd.AddCommand(m.newBenchAppendCmd(g), m.newBenchPipelineCmd(g), m.newBenchOCCCmd(g), m.newBenchTxCmd(g),
		m.newBenchConsumeCmd(g), m.newBenchRebuildCmd(g), m.newBenchLoadCmd(g), m.newBenchCommandsCmd(g), m.newBenchMigrateCmd(g), m.newBenchExampleCmd(g))
	return cmd
}

func (m *Main) newBenchAppendCmd(g *globals) *cobra.Command {
	var events, concurrency, size, rounds int
	var asJSON, lazy bool
	cmd := &cobra.Command{
		Use:   "append [--json] [--events N] [--concurrency C]",
		Short: "Single-event appends with per-aggregate expectations",
		Long: `bench append measures single-event appends: C writers, each on an aggregate of
its own, append one event at a time with the expected last sequence of their
aggregate (optimistic concurrency). jetsource's Append is compared with raw
nats.go PublishMsg carrying the same headers (CloudEvents attributes,
Nats-Msg-Id, expected stream, expected last subject sequence and its filter).
Rounds alternate raw and jetsource so drift affects both alike.

Scenarios: "append" on a server that syncs every write (the default), and
with --lazy also "append-lazy-fsync" on a server that syncs every second.
Target: ratio >= 0.9.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if events <= 0 || concurrency <= 0 || size < 0 || rounds <= 0 {
				return usagef("--events, --concurrency and --rounds must be positive, --size not negative")
			}
			if asJSON {
				g.output = "json"
			}
			scen := []struct {
				name string
				sync time.Duration
			}{{"append", 0}}
			if lazy {
				scen = append(scen, struct {
					name string
					sync time.Duration
				}{"append-lazy-fsync", time.Second})
			}
			var results []benchResult
			for _, sc := range scen {
				r, err := benchAppend(cmd.Context(), sc.name, sc.sync, events, concurrency, size, rounds)
				if err != nil {
					return err
				}
				results = append(results, r)
			}
			m.printResults(g, results)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON line per scenario (same as --output json)")
	f.IntVar(&events, "events", 8000, "events per round and side")
	f.IntVar(&concurrency, "concurrency", 16, "concurrent writers, one aggregate each")
	f.IntVar(&size, "size", 128, "bytes of JSON data per event")
	f.IntVar(&rounds, "rounds", 6, "rounds per side (alternating raw and jetsource)")
	f.BoolVar(&lazy, "lazy", false, "also measure on a server that syncs every second")
	return cmd
}

// benchEnv is an embedded server with a stream for one scenario.
type benchEnv struct {
	srv   *embedded.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	store *jetstore.Store
	dir   string
}

// newBenchEnv starts a server (sync 0: fsync every write) in a temporary
// directory with the stream BENCH on bench.>.
func newBenchEnv(ctx context.Context, sync time.Duration) (*benchEnv, error) {
	dir, err := os.MkdirTemp("", "jetsource-bench-")
	if err != nil {
		return nil, err
	}
	env := &benchEnv{dir: dir}
	opts := []embedded.Option{embedded.WithListen("127.0.0.1:0"), embedded.WithDataDir(dir)}
	if sync > 0 {
		opts = append(opts, embedded.WithSyncInterval(sync))
	}
	if env.srv, err = embedded.Start(ctx, opts...); err != nil {
		env.Close()
		return nil, err
	}
	if env.nc, err = env.srv.Connect(); err != nil {
		env.Close()
		return nil, err
	}
	if env.js, err = jetstream.New(env.nc, jetstream.WithPublishAsyncMaxPending(4000)); err != nil {
		env.Close()
		return nil, err
	}
	if _, err = jetstore.Provision(ctx, env.js, jetstore.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}}); err != nil {
		env.Close()
		return nil, err
	}
	if env.store, err = jetstore.New(ctx, env.js, "BENCH", jetstore.WithTimeout(30*time.Second)); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

func (e *benchEnv) Close() {
	if e.nc != nil {
		e.nc.Close()
	}
	if e.srv != nil {
		e.srv.Shutdown()
	}
	os.RemoveAll(e.dir)
}

func fsyncName(sync time.Duration) string {
	if sync > 0 {
		return sync.String()
	}
	return "always"
}

func benchAppend(ctx context.Context, name string, sync time.Duration, events, conc, size, rounds int) (benchResult, error) {
	env, err := newBenchEnv(ctx, sync)
	if err != nil {
		return benchResult{}, err
	}
	defer env.Close()
	js, st := env.js, env.store
	data := benchData(size)
	var rawDur, jsDur time.Duration
	for round := range rounds {
		d, err := runWriters(ctx, conc, events, func(ctx context.Context, w, i int, last uint64) (uint64, error) {
			return rawAppend(ctx, js, fmt.Sprintf("bench.raw%d.a%d.changed", round, w), data, last)
		})
		if err != nil {
			return benchResult{}, fmt.Errorf("raw: %w", err)
		}
		rawDur += d
		d, err = runWriters(ctx, conc, events, func(ctx context.Context, w, i int, last uint64) (uint64, error) {
			subj, err := subjects.Parse(fmt.Sprintf("bench.js%d.a%d.changed", round, w))
			if err != nil {
				return 0, err
			}
			ack, err := st.Append(ctx, jetsource.Event{Subject: subj, Data: data}, jetsource.ExpectSequence(last))
			return ack.Sequence, err
		})
		if err != nil {
			return benchResult{}, fmt.Errorf("jetsource: %w", err)
		}
		jsDur += d
	}
	total := float64(events * rounds)
	return newResult(name, total/jsDur.Seconds(), total/rawDur.Seconds(), 0.9, events*rounds, conc, sync), nil
}

func newResult(name string, jsRate, rawRate, target float64, events, conc int, sync time.Duration) benchResult {
	r := benchResult{Scenario: name, JetsourcePerSec: jsRate, RawPerSec: rawRate, Target: target, Events: events, Concurrency: conc, Fsync: fsyncName(sync)}
	r.Ratio = r.JetsourcePerSec / r.RawPerSec
	r.Pass = r.Ratio >= r.Target
	return r
}

// runWriters runs conc writers that together append n events, each writer
// on its own aggregate, passing each append the sequence of its previous
// one.
func runWriters(ctx context.Context, conc, n int, appendOne func(ctx context.Context, w, i int, last uint64) (uint64, error)) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	start := time.Now()
	for w := range conc {
		count := n / conc
		if w < n%conc {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for i := range count {
				seq, err := appendOne(ctx, w, i, last)
				if err != nil {
					errs <- err
					return
				}
				last = seq
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	return d, <-errs
}

// rawAppend publishes with plain nats.go what jetsource's Append publishes:
// the same CloudEvents headers, message id and expectations.
func rawAppend(ctx context.Context, js jetstream.JetStream, subject string, data []byte, last uint64) (uint64, error) {
	id, msg := rawMsg(subject, data)
	filter := subject[:len(subject)-len("changed")] + ">"
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream("BENCH"),
		jetstream.WithExpectLastSequenceForSubject(last, filter))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// rawMsg builds with plain nats.go the message jetsource publishes for an
// event: the CloudEvents headers in binary mode and the data.
func rawMsg(subject string, data []byte) (string, *nats.Msg) {
	id := jetsource.NewID()
	return id, &nats.Msg{Subject: subject, Data: data, Header: nats.Header{
		"ce-specversion": {"1.0"},
		"ce-id":          {id},
		"ce-source":      {"/jetsource"},
		"ce-type":        {"bench.changed"},
		"ce-time":        {time.Now().UTC().Format(time.RFC3339Nano)},
		"Content-Type":   {"application/json"},
	}}
}

// benchData returns a JSON object of about size bytes.
func benchData(size int) []byte {
	pad := max(size-len(`{"pad":""}`), 0)
	return []byte(`{"pad":"` + strings.Repeat("x", pad) + `"}`)
}
