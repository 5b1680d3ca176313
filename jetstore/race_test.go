package jetstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// Race tests: many writers decide on the same read and append under a
// condition at the same moment. Exactly one may win each round, and a
// winner's condition must really have held: no event of its boundary may
// be stored between the position it read and its own event, whoever wrote
// that event. The scenarios (raceCases) run on one server and on a
// three-node cluster, from TestSingleServer and TestCluster (env_test.go).

// raceWriters is the number of concurrent writers of a round.
const raceWriters = 10

// Rounds per scenario. A round takes a few milliseconds even on three
// nodes with the race detector, so the R3 scenarios need not run fewer
// rounds than the R1 ones (if they ever must, keep at least 20). With
// -short, [raceRounds] runs raceRoundsShort.
const (
	raceRoundsR1    = 50
	raceRoundsR3    = 50
	raceRoundsShort = 10
)

// raceRounds returns rounds, or raceRoundsShort with -short.
func raceRounds(rounds int) int {
	if testing.Short() {
		return min(rounds, raceRoundsShort)
	}
	return rounds
}

// raceAttempts bounds how often a round without any other writer is run
// again because every writer read a position older than the boundary's
// last event. A replica answers a read a moment behind the leader now and
// then, more often on a loaded machine, and a writer that decides on such
// a read rightly loses; when all of them do, the round has no winner and
// is run again with new reads. The bound is a number of attempts, not a
// time: each attempt is ten independent reads.
const raceAttempts = 20

// raceTimeout bounds each operation of a writer. It is far above what an
// append takes even on a loaded machine (see the slowest append in the
// log): the scenarios test who wins, not how fast.
const raceTimeout = 30 * time.Second

// foreignPerRound is how many events the foreign writer publishes in each
// round of a foreign-writer scenario.
const foreignPerRound = 2

// raceMode is the kind of condition the writers append under.
type raceMode int

const (
	// boundaryMode: each writer appends on a subject of its own that
	// matches the boundary <root>.*.seat, with ExpectNoneAfter(pos,
	// boundary). Even writers read pos as the last sequence of the
	// boundary, odd ones as the last sequence of the whole stream.
	boundaryMode raceMode = iota
	// aggregateMode: every writer appends an event of its own name to the
	// one aggregate <root>.A, with ExpectSequence(pos) where pos is the
	// aggregate's last sequence.
	aggregateMode
)

type raceCase struct {
	name     string
	replicas int
	rounds   int
	mode     raceMode
	// foreign adds a writer that publishes events matching the boundary
	// with plain core NATS publishes, without any expectation, during the
	// rounds, each after a read like the writers' (but the first of even
	// rounds, which goes at once), so that they land both before the
	// writers' appends and among them.
	foreign bool
	// foreignAppend makes the foreign writer use Store.Append without a
	// condition instead of a plain publish: to the server it is the same.
	foreignAppend bool
	// strict opens the writers' stores in strict mode (jetstore.WithStrict).
	strict bool
	// knownGap marks a case where violations (a winner with a matching
	// event stored between its read position and itself) are a known
	// limitation: they are counted and reported, and the test is skipped
	// when there are any. Otherwise every violation fails the test.
	knownGap bool
}

// win is one successful conditioned append.
type win struct {
	round, writer int
	pos           uint64 // the position the writer read
	seq           uint64 // where its event was stored
}

// raceEnv is where the cases of a test run: one server or a cluster.
type raceEnv struct {
	nodes []*embedded.Server
}

// conn connects to node i (modulo the number of nodes), so that writers
// spread over the nodes of a cluster.
func (e *raceEnv) conn(tb testing.TB, i int) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	return newJetStream(tb, e.nodes[i%len(e.nodes)])
}

// raceCases are the scenarios, run on one server and on a cluster.
func raceCases(replicas, rounds int) []raceCase {
	// Without strict mode, a replicated stream guards a wildcard
	// expectation in flight only by the literal filter string; a matching
	// write sent without that filter (a plain publish, an append without
	// a condition) can be in flight, unseen, when a conditioned append is
	// accepted. A single-replica stream checks under the stream lock.
	gap := replicas > 1
	return []raceCase{
		// Every writer sends the same canonical filter string, which the
		// server guards in flight: this holds on R3 too.
		{name: "ExpectNoneAfter", replicas: replicas, rounds: rounds, mode: boundaryMode},
		{name: "ExpectSequence", replicas: replicas, rounds: rounds, mode: aggregateMode},
		{name: "ForeignWriter/ExpectNoneAfter", replicas: replicas, rounds: rounds, mode: boundaryMode, foreign: true, knownGap: gap},
		{name: "ForeignWriter/ExpectSequence", replicas: replicas, rounds: rounds, mode: aggregateMode, foreign: true, knownGap: gap},
		// The same through the store: an append without ExpectSequence to
		// the aggregate is just as unguarded as a foreign publish.
		{name: "ForeignWriter/ExpectSequenceUnconditionedAppend", replicas: replicas, rounds: rounds, mode: aggregateMode, foreign: true, foreignAppend: true, knownGap: gap},
		// Strict mode closes the gap: no violation, whatever the replicas.
		{name: "Strict/ExpectNoneAfter", replicas: replicas, rounds: rounds, mode: boundaryMode, strict: true},
		{name: "Strict/ForeignWriter/ExpectNoneAfter", replicas: replicas, rounds: rounds, mode: boundaryMode, foreign: true, strict: true},
		{name: "Strict/ForeignWriter/ExpectSequence", replicas: replicas, rounds: rounds, mode: aggregateMode, foreign: true, strict: true},
		{name: "Strict/ForeignWriter/ExpectSequenceUnconditionedAppend", replicas: replicas, rounds: rounds, mode: aggregateMode, foreign: true, foreignAppend: true, strict: true},
	}
}

