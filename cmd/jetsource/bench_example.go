package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/handlers/example"
	"github.com/jetsource/jetsource/jetstore"
)

// exampleBenchResult is the line of "jetsource bench example --json": a
// load of concurrent command clients on the example domain.
type exampleBenchResult struct {
	Scenario string `json:"scenario"`
	Clients  int    `json:"clients"`
	// DurationS is how long clients sent new commands; ElapsedS until the
	// last answer (or timeout) came.
	DurationS float64 `json:"duration_s"`
	ElapsedS  float64 `json:"elapsed_s"`
	TimeoutS  float64 `json:"timeout_s"`
	Fsync     string  `json:"fsync"`
	// WorkerConcurrency is how many commands the worker executes at once.
	WorkerConcurrency int `json:"worker_concurrency"`
	// Rules tells whether the configuration's projections and handlers
	// ran beside the command worker (--config).
	Rules bool `json:"rules"`
	exampleCounts
	// CommandsPerSec is the rate of answered commands over the run.
	CommandsPerSec float64 `json:"commands_per_sec"`
	// Expired counts commands the worker did not start because their
	// sender's deadline had passed.
	Expired uint64 `json:"expired"`
	// EventsStored is how many events the stream holds after the run
	// (guard messages not counted); EventsAccepted how many the accepted
	// answers name. Without rules (which send commands of their own)
	// they are equal: no command stored events its sender did not learn
	// of.
	EventsStored   uint64 `json:"events_stored"`
	EventsAccepted uint64 `json:"events_accepted"`
	// ByCommand has the counts of each command; AddUserToGroup is the one
	// whose boundary has two filters (the user and the membership).
	ByCommand []exampleCounts `json:"by_command"`
	// Windows split the run in thirds by the time commands were sent:
	// latencies that grow from one to the next grow with the stream.
	Windows []exampleWindow `json:"windows"`
	// FirstError is the first error or timeout met, if any.
	FirstError string `json:"first_error,omitempty"`
	// Pass: no timeouts and no errors.
	Pass bool `json:"pass"`
}

// exampleCounts are the outcomes of the commands of one name (or of all).
type exampleCounts struct {
	Command  string `json:"command,omitempty"`
	Sent     int    `json:"sent"`
	Accepted int    `json:"accepted"`
	Rejected int    `json:"rejected"`
	// Conflicts are commands whose every attempt lost the race.
	Conflicts int `json:"conflicts"`
	// Errors are answers with status error and failed sends other than
	// timeouts.
	Errors int `json:"errors"`
	// Timeouts are commands without an answer within the client timeout.
	Timeouts int `json:"timeouts"`
	// Retries are the repeated decisions after conflicts, summed.
	Retries int `json:"retries"`
	// Latency of answered commands (send to answer), in milliseconds.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`

	lat []time.Duration
}

func (c *exampleCounts) add(o *exampleCounts) {
	c.Sent += o.Sent
	c.Accepted += o.Accepted
	c.Rejected += o.Rejected
	c.Conflicts += o.Conflicts
	c.Errors += o.Errors
	c.Timeouts += o.Timeouts
	c.Retries += o.Retries
	c.lat = append(c.lat, o.lat...)
}

func (c *exampleCounts) summarize() {
	c.P50Ms, c.P99Ms = percentileMs(c.lat, 0.50), percentileMs(c.lat, 0.99)
	if len(c.lat) > 0 {
		c.MaxMs = float64(slices.Max(c.lat).Microseconds()) / 1000
	}
}

