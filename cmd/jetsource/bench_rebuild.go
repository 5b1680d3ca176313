package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/projections/projectiontest"
	"github.com/jetsource/jetsource/subjects"
)

// rebuildBenchResult is a benchResult with the memory figures of a rebuild.
type rebuildBenchResult struct {
	benchResult
	ReadModel string `json:"read_model"`
	// Server is where the server ran: "child" (a process of its own, so
	// that the memory figures are the client's alone) or "in-process".
	Server string `json:"server"`
	// PullBatch is the store's pull batch ([jetstore.WithPullBatch]).
	PullBatch int `json:"pull_batch"`
	// PeakHeapBytes is the highest live heap (as marked by each GC)
	// sampled during the rebuild, minus the live heap before it (after a
	// GC): what the rebuild itself holds on the Go heap.
	PeakHeapBytes uint64 `json:"peak_heap_bytes"`
	// PeakHeapInuseBytes is the highest heap in use (live objects and
	// garbage not yet collected, as HeapInuse) minus that before the
	// rebuild: it moves with the garbage collector's pacing.
	PeakHeapInuseBytes uint64 `json:"peak_heap_inuse_bytes"`
	// PeakRSSBytes is the process's peak resident set during the rebuild
	// (Linux: VmHWM after resetting it; 0 where unknown). It includes what
	// lives outside the Go heap, such as SQLite's page cache.
	PeakRSSBytes uint64 `json:"peak_rss_bytes,omitempty"`
	// HeapRatio is PeakHeapBytes relative to the smaller run's (memory
	// scenarios only; target 1.2: memory does not grow with the stream).
	HeapRatio float64 `json:"heap_ratio,omitempty"`
	// RSSRatio is PeakRSSBytes relative to the smaller run's.
	RSSRatio float64 `json:"rss_ratio,omitempty"`
	// MemoryPass tells whether HeapRatio is within 1.2.
	MemoryPass *bool `json:"memory_pass,omitempty"`
	// JetsourceCPU and RawCPU are the CPU time of the bench process per
	// event on each side, in microseconds (Unix; 0 elsewhere). With the
	// server in a child process this is the client's cost alone, which a
	// busy machine disturbs less than the rates.
	JetsourceCPU float64 `json:"jetsource_cpu_us_per_event,omitempty"`
	RawCPU       float64 `json:"raw_cpu_us_per_event,omitempty"`
	// JetsourceServerCPU and RawServerCPU are the server process's CPU
	// time per event on each side (child server on Linux only).
	JetsourceServerCPU float64 `json:"jetsource_server_cpu_us_per_event,omitempty"`
	RawServerCPU       float64 `json:"raw_server_cpu_us_per_event,omitempty"`
}

// rebuildMemoryTarget is the largest allowed HeapRatio.
const rebuildMemoryTarget = 1.2

// memorySmallRounds is how many times the 100k memory scenario rebuilds.
// A peak is the highest of the samples, and the live heap moves with how
// full the read-ahead buffers are at each collection; a single rebuild of
// 100k events sees a tenth of the collections of one of 1M and would
// understate its peak. Ten rebuilds of 100k sample as many collections as
// one of 1M, so the two peaks compare like with like.
const memorySmallRounds = 10

// rebuildBenchOptions are the settings of bench rebuild.
type rebuildBenchOptions struct {
	server    string // "child" or "in-process"
	pullBatch int    // the store's pull batch
	size      int    // bytes of data per event
}