func runRaceCases(t *testing.T, env *raceEnv, cases []raceCase) {
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runRace(t, env, c, fmt.Sprintf("race%d", i))
		})
	}
}

func runRace(t *testing.T, env *raceEnv, c raceCase, root string) {
	start := time.Now()
	// Operations run without a deadline of their own, so the store's
	// timeout (raceTimeout) bounds each.
	ctx := context.Background()

	cfg := jetstore.StreamConfig{Name: "RACE_" + root, Subjects: []string{root + ".>"}, Replicas: c.replicas}
	_, adminJS := env.conn(t, 0)
	// No retries here: the store itself waits out a cluster that is
	// placing replicas or electing a leader, within the deadline.
	setupCtx, cancelSetup := context.WithTimeout(ctx, 15*time.Second)
	defer cancelSetup()
	if _, err := jetstore.Provision(setupCtx, adminJS, cfg); err != nil {
		t.Fatalf("provision: %v", err)
	}

	var boundary subjects.Filter
	var writerSubject func(w int) subjects.Subject
	var foreignSubject subjects.Subject
	switch c.mode {
	case boundaryMode:
		boundary = subjects.MustParseFilter(root + ".*.seat")
		writerSubject = func(w int) subjects.Subject { return subjects.MustParse(fmt.Sprintf("%s.W%d.seat", root, w)) }
		foreignSubject = subjects.MustParse(root + ".F.seat")
	case aggregateMode:
		boundary = subjects.MustParseFilter(root + ".A.>")
		writerSubject = func(w int) subjects.Subject { return subjects.MustParse(fmt.Sprintf("%s.A.e%d", root, w)) }
		foreignSubject = subjects.MustParse(root + ".A.foreign")
	}

	// A connection and store per writer, spread over the nodes. Each
	// opens and reads at once, on nodes other than the one that created
	// the stream: before their direct-get responders are ready.
	opts := []jetstore.Option{jetstore.WithTimeout(raceTimeout)}
	if c.strict {
		opts = append(opts, jetstore.WithStrict())
	}
	stores := make([]*jetstore.Store, raceWriters)
	for w := range stores {
		_, js := env.conn(t, w)
		stores[w] = openRaceStore(t, setupCtx, js, cfg.Name, opts...)
	}
	var foreign *nats.Conn
	var foreignStore *jetstore.Store
	if c.foreign {
		var fjs jetstream.JetStream
		foreign, fjs = env.conn(t, raceWriters)
		foreignStore = openRaceStore(t, setupCtx, fjs, cfg.Name, jetstore.WithTimeout(raceTimeout))
	}
	t.Logf("setup in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()

	var (
		mu      sync.Mutex
		wins    []win
		perRnd  = make([]int, c.rounds)
		errSeen int
		// slowest is the longest append, slowestErr its result.
		slowest    time.Duration
		slowestErr error
	)
	// top is the last sequence on the boundary as the acknowledgements
	// tell it; without another writer, it is the last winner's.
	var top uint64
	// rerun counts the attempts run again because no writer won.
	rerun := 0
	for round := range c.rounds {
		for attempt := 1; ; attempt++ {
			errs := make([]error, raceWriters)
			positions := runRaceAttempt(t, ctx, c, round, stores, foreign, foreignStore, boundary, writerSubject, foreignSubject, func(w int, pos uint64, took time.Duration, ack jetsource.Ack, err error) {
				mu.Lock()
				defer mu.Unlock()
				errs[w] = err
				if took > slowest {
					slowest, slowestErr = took, err
				}
				switch {
				case err == nil && ack.Duplicate:
					t.Errorf("round %d writer %d: a fresh event acknowledged as duplicate: %+v", round, w, ack)
				case err == nil:
					wins = append(wins, win{round: round, writer: w, pos: pos, seq: ack.Sequence})
					perRnd[round]++
					top = max(top, ack.Sequence)
				case !errors.Is(err, jetsource.ErrConflict):
					if errSeen++; errSeen <= 5 {
						t.Errorf("round %d writer %d: append: %v, want success or ErrConflict", round, w, err)
					}
				}
			})
			if t.Failed() {
				t.FailNow()
			}
			if c.foreign || perRnd[round] > 0 {
				break
			}
			// Nobody else writes the boundary: a writer that read the
			// last event's position must have won, or lost to a winner.
			// So every writer read an older position (from a replica a
			// moment behind), and rightly lost.
			for w, pos := range positions {
				if pos >= top {
					t.Fatalf("round %d attempt %d: no winner, but writer %d read position %d, the boundary's last event (%d): its append must not have failed, got %v", round, attempt, w, pos, top, errs[w])
				}
			}
			if attempt == raceAttempts {
				t.Fatalf("round %d: no winner in %d attempts, each writer read a position before the boundary's last event (%d) every time", round, raceAttempts, top)
			}
			rerun++
		}
	}

	// Every event matching the boundary, as the server stored it; read
	// with plain JetStream, independent of the store under test.
	wantStored := 0
	if c.foreign {
		wantStored = c.rounds * foreignPerRound
	}
	wantStored += len(wins)
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	matching := storedSequences(t, actx, adminJS, cfg.Name, boundary.String(), wantStored)

	hist := map[int]int{}
	for round, n := range perRnd {
		hist[n]++
		switch {
		case n > 1:
			t.Errorf("round %d: %d winners, want at most one", round, n)
		case n == 0 && !c.foreign:
			t.Errorf("round %d: no winner in %d attempts, want exactly one (no one else writes the boundary)", round, raceAttempts)
		}
	}
	if !c.foreign && len(matching) != c.rounds {
		t.Errorf("%d events on the boundary after %d rounds, want one per round", len(matching), c.rounds)
	}
	if len(wins) == 0 {
		t.Errorf("no conditioned append won in %d rounds", c.rounds)
	}
	for _, w := range wins {
		if _, ok := slices.BinarySearch(matching, w.seq); !ok {
			t.Errorf("round %d writer %d: acknowledged sequence %d is not stored on the boundary", w.round, w.writer, w.seq)
		}
	}

	// The invariant: nothing matching between a winner's read position
	// and the winner.
	violations := 0
	for _, w := range wins {
		lo := sort.Search(len(matching), func(i int) bool { return matching[i] > w.pos })
		hi := sort.Search(len(matching), func(i int) bool { return matching[i] >= w.seq })
		if between := matching[lo:hi]; len(between) > 0 {
			violations++
			msg := fmt.Sprintf("round %d writer %d read position %d, appended at %d, but %v matching %s were stored in between",
				w.round, w.writer, w.pos, w.seq, between, boundary)
			if !c.knownGap {
				t.Error(msg)
			} else if violations <= 3 {
				t.Log(msg)
			}
		}
	}
	other := "none"
	switch {
	case c.foreignAppend:
		other = "unconditioned Store.Append"
	case c.foreign:
		other = "plain publish"
	}
	var st jetstore.Stats
	for _, w := range stores {
		ws := w.Stats()
		st.Conditioned += ws.Conditioned
		st.Retries += ws.Retries
		st.Conflicts += ws.Conflicts
		st.Busy += ws.Busy
	}
	t.Logf("%s on R%d (strict %v), %d writers, %d rounds (%d run again after every writer read behind), other writer: %s; winners per round (winners: rounds) %v; %d events on the boundary; %d violations in %d winning appends; %d conditioned appends, %d retries, %d conflicts, %d busy; slowest append %v (%v); rounds in %v",
		c.name, c.replicas, c.strict, raceWriters, c.rounds, rerun, other, hist, len(matching), violations, len(wins),
		st.Conditioned, st.Retries, st.Conflicts, st.Busy, slowest.Round(time.Millisecond), slowestErr, time.Since(start).Round(time.Millisecond))
	if violations == 0 && c.knownGap {
		t.Logf("no violation this time; the gap depends on timing")
	}
	if violations > 0 && c.knownGap {
		t.Skipf("known limitation on R%d without strict mode: %d of %d winning appends (%d rounds) had a matching event stored by an unconditioned writer between their read position and themselves",
			c.replicas, violations, len(wins), c.rounds)
	}
}

// raceResult receives the outcome of one writer's conditioned append:
// the position it read, how long the append took, and its result.
type raceResult func(w int, pos uint64, took time.Duration, ack jetsource.Ack, err error)

// runRaceAttempt runs one attempt of a round: every writer reads its
// position, and once all have read, appends under its condition, while
// the foreign writer (if any) publishes its events of the round. It
// returns the positions the writers read; result gets each append's
// outcome.
func runRaceAttempt(t *testing.T, ctx context.Context, c raceCase, round int, stores []*jetstore.Store, foreign *nats.Conn, foreignStore *jetstore.Store,
	boundary subjects.Filter, writerSubject func(w int) subjects.Subject, foreignSubject subjects.Subject, result raceResult) []uint64 {
	positions := make([]uint64, len(stores))
	var read, done sync.WaitGroup
	parties := raceWriters
	if c.foreign {
		parties++
	}
	read.Add(parties)
	for w := range raceWriters {
		st := stores[w]
		done.Go(func() {
			pos, err := readPosition(ctx, st, c.mode, w, boundary)
			positions[w] = pos
			// Barrier: every writer has read before any appends.
			read.Done()
			read.Wait()
			if err != nil {
				t.Errorf("round %d writer %d: read position: %v", round, w, err)
				return
			}
			e := jetsource.Event{Subject: writerSubject(w), Data: fmt.Appendf(nil, `{"round":%d,"writer":%d}`, round, w)}
			var opt jetsource.AppendOption
			if c.mode == aggregateMode {
				opt = jetsource.ExpectSequence(pos)
			} else {
				opt = jetsource.ExpectNoneAfter(pos, boundary)
			}
			appendStart := time.Now()
			ack, err := st.Append(ctx, e, opt)
			result(w, pos, time.Since(appendStart), ack, err)
		})
	}
	if c.foreign {
		done.Go(func() {
			read.Done()
			read.Wait()
			for k := range foreignPerRound {
				// In even rounds the first event goes at once, before
				// the writers' appends; every other event goes after a
				// read, as a writer's append goes after its own, and
				// lands among the appends.
				if k > 0 || round%2 == 1 {
					if _, err := foreignStore.LastSequence(ctx, boundary); err != nil {
						t.Errorf("round %d: foreign read: %v", round, err)
						return
					}
				}
				data := fmt.Appendf(nil, `{"round":%d,"foreign":%d}`, round, k)
				if c.foreignAppend {
					if _, err := foreignStore.Append(ctx, jetsource.Event{Subject: foreignSubject, Data: data}); err != nil {
						t.Errorf("round %d: foreign append: %v", round, err)
					}
					continue
				}
				if err := foreign.Publish(foreignSubject.String(), data); err != nil {
					t.Errorf("round %d: foreign publish: %v", round, err)
				}
			}
			if err := foreign.FlushTimeout(raceTimeout); err != nil {
				t.Errorf("round %d: foreign flush: %v", round, err)
			}
		})
	}
	done.Wait()
	return positions
}

// openRaceStore opens a store on the stream and reads from it once,
// failing the test on an error.
func openRaceStore(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string, opts ...jetstore.Option) *jetstore.Store {
	t.Helper()
	st, err := jetstore.New(ctx, js, stream, opts...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	if _, err := st.LastSequence(ctx, subjects.All()); err != nil {
		t.Fatalf("first read: %v", err)
	}
	return st
}

// readPosition is the read of a writer before it decides: the last
// sequence of the aggregate, the boundary or the whole stream.
func readPosition(ctx context.Context, st *jetstore.Store, mode raceMode, w int, boundary subjects.Filter) (uint64, error) {
	if mode == boundaryMode && w%2 == 1 {
		return st.LastSequence(ctx, subjects.All())
	}
	return st.LastSequence(ctx, boundary)
}

// storedSequences returns the sequences of the stored messages matching
// filter, in order, reading with an ordered consumer until it has want of
// them and nothing is pending. A consumer that delivers nothing for 5s
// (on a loaded cluster it now and then stalls) is replaced by a new one
// that starts after the last message read, until ctx ends.
func storedSequences(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, filter string, want int) []uint64 {
	t.Helper()
	var seqs []uint64
	var lastErr error
	for ctx.Err() == nil {
		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
		if n := len(seqs); n > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seqs[n-1]+1
		}
		done, err := func() (bool, error) {
			cons, err := js.OrderedConsumer(ctx, stream, cfg)
			if err != nil {
				return false, err
			}
			it, err := cons.Messages()
			if err != nil {
				return false, err
			}
			defer it.Stop()
			for {
				m, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
				if err != nil {
					return false, err
				}
				md, err := m.Metadata()
				if err != nil {
					return false, err
				}
				seqs = append(seqs, md.Sequence.Stream)
				if md.NumPending == 0 && len(seqs) >= want {
					return true, nil
				}
			}
		}()
		if done {
			return seqs
		}
		lastErr = err
		t.Logf("audit: %d messages on %s so far, want %d: %v; reading on with a new consumer", len(seqs), filter, want, err)
	}
	t.Fatalf("audit: %d messages on %s, want %d: %v", len(seqs), filter, want, lastErr)
	return nil
}