// exampleWindow has the latencies of the commands sent in one part of
// the run, from FromS to ToS seconds after its start.
type exampleWindow struct {
	FromS    float64 `json:"from_s"`
	ToS      float64 `json:"to_s"`
	Commands int     `json:"commands"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	Timeouts int     `json:"timeouts"`
}

// exampleSample is one command: when it was sent, after the start, and
// how long its answer took (0: it timed out).
type exampleSample struct{ at, lat time.Duration }

// exampleWindows splits the samples in n windows of the duration d.
func exampleWindows(samples []exampleSample, d time.Duration, n int) []exampleWindow {
	ws := make([]exampleWindow, n)
	lats := make([][]time.Duration, n)
	for i := range ws {
		ws[i].FromS, ws[i].ToS = (d * time.Duration(i) / time.Duration(n)).Seconds(), (d * time.Duration(i+1) / time.Duration(n)).Seconds()
	}
	for _, s := range samples {
		i := min(int(s.at*time.Duration(n)/d), n-1)
		ws[i].Commands++
		if s.lat == 0 {
			ws[i].Timeouts++
			continue
		}
		lats[i] = append(lats[i], s.lat)
	}
	for i := range ws {
		ws[i].P50Ms, ws[i].P99Ms = percentileMs(lats[i], 0.50), percentileMs(lats[i], 0.99)
	}
	return ws
}

// exampleCommands are the commands the clients send, in report order.
var exampleCommands = []string{"InsertUser", "AddUserToGroup", "RemoveUserFromGroup", "SetAPIKey"}

type benchExampleFlags struct {
	clients     int
	duration    time.Duration
	timeout     time.Duration
	concurrency int
	companies   int
	groups      int
	config      string
	asJSON      bool
}

func (m *Main) newBenchExampleCmd(g *globals) *cobra.Command {
	var bf benchExampleFlags
	cmd := &cobra.Command{
		Use:   "example [--clients 200] [--duration 3m] [--timeout 15s] [--json]",
		Short: "Concurrent command clients on the example domain",
		Long: `bench example starts its own embedded server (fsync every write) with the
default stream, serves the example domain's commands as "jetsource serve"
does (commands.sets: [example], their models loaded from snapshots), and
lets --clients concurrent clients send commands over the command bus for
--duration, each waiting for its answer at most --timeout:

  InsertUser           20%  a new user (1 in 50 asks for a taken username)
  AddUserToGroup       40%  a known user to one of the company's groups;
                            its boundary has two filters (user, membership)
  RemoveUserFromGroup  20%  a membership added before
  SetAPIKey            20%  a new key for a known user

Users, groups and memberships are shared by all clients (--companies,
--groups), so commands meet each other on the same users. It reports
commands/s, p50, p99 and max latency, and the accepted, rejected,
conflict, error and timeout counts, overall and per command, and the
events stored against the events the accepted answers name. The run
passes with no timeout and no error.

With --config FILE the command worker, the projections and the handlers
are those of a configuration (as "jetsource serve --config FILE" runs
them, on the bench's own server), e.g. testdata/example/config.yaml; its
commands.sets must include example.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bf.clients <= 0 || bf.duration <= 0 || bf.timeout <= 0 || bf.companies <= 0 || bf.groups <= 0 || bf.concurrency < 0 {
				return usagef("--clients, --duration, --timeout, --companies and --groups must be positive, --concurrency not negative")
			}
			if bf.asJSON {
				g.output = "json"
			}
			cfg := DefaultConfig()
			cfg.Commands.Sets = []string{"example"}
			if bf.config != "" {
				var err error
				if cfg, err = LoadConfig(bf.config); err != nil {
					return usageError{err}
				}
				if !slices.Contains(cfg.Commands.Sets, "example") {
					return usagef("--config %s: commands.sets must include example", bf.config)
				}
			}
			if bf.concurrency > 0 {
				cfg.Commands.Concurrency = bf.concurrency
			}
			r, err := benchExample(cmd.Context(), cfg, bf, m.logger("warn", "text"))
			if err != nil {
				return err
			}
			m.printExampleResult(g, r)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&bf.asJSON, "json", false, "print one JSON line (same as --output json)")
	f.IntVar(&bf.clients, "clients", 200, "concurrent clients, each sending one command at a time")
	f.DurationVar(&bf.duration, "duration", 3*time.Minute, "how long clients send new commands")
	f.DurationVar(&bf.timeout, "timeout", 15*time.Second, "how long a client waits for the answer to a command")
	f.IntVar(&bf.concurrency, "concurrency", 0, "commands the worker executes at once (0: the configuration's, default 64)")
	f.IntVar(&bf.companies, "companies", 4, "companies the users belong to")
	f.IntVar(&bf.groups, "groups", 8, "groups per company")
	f.StringVar(&bf.config, "config", "", "run the command worker, projections and handlers of this configuration")
	return cmd
}