func (m *Main) newBenchRebuildCmd(g *globals) *cobra.Command {
	var asJSON, memory bool
	var events, rounds int
	o := rebuildBenchOptions{}
	cmd := &cobra.Command{
		Use:   "rebuild [--json] [--events N] [--memory] [--server child|in-process]",
		Short: "Projection rebuild against a raw ordered consumer",
		Long: `bench rebuild appends N events (on 1000 aggregates, in transactions of 1000, to
a server that syncs every second) and then, in alternating rounds, reads
them all:

  raw        a raw nats.go ordered consumer on the stream (Messages with
             nats.go's default pull options), touching each message's
             data and metadata;
  jetsource  projections.Rebuild of an SQLite projection: the store's read
             (CloudEvents decoding), batches of 2000 events per SQL
             transaction, each event an upsert of its aggregate's row
             (count and sum), the checkpoint written in the same
             transaction, and the final swap of the tables. The store
             pulls --pull-batch events at a time (jetstore.WithPullBatch).

The counting projection is deliberately trivial, so the figure shows the
cost of the projection machinery (feed, batching, transactions,
checkpoints) rather than of a particular read model. Target: ratio >= 0.8.
Besides the rates, each line gives the CPU time per event of the bench
process (the client; with an in-process server, the server too) and of a
child server process on each side: a machine busy with other work
disturbs them less than the rates.

Where the server runs (--server):

  child       (default) the server is this same program run as
              "jetsource serve" in a child process, on a temporary
              directory and a free port. The bench process holds only the
              client side, so its memory figures are the client's alone,
              and the server's CPU is not in a --cpuprofile.
  in-process  the embedded server runs inside the bench process, as in
              the other benches; its heap then counts in the figures.

With --memory it also rebuilds 100,000 and 1,000,000 events and reports
the client's peak memory during each rebuild, sampled every 10ms through
runtime/metrics (which does not stop the world), each above its value
after a GC just before the rebuild:

  peak_heap_bytes        the live heap as marked by each garbage
                         collection: what the rebuild holds;
  peak_heap_inuse_bytes  the heap in use, garbage not yet collected
                         included (HeapInuse): it also moves with the
                         collector's pacing, so its peak is noisier;
  peak_rss_bytes         the process's peak resident set during the
                         rebuild (Linux: VmHWM after resetting it through
                         /proc/self/clear_refs), which also covers memory
                         outside the Go heap such as SQLite's page cache.

The rebuild streams, so the 1M figure must stay within 1.2x of the 100k
one (heap_ratio of peak_heap_bytes, memory_pass; rss_ratio for the
resident set). A peak is the highest of many samples, and the live heap
moves with how full the read-ahead buffers are at each collection; so
that both peaks come from as many samples, the 100k scenario rebuilds ten
times (its peak is the highest of the ten) against one rebuild of 1M.
Measure memory with the server in a child process (the default): an
in-process server's heap grows with the stream.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if events <= 0 || rounds <= 0 || o.size < 0 || o.pullBatch <= 0 {
				return usagef("--events, --rounds and --pull-batch must be positive, --size not negative")
			}
			if o.server != "child" && o.server != "in-process" {
				return usagef("--server must be child or in-process, not %q", o.server)
			}
			if asJSON {
				g.output = "json"
			}
			ctx := cmd.Context()
			var results []rebuildBenchResult
			r, err := benchRebuild(ctx, o, "rebuild-sqlite", events, rounds)
			if err != nil {
				return err
			}
			results = append(results, r)
			if memory {
				small, err := benchRebuild(ctx, o, "rebuild-memory-100k", 100_000, memorySmallRounds)
				if err != nil {
					return err
				}
				big, err := benchRebuild(ctx, o, "rebuild-memory-1m", 1_000_000, 1)
				if err != nil {
					return err
				}
				big.HeapRatio = float64(big.PeakHeapBytes) / float64(max(small.PeakHeapBytes, 1))
				small.HeapRatio = 1
				if small.PeakRSSBytes > 0 && big.PeakRSSBytes > 0 {
					big.RSSRatio = float64(big.PeakRSSBytes) / float64(small.PeakRSSBytes)
					small.RSSRatio = 1
				}
				pass := big.HeapRatio <= rebuildMemoryTarget
				small.MemoryPass, big.MemoryPass = &pass, &pass
				results = append(results, small, big)
			}
			m.printRebuildResults(g, results)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON line per scenario (same as --output json)")
	f.IntVar(&events, "events", 100_000, "events in the stream")
	f.IntVar(&rounds, "rounds", 3, "rounds per side (alternating raw and jetsource)")
	f.IntVar(&o.size, "size", 128, "bytes of JSON data per event")
	f.IntVar(&o.pullBatch, "pull-batch", 1000, "events the store pulls from the server at a time (jetstore.WithPullBatch)")
	f.BoolVar(&memory, "memory", false, "also measure the peak memory of rebuilds of 100k and 1M events")
	f.StringVar(&o.server, "server", "child", "where the server runs: child (a jetsource serve process) or in-process")
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
	fmt.Fprintln(tw, "SCENARIO\tEVENTS\tJETSOURCE/S\tRAW/S\tRATIO\tTARGET\tPASS\tCPU µs/EVENT (JS/RAW)\tPEAK HEAP\tHEAP RATIO\tPEAK RSS")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.3f\t%.2f\t%v\t%.2f/%.2f\t%.1f MB\t%.2f\t%.1f MB\n", r.Scenario, r.Events, r.JetsourcePerSec, r.RawPerSec, r.Ratio, r.Target, r.Pass,
			r.JetsourceCPU, r.RawCPU, float64(r.PeakHeapBytes)/1e6, r.HeapRatio, float64(r.PeakRSSBytes)/1e6)
	}
	tw.Flush()
}

func benchRebuild(ctx context.Context, o rebuildBenchOptions, name string, events, rounds int) (rebuildBenchResult, error) {
	env, err := newRebuildEnv(ctx, o.server, o.pullBatch)
	if err != nil {
		return rebuildBenchResult{}, err
	}
	defer env.Close()
	data := benchData(o.size)
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
	var rawDur, jsDur, rawCPU, jsCPU, rawSrv, jsSrv time.Duration
	var peak memoryPeaks
	for range rounds {
		start, cpu, srv := time.Now(), processCPU(), env.serverCPU()
		if err := rawRead(ctx, env.js, events); err != nil {
			return rebuildBenchResult{}, fmt.Errorf("raw: %w", err)
		}
		rawDur += time.Since(start)
		rawCPU += processCPU() - cpu
		rawSrv += env.serverCPU() - srv

		stop := sampleMemory()
		start, cpu, srv = time.Now(), processCPU(), env.serverCPU()
		pr, err := projections.Rebuild(ctx, env.store, p)
		jsDur += time.Since(start)
		jsCPU += processCPU() - cpu
		jsSrv += env.serverCPU() - srv
		pk := stop()
		peak.live, peak.inuse, peak.rss = max(peak.live, pk.live), max(peak.inuse, pk.inuse), max(peak.rss, pk.rss)
		if err != nil {
			return rebuildBenchResult{}, fmt.Errorf("rebuild: %w", err)
		}
		if pr.Applied != uint64(events) {
			return rebuildBenchResult{}, fmt.Errorf("rebuild applied %d of %d events", pr.Applied, events)
		}
	}
	total := float64(events * rounds)
	r := rebuildBenchResult{benchResult: newResult(name, total/jsDur.Seconds(), total/rawDur.Seconds(), 0.8, events, 1, time.Second),
		ReadModel: "sqlite", Server: o.server, PullBatch: o.pullBatch, PeakHeapBytes: peak.live, PeakHeapInuseBytes: peak.inuse, PeakRSSBytes: peak.rss}
	if rawCPU > 0 && jsCPU > 0 {
		r.RawCPU = float64(rawCPU.Nanoseconds()) / 1e3 / total
		r.JetsourceCPU = float64(jsCPU.Nanoseconds()) / 1e3 / total
	}
	if rawSrv > 0 && jsSrv > 0 {
		r.RawServerCPU = float64(rawSrv.Nanoseconds()) / 1e3 / total
		r.JetsourceServerCPU = float64(jsSrv.Nanoseconds()) / 1e3 / total
	}
	return r, nil
}

// rebuildEnv is the server of a rebuild scenario, with the stream BENCH on
// bench.> (fsync every second), and the bench's connection to it.
type rebuildEnv struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	store *jetstore.Store
	dir   string // temporary files of the scenario (the read model)

	inProcess *benchEnv
	child     *exec.Cmd
	exited    chan error // the child's Wait
}

func newRebuildEnv(ctx context.Context, server string, pullBatch int) (*rebuildEnv, error) {
	if server == "in-process" {
		be, err := newBenchEnv(ctx, time.Second)
		if err != nil {
			return nil, err
		}
		env := &rebuildEnv{nc: be.nc, js: be.js, dir: be.dir, inProcess: be}
		if env.store, err = jetstore.New(ctx, be.js, "BENCH", jetstore.WithTimeout(30*time.Second), jetstore.WithPullBatch(pullBatch)); err != nil {
			be.Close()
			return nil, err
		}
		return env, nil
	}
	dir, err := os.MkdirTemp("", "jetsource-bench-")
	if err != nil {
		return nil, err
	}
	env := &rebuildEnv{dir: dir}
	url, err := env.startChild(ctx)
	if err != nil {
		env.Close()
		return nil, fmt.Errorf("bench server process: %w", err)
	}
	if env.nc, err = nats.Connect(url, nats.Name("jetsource-bench")); err != nil {
		env.Close()
		return nil, err
	}
	if env.js, err = jetstream.New(env.nc, jetstream.WithPublishAsyncMaxPending(4000)); err != nil {
		env.Close()
		return nil, err
	}
	if env.store, err = jetstore.New(ctx, env.js, "BENCH", jetstore.WithTimeout(30*time.Second), jetstore.WithPullBatch(pullBatch)); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

// startChild runs this program as "jetsource serve" with a configuration
// for the bench and returns the client URL the server logs once ready.
func (env *rebuildEnv) startChild(ctx context.Context) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	cfg := "server:\n  listen: 127.0.0.1:0\n  data: " + strconv.Quote(filepath.Join(env.dir, "server")) + "\n  sync: 1s\n" +
		"stream:\n  name: BENCH\n  subjects: [\"bench.>\"]\nlog:\n  level: info\n  format: json\n"
	cfgPath := filepath.Join(env.dir, "serve.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", err
	}
	cmd := exec.Command(exe, "serve", "--config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	env.child, env.exited = cmd, make(chan error, 1)
	urls := make(chan string, 1)
	var logTail tailBuffer
	go func() {
		// Read the log to the end, so that the child never blocks on it.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Bytes()
			logTail.add(line)
			var rec struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "jetsource serving" && rec.URL != "" {
				select {
				case urls <- rec.URL:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		env.exited <- cmd.Wait()
		close(env.exited)
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case url := <-urls:
		return url, nil
	case err := <-env.exited:
		return "", fmt.Errorf("%s serve exited (%v) before serving: %s", exe, err, logTail.String())
	case <-t.C:
		return "", fmt.Errorf("%s serve did not start within 30s: %s", exe, logTail.String())
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Close disconnects, stops the server and removes the temporary files.
func (env *rebuildEnv) Close() {
	if env.inProcess != nil {
		env.inProcess.Close()
		return
	}
	if env.nc != nil {
		env.nc.Close()
	}
	if env.child != nil {
		if runtime.GOOS == "windows" {
			_ = env.child.Process.Kill() // no SIGTERM there
		} else {
			_ = env.child.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-env.exited:
		case <-time.After(30 * time.Second):
			_ = env.child.Process.Kill()
			<-env.exited
		}
	}
	os.RemoveAll(env.dir)
}

// tailBuffer keeps the last lines of a child's log for error messages.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *tailBuffer) add(line []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, string(line))
	if len(b.lines) > 10 {
		b.lines = b.lines[1:]
	}
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.lines) == 0 {
		return "no output"
	}
	return strings.Join(b.lines, "\n")
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

// memoryPeaks are the peaks of a rebuild's memory, above what the process
// held before it.
type memoryPeaks struct {
	live  uint64 // the live heap as of each GC's mark
	inuse uint64 // heap spans in use, garbage not yet collected included
	rss   uint64 // the process's peak resident set (0: unknown)
}

// sampleMemory samples the heap every 10ms (runtime/metrics, which does
// not stop the world) until the returned function is called, which
// returns the peaks above the heap at the start (after a GC) and the peak
// resident set meanwhile.
func sampleMemory() func() memoryPeaks {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	read := func() (live, inuse uint64) {
		metrics.Read(samples)
		for _, s := range samples {
			if s.Value.Kind() != metrics.KindUint64 {
				return 0, 0
			}
		}
		return samples[0].Value.Uint64(), samples[1].Value.Uint64() + samples[2].Value.Uint64()
	}
	runtime.GC()
	resetPeakRSS()
	baseLive, baseInuse := read()
	var peak memoryPeaks
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				live, inuse := read()
				mu.Lock()
				if live > baseLive {
					peak.live = max(peak.live, live-baseLive)
				}
				if inuse > baseInuse {
					peak.inuse = max(peak.inuse, inuse-baseInuse)
				}
				mu.Unlock()
			}
		}
	})
	return func() memoryPeaks {
		close(done)
		wg.Wait()
		peak.rss = peakRSS()
		return peak
	}
}

// resetPeakRSS resets the kernel's record of the process's peak resident
// set (Linux 4.0 and later; elsewhere it does nothing).
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS returns the process's peak resident set since resetPeakRSS, or
// 0 where unknown.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		v, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(v))
		if len(f) != 2 || f[1] != "kB" {
			return 0
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return n * 1024
	}
	return 0
}

// serverCPU returns the CPU time the child server used so far (0: in
// process, or unknown).
func (env *rebuildEnv) serverCPU() time.Duration {
	if env.child == nil {
		return 0
	}
	return statCPU("/proc/" + strconv.Itoa(env.child.Process.Pid) + "/stat")
}

// processCPU returns the CPU time (user and system) the process used so
// far, or 0 where the system does not tell.
func processCPU() time.Duration { return statCPU("/proc/self/stat") }

// statCPU reads a process's CPU time from its /proc stat file (Linux, in
// ticks of 10ms), or returns 0.
func statCPU(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick
}