// benchExample runs the load on a server of its own and returns its
// result.
func benchExample(ctx context.Context, cfg Config, bf benchExampleFlags, log *slog.Logger) (exampleBenchResult, error) {
	r := exampleBenchResult{Scenario: "example", Clients: bf.clients, DurationS: bf.duration.Seconds(), TimeoutS: bf.timeout.Seconds(), Fsync: fsyncName(0)}
	w, err := cfg.wire()
	if err != nil {
		return r, err
	}
	dir, err := os.MkdirTemp("", "jetsource-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(ctx, embedded.WithListen("127.0.0.1:0"), embedded.WithDataDir(dir))
	if err != nil {
		return r, err
	}
	defer srv.Shutdown()
	nc, err := srv.Connect(nats.Name("jetsource-bench-worker"))
	if err != nil {
		return r, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return r, err
	}
	scfg := cfg.streamConfig()
	if _, err := jetstore.Provision(ctx, js, scfg); err != nil {
		return r, err
	}
	parts := workerParts{commands: true, projections: bf.config != "", handlers: bf.config != ""}
	r.Rules = parts.handlers && len(w.rules) > 0 || parts.projections && len(cfg.Projections) > 0
	work, err := startWorkers(ctx, nc, js, cfg, w, parts, log)
	if err != nil {
		return r, err
	}
	defer work.Close()
	r.WorkerConcurrency = cfg.Commands.Concurrency
	if r.WorkerConcurrency == 0 {
		r.WorkerConcurrency = 64
	}

	cnc, err := srv.Connect(nats.Name("jetsource-bench-clients"))
	if err != nil {
		return r, err
	}
	defer cnc.Close()
	client, err := handlers.NewClient(cnc, handlers.WithPrefix(cfg.Commands.prefix()), handlers.WithRequestTimeout(bf.timeout))
	if err != nil {
		return r, err
	}
	load := newExampleLoad(bf.companies, bf.groups)
	per := make([]map[string]*exampleCounts, bf.clients)
	samples := make([][]exampleSample, bf.clients)
	var firstErr error
	var errOnce sync.Once
	var accepted atomic.Uint64 // events named by accepted answers
	runCtx, stop := context.WithTimeout(ctx, bf.duration)
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range bf.clients {
		counts := map[string]*exampleCounts{}
		for _, name := range exampleCommands {
			counts[name] = &exampleCounts{Command: name}
		}
		per[c] = counts
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			for n := 0; runCtx.Err() == nil; n++ {
				op := load.next(rng, c, n)
				cnt := counts[op.name]
				cnt.Sent++
				// The command's own deadline, not the run's: a command
				// sent before the end is waited for.
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bf.timeout)
				t := time.Now()
				res, err := client.Send(sctx, op.name, op.payload)
				d := time.Since(t)
				cancel()
				switch {
				case err != nil && ctx.Err() != nil:
					return // interrupted
				case err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
					samples[c] = append(samples[c], exampleSample{at: t.Sub(start)})
					cnt.Timeouts++
					errOnce.Do(func() { firstErr = err })
					continue
				case err != nil:
					cnt.Errors++
					errOnce.Do(func() { firstErr = err })
					continue
				}
				cnt.lat = append(cnt.lat, d)
				samples[c] = append(samples[c], exampleSample{at: t.Sub(start), lat: max(d, 1)})
				cnt.Retries += max(res.Attempts-1, 0)
				switch res.Status {
				case handlers.StatusAccepted:
					cnt.Accepted++
					if !res.Duplicate {
						accepted.Add(uint64(len(res.Sequences)))
					}
					load.done(op)
				case handlers.StatusRejected:
					cnt.Rejected++
				case handlers.StatusConflict:
					cnt.Conflicts++
				default:
					cnt.Errors++
					errOnce.Do(func() { firstErr = res.Err() })
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return r, err
	}
	r.ElapsedS = elapsed.Seconds()
	if work.commands != nil {
		r.Expired = work.commands.Expired()
	}
	// Stop the workers before counting: no command still runs.
	work.Close()

	byName := map[string]*exampleCounts{}
	for _, name := range exampleCommands {
		byName[name] = &exampleCounts{Command: name}
	}
	for _, counts := range per {
		for name, c := range counts {
			byName[name].add(c)
		}
	}
	for _, name := range exampleCommands {
		c := byName[name]
		r.exampleCounts.add(c)
		c.summarize()
		r.ByCommand = append(r.ByCommand, *c)
	}
	r.exampleCounts.summarize()
	r.Windows = exampleWindows(slices.Concat(samples...), bf.duration, 3)
	r.CommandsPerSec = float64(len(r.lat)) / elapsed.Seconds()
	r.EventsAccepted = accepted.Load()
	if r.EventsStored, err = storedEvents(ctx, js, scfg.Name); err != nil {
		return r, err
	}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	r.Pass = r.Timeouts == 0 && r.Errors == 0
	return r, nil
}

// storedEvents returns how many messages the stream holds, guard messages
// not counted.
func storedEvents(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	guard := jetsource.GuardSubject(stream)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(guard))
	if err != nil {
		return 0, err
	}
	return info.State.Msgs - info.State.Subjects[guard], nil
}

// exampleOp is one command a client sends.
type exampleOp struct {
	name    string
	payload any
	pair    membership // the membership added or removed, the user inserted
	// username is the username of the user inserted.
	username string
}

type membership struct{ company, group, user string }

// exampleLoad is what the clients know of the example domain they write:
// the users inserted and the memberships added, shared by all clients.
type exampleLoad struct {
	companies, groups int

	mu        sync.Mutex
	users     [][]exampleUser // per company
	members   []membership
	memberIdx map[membership]int
}

type exampleUser struct{ id, username string }

func newExampleLoad(companies, groups int) *exampleLoad {
	return &exampleLoad{companies: companies, groups: groups, users: make([][]exampleUser, companies), memberIdx: map[membership]int{}}
}

// next picks client c's n-th command.
func (l *exampleLoad) next(rng *rand.Rand, c, n int) exampleOp {
	co := rng.IntN(l.companies)
	company := "co" + strconv.Itoa(co)
	l.mu.Lock()
	defer l.mu.Unlock()
	users := l.users[co]
	p := rng.Float64()
	switch {
	case len(users) < 4 || p < 0.2:
		id := fmt.Sprintf("u%d-%d", c, n)
		username := "name-" + id
		if len(users) > 0 && rng.IntN(50) == 0 {
			username = users[rng.IntN(len(users))].username // taken: rejected
		}
		return exampleOp{name: "InsertUser", payload: example.InsertUser{Company: company, ID: id, Name: "User " + id, Username: username},
			pair: membership{company: company, user: id}, username: username}
	case p < 0.6 || (p < 0.8 && len(l.members) == 0):
		u := users[rng.IntN(len(users))]
		m := membership{company: company, group: "g" + strconv.Itoa(rng.IntN(l.groups)), user: u.id}
		return exampleOp{name: "AddUserToGroup", payload: example.Membership{Company: m.company, Group: m.group, User: m.user}, pair: m}
	case p < 0.8:
		// Taken out now, so that no other client removes it too.
		m := l.members[rng.IntN(len(l.members))]
		l.removeMember(m)
		return exampleOp{name: "RemoveUserFromGroup", payload: example.Membership{Company: m.company, Group: m.group, User: m.user}, pair: m}
	default:
		u := users[rng.IntN(len(users))]
		return exampleOp{name: "SetAPIKey", payload: example.SetAPIKey{Company: company, ID: u.id, Key: strconv.FormatUint(rng.Uint64(), 16)}}
	}
}

// done records what an accepted command changed.
func (l *exampleLoad) done(op exampleOp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch op.name {
	case "InsertUser":
		co, _ := strconv.Atoi(op.pair.company[len("co"):])
		l.users[co] = append(l.users[co], exampleUser{id: op.pair.user, username: op.username})
	case "AddUserToGroup":
		if _, ok := l.memberIdx[op.pair]; !ok {
			l.memberIdx[op.pair] = len(l.members)
			l.members = append(l.members, op.pair)
		}
	}
}

func (l *exampleLoad) removeMember(m membership) {
	i, ok := l.memberIdx[m]
	if !ok {
		return
	}
	last := l.members[len(l.members)-1]
	l.members[i] = last
	l.memberIdx[last] = i
	l.members = l.members[:len(l.members)-1]
	delete(l.memberIdx, m)
}

func (m *Main) printExampleResult(g *globals, r exampleBenchResult) {
	if g.output == "json" {
		m.writeJSON(r)
		return
	}
	fmt.Fprintf(m.Stdout, "example: %d clients for %v (answers within %.1fs), timeout %v, fsync %s, worker concurrency %d, rules %v\n",
		r.Clients, time.Duration(r.DurationS*float64(time.Second)), r.ElapsedS, time.Duration(r.TimeoutS*float64(time.Second)), r.Fsync, r.WorkerConcurrency, r.Rules)
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMMAND\tSENT\tACCEPTED\tREJECTED\tCONFLICTS\tERRORS\tTIMEOUTS\tRETRIES\tP50 MS\tP99 MS\tMAX MS")
	row := func(c exampleCounts) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\n", c.Command, c.Sent, c.Accepted, c.Rejected, c.Conflicts, c.Errors, c.Timeouts, c.Retries, c.P50Ms, c.P99Ms, c.MaxMs)
	}
	for _, c := range r.ByCommand {
		row(c)
	}
	all := r.exampleCounts
	all.Command = "all"
	row(all)
	tw.Flush()
	for _, w := range r.Windows {
		fmt.Fprintf(m.Stdout, "sent %.0f-%.0fs: %d commands, p50 %.2f ms, p99 %.2f ms, %d timeouts\n", w.FromS, w.ToS, w.Commands, w.P50Ms, w.P99Ms, w.Timeouts)
	}
	fmt.Fprintf(m.Stdout, "commands/s %.1f, expired %d, events stored %d, events accepted %d, pass %v\n",
		r.CommandsPerSec, r.Expired, r.EventsStored, r.EventsAccepted, r.Pass)
	if r.FirstError != "" {
		fmt.Fprintf(m.Stderr, "example: first error: %s\n", r.FirstError)
	}
}
