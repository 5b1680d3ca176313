package subscriber_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
	"github.com/jetsource/jetsource/subscriber"
)

func TestAckOnlyAfterSuccess(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, "users.A.added")
	started, release := make(chan jetsource.Event, 1), make(chan struct{})
	s := newSub(t, e.js, "acks", func(ctx context.Context, ev jetsource.Event) error {
		started <- ev
		<-release
		return nil
	})
	start(t, s)
	ev := <-started
	if ev.Sequence != seqs[0] || ev.Subject.String() != "users.A.added" || ev.Stream != "EVENTS" || string(ev.Data) != `{"n":0}` {
		t.Fatalf("decoded event: %+v", ev)
	}
	// While the handler runs, the event is delivered but not acknowledged.
	l := lag(t, s)
	if l.AckPending != 1 || l.AckFloor != 0 || l.LastAcked != 0 {
		t.Fatalf("during the handler: %+v", l)
	}
	close(release)
	waitFor(t, 5*time.Second, "the ack", func() bool { l = lag(t, s); return l.AckFloor == seqs[0] })
	if l.Pending != 0 || l.LastAcked != seqs[0] || l.Acked != 1 {
		t.Fatalf("after the handler: %+v", l)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	e := newEnv(t)
	e.publish(t, "users.A.added", "users.B.added")
	rec := newRecord()
	var deliveries []int
	var mu sync.Mutex
	s := newSub(t, e.js, "retry", func(ctx context.Context, ev jetsource.Event) error {
		n := rec.call(ev.Sequence)
		if ev.Subject.String() == "users.A.added" {
			mu.Lock()
			deliveries = append(deliveries, n)
			mu.Unlock()
			if n < 3 {
				return errors.New("not yet")
			}
		}
		rec.ok(ev.Sequence)
		return nil
	}, subscriber.WithBackoff(20*time.Millisecond, 40*time.Millisecond), subscriber.WithMaxDeliver(5))
	start(t, s)
	waitFor(t, 5*time.Second, "both events handled", func() bool { return rec.count() == 2 })
	waitFor(t, 5*time.Second, "nothing pending", func() bool { return lag(t, s).Pending == 0 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(deliveries, []int{1, 2, 3}) {
		t.Fatalf("deliveries of the failing event: %v, want [1 2 3]", deliveries)
	}
	if n := dlqCount(t, e.js, subscriber.DefaultDeadLetterStream); n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}
}

// The fault test: one aggregate always fails. Its events end in the
// dead-letter stream, in order, and every other aggregate is processed
// completely meanwhile.
func TestFailingAggregateIsDeadLetteredOthersFlow(t *testing.T) {
	e := newEnv(t)
	var subs []string
	for j := range 5 {
		subs = append(subs, fmt.Sprintf("users.bad.e%d", j))
		for i := range 19 {
			subs = append(subs, fmt.Sprintf("users.a%d.e%d", i, j))
		}
	}
	seqs := e.publish(t, subs...)
	var badSeqs []uint64
	for i, s := range subs {
		if strings.HasPrefix(s, "users.bad.") {
			badSeqs = append(badSeqs, seqs[i])
		}
	}
	rec := newRecord()
	var mu sync.Mutex
	var badCalls []uint64
	s := newSub(t, e.js, "fault", func(ctx context.Context, ev jetsource.Event) error {
		rec.call(ev.Sequence)
		if ev.Aggregate().String() == "users.bad" {
			mu.Lock()
			badCalls = append(badCalls, ev.Sequence)
			mu.Unlock()
			return fmt.Errorf("cannot handle %s:\nbroken", ev.Subject)
		}
		rec.ok(ev.Sequence)
		return nil
	}, subscriber.WithConcurrency(4), subscriber.WithMaxDeliver(3), subscriber.WithBackoff(10*time.Millisecond))
	start(t, s)
	waitFor(t, 10*time.Second, "the good events", func() bool { return rec.count() == 95 })
	waitFor(t, 10*time.Second, "5 dead letters", func() bool { return dlqCount(t, e.js, subscriber.DefaultDeadLetterStream) == 5 })
	waitFor(t, 5*time.Second, "nothing pending", func() bool { return lag(t, s).Pending == 0 })

	mu.Lock()
	want := []uint64{}
	for _, b := range badSeqs {
		want = append(want, b, b, b)
	}
	if !slices.Equal(badCalls, want) {
		t.Errorf("the failing aggregate's handler calls: %v, want each event 3 times in order %v", badCalls, want)
	}
	mu.Unlock()
	for seq, n := range rec.handled {
		if n != 1 {
			t.Errorf("event %d handled %d times", seq, n)
		}
	}
	dl := deadLetters(t, e.js, subscriber.DefaultDeadLetterStream)
	for i, m := range dl {
		h := m.Headers()
		if got, want := m.Subject(), "deadletter.fault."+fmt.Sprintf("users.bad.e%d", i); got != want {
			t.Errorf("dead letter %d on %s, want %s", i, got, want)
		}
		if got := h.Get(subscriber.HeaderSequence); got != strconv.FormatUint(badSeqs[i], 10) {
			t.Errorf("dead letter %d: sequence header %q, want %d", i, got, badSeqs[i])
		}
		if h.Get(subscriber.HeaderDeliveries) != "3" || h.Get(subscriber.HeaderStream) != "EVENTS" ||
			h.Get(subscriber.HeaderSubject) != fmt.Sprintf("users.bad.e%d", i) || h.Get(subscriber.HeaderConsumer) != "fault" ||
			h.Get(subscriber.HeaderTime) == "" || h.Get(subscriber.HeaderMsgID) == "" {
			t.Errorf("dead letter %d headers: %v", i, h)
		}
		if got := h.Get(subscriber.HeaderError); got != fmt.Sprintf("cannot handle users.bad.e%d: broken", i) {
			t.Errorf("dead letter %d error header %q", i, got)
		}
		if h.Get("Nats-Expected-Stream") != "" {
			t.Errorf("dead letter %d kept the original's Nats-* headers: %v", i, h)
		}
		// The dead letter is still the event: same id and data.
		ev, err := jetsource.DecodeMsg(h.Get(subscriber.HeaderSubject), h, m.Data(), jetsource.Stored{Stream: "EVENTS"})
		if err != nil || ev.ID != h.Get(subscriber.HeaderMsgID) {
			t.Errorf("dead letter %d does not decode to the event: %v, %+v", i, err, ev)
		}
	}
	if len(dl) != 5 {
		t.Fatalf("%d dead letters, want 5", len(dl))
	}
}

// Per-aggregate order under concurrency with random failures: a handler
// call for an event comes only once every earlier event of its aggregate
// succeeded, and never while another event of the aggregate is handled.
func TestOrderKeptWithRandomFailures(t *testing.T) {
	e := newEnv(t)
	const aggs, per = 30, 12
	subs := spread(aggs, per)
	seqs := e.publish(t, subs...)
	// The expected order per aggregate.
	order := map[string][]uint64{}
	for i, s := range subs {
		agg := subjects.MustParse(s).Aggregate().String()
		order[agg] = append(order[agg], seqs[i])
	}
	var mu sync.Mutex
	next := map[string]int{}     // index in order of the next event to succeed
	inflight := map[string]int{} // handler calls running per aggregate
	rng := rand.New(rand.NewPCG(1, 2))
	var violations []string
	var failures, successes atomic.Int64
	s := newSub(t, e.js, "order", func(ctx context.Context, ev jetsource.Event) error {
		agg := ev.Aggregate().String()
		mu.Lock()
		inflight[agg]++
		if inflight[agg] > 1 {
			violations = append(violations, fmt.Sprintf("%s: two events handled at once", agg))
		}
		i := next[agg]
		if i >= len(order[agg]) || order[agg][i] != ev.Sequence {
			violations = append(violations, fmt.Sprintf("%s: got sequence %d, want the event at index %d of %v", agg, ev.Sequence, i, order[agg]))
		}
		fail := rng.Float64() < 0.25
		mu.Unlock()
		time.Sleep(time.Duration(ev.Sequence%3) * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		inflight[agg]--
		if fail {
			failures.Add(1)
			return errors.New("random failure")
		}
		next[agg]++
		successes.Add(1)
		return nil
	}, subscriber.WithConcurrency(6), subscriber.WithMaxDeliver(1000), subscriber.WithBackoff(5*time.Millisecond, 15*time.Millisecond))
	start(t, s)
	waitFor(t, 20*time.Second, "every event handled", func() bool { return successes.Load() >= aggs*per })
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("%d order violations, first: %s", len(violations), violations[0])
	}
	if successes.Load() != aggs*per {
		t.Fatalf("%d successes, want %d", successes.Load(), aggs*per)
	}
	t.Logf("%d events, %d failures retried", aggs*per, failures.Load())
}

// Events held back behind a retry are handed back at shutdown so that a
// new subscriber handles them after the retry, in order.
func TestOrderKeptAcrossStop(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, "users.A.e0", "users.A.e1", "users.A.e2")
	var failed atomic.Bool
	heldBack := make(chan struct{})
	s1 := newSub(t, e.js, "handback", func(ctx context.Context, ev jetsource.Event) error {
		if ev.Sequence == seqs[0] && failed.CompareAndSwap(false, true) {
			return errors.New("first attempt fails")
		}
		if ev.Sequence != seqs[0] {
			t.Errorf("first subscriber handled %d before the retry of %d", ev.Sequence, seqs[0])
		}
		return errors.New("should not be called again")
	}, subscriber.WithBackoff(2*time.Second))
	start(t, s1)
	waitFor(t, 5*time.Second, "the two later events held back", func() bool {
		l := lag(t, s1)
		return failed.Load() && l.LastDelivered == seqs[2]
	})
	close(heldBack)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []uint64
	s2 := newSub(t, e.js, "handback", func(ctx context.Context, ev jetsource.Event) error {
		mu.Lock()
		got = append(got, ev.Sequence)
		mu.Unlock()
		return nil
	})
	start(t, s2)
	waitFor(t, 10*time.Second, "three events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, seqs) {
		t.Fatalf("after the restart: %v, want %v", got, seqs)
	}
}

// Two instances share one durable: every event is handled exactly once
// and never by both at once, even by handlers slower than the ack wait.
func TestSharedDurableNoConcurrentDuplicates(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, spread(12, 3)...)
	var mu sync.Mutex
	running := map[uint64]int{}
	handled := map[uint64]int{}
	by := map[string]int{}
	var dup []string
	h := func(name string) subscriber.Handler {
		return func(ctx context.Context, ev jetsource.Event) error {
			mu.Lock()
			running[ev.Sequence]++
			if running[ev.Sequence] > 1 {
				dup = append(dup, fmt.Sprintf("event %d handled twice at once", ev.Sequence))
			}
			mu.Unlock()
			d := 5 * time.Millisecond
			if ev.Sequence%6 == 0 {
				d = 700 * time.Millisecond // longer than the ack wait
			}
			time.Sleep(d)
			mu.Lock()
			running[ev.Sequence]--
			handled[ev.Sequence]++
			by[name]++
			mu.Unlock()
			return nil
		}
	}
	opts := []subscriber.Option{subscriber.WithAckWait(300 * time.Millisecond), subscriber.WithConcurrency(3), subscriber.WithMaxAckPending(8)}
	s1 := newSub(t, e.js, "shared", h("one"), opts...)
	s2 := newSub(t, e.js, "shared", h("two"), opts...)
	start(t, s1)
	start(t, s2)
	waitFor(t, 15*time.Second, "every event", func() bool { mu.Lock(); defer mu.Unlock(); return len(handled) == len(seqs) })
	waitFor(t, 5*time.Second, "nothing pending", func() bool { return lag(t, s1).Pending == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(dup) > 0 {
		t.Fatal(dup[0])
	}
	for seq, n := range handled {
		if n != 1 {
			t.Errorf("event %d handled %d times", seq, n)
		}
	}
	t.Logf("split between instances: %v", by)
}

// Exclusive instances take turns: one gets every event, and the other
// takes over, in order, once the first stops.
func TestExclusiveFailover(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, spread(3, 4)...)
	var mu sync.Mutex
	by := map[string][]uint64{}
	h := func(name string) subscriber.Handler {
		return func(ctx context.Context, ev jetsource.Event) error {
			mu.Lock()
			by[name] = append(by[name], ev.Sequence)
			mu.Unlock()
			return nil
		}
	}
	opts := []subscriber.Option{subscriber.WithExclusive(2 * time.Second), subscriber.WithConcurrency(1)}
	s1 := newSub(t, e.js, "excl", h("one"), opts...)
	start(t, s1)
	waitFor(t, 5*time.Second, "the first instance to take all", func() bool { mu.Lock(); defer mu.Unlock(); return len(by["one"]) == len(seqs) })
	s2 := newSub(t, e.js, "excl", h("two"), opts...)
	start(t, s2)
	more := e.publish(t, "users.a0.later", "users.a1.later")
	waitFor(t, 5*time.Second, "the first instance to take the new ones", func() bool { mu.Lock(); defer mu.Unlock(); return len(by["one"]) == len(seqs)+2 })
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	last := e.publish(t, "users.a2.last")
	waitFor(t, 10*time.Second, "the second instance to take over", func() bool { mu.Lock(); defer mu.Unlock(); return len(by["two"]) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if want := append(append([]uint64(nil), seqs...), more...); !slices.Equal(by["one"], want) {
		t.Fatalf("first instance: %v, want %v", by["one"], want)
	}
	if !slices.Equal(by["two"], last) {
		t.Fatalf("second instance: %v, want %v", by["two"], last)
	}
}

func TestStopDrainsInFlightAndHandsBackTheRest(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, spread(10, 1)...)
	rec := newRecord()
	started := make(chan struct{})
	var once sync.Once
	s1 := newSub(t, e.js, "drain", func(ctx context.Context, ev jetsource.Event) error {
		rec.call(ev.Sequence)
		once.Do(func() { close(started) })
		time.Sleep(300 * time.Millisecond)
		rec.ok(ev.Sequence)
		return nil
	}, subscriber.WithConcurrency(1))
	start(t, s1)
	<-started
	t0 := time.Now()
	if err := s1.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("stop took %v", d)
	}
	select {
	case <-s1.Closed():
	default:
		t.Fatal("Closed not closed after Stop")
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("%d events finished by the first instance, want the one in flight", n)
	}
	// The rest comes back at once, not after the 30s ack wait.
	s2 := newSub(t, e.js, "drain", func(ctx context.Context, ev jetsource.Event) error {
		rec.call(ev.Sequence)
		rec.ok(ev.Sequence)
		return nil
	})
	start(t, s2)
	waitFor(t, 5*time.Second, "the handed-back events", func() bool { return rec.count() == len(seqs) })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for seq, n := range rec.calls {
		if n != 1 {
			t.Errorf("event %d handled %d times", seq, n)
		}
	}
}

func TestStopTimesOut(t *testing.T) {
	e := newEnv(t)
	e.publish(t, "users.A.added")
	started := make(chan struct{})
	cancelled := make(chan struct{})
	s := newSub(t, e.js, "stuck", func(ctx context.Context, ev jetsource.Event) error {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}, subscriber.WithDrainTimeout(200*time.Millisecond))
	start(t, s)
	<-started
	t0 := time.Now()
	err := s.Close()
	if !errors.Is(err, subscriber.ErrDrainTimeout) {
		t.Fatalf("Close: %v, want ErrDrainTimeout", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("handler context not cancelled")
	}
	if err2 := s.Close(); !errors.Is(err2, subscriber.ErrDrainTimeout) {
		t.Fatalf("second Close: %v", err2)
	}
}

func TestLag(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, spread(10, 1)...)
	release := make(chan struct{})
	s := newSub(t, e.js, "lag", func(ctx context.Context, ev jetsource.Event) error {
		<-release
		return nil
	}, subscriber.WithConcurrency(1))
	if _, err := s.Lag(context.Background()); !errors.Is(err, jetsource.ErrNotFound) {
		t.Fatalf("lag before the durable exists: %v, want ErrNotFound", err)
	}
	start(t, s)
	waitFor(t, 5*time.Second, "deliveries", func() bool { return lag(t, s).LastDelivered == seqs[len(seqs)-1] })
	if l := lag(t, s); l.Pending != 10 || l.Undelivered != 0 || l.AckPending != 10 || l.AckFloor != 0 {
		t.Fatalf("blocked: %+v", l)
	}
	close(release)
	waitFor(t, 5*time.Second, "the backlog to clear", func() bool { return lag(t, s).Pending == 0 })
	l := lag(t, s)
	if l.AckFloor != seqs[9] || l.LastAcked != seqs[9] || l.Acked != 10 {
		t.Fatalf("cleared: %+v", l)
	}
	e.publish(t, "users.late.added")
	waitFor(t, 5*time.Second, "the new event", func() bool { return lag(t, s).Acked == 11 })
}

// The server restarts while workers consume: they resume on their own
// and every event is handled at least once.
func TestResumeAfterServerRestart(t *testing.T) {
	srv := embeddedtest.RunDurable(t)
	e := connectEnv(t, srv)
	first := e.publish(t, spread(10, 20)...)
	rec := newRecord()
	s := newSub(t, e.js, "restart", func(ctx context.Context, ev jetsource.Event) error {
		rec.call(ev.Sequence)
		time.Sleep(5 * time.Millisecond)
		rec.ok(ev.Sequence)
		return nil
	}, subscriber.WithConcurrency(4), subscriber.WithAckWait(2*time.Second), subscriber.WithBackoff(50*time.Millisecond))
	start(t, s)
	waitFor(t, 10*time.Second, "some events", func() bool { return rec.count() >= 40 })
	t0 := time.Now()
	before := rec.count()
	embeddedtest.Restart(t, srv)
	t.Logf("restarted with %d of %d events handled, after %v", before, len(first), time.Since(t0))
	waitFor(t, 10*time.Second, "reconnection", func() bool { return e.nc.Status() == nats.CONNECTED })
	var second []uint64
	for attempt := 0; ; attempt++ {
		if second = tryPublish(e, spread(10, 5)); second != nil {
			break
		}
		if attempt > 50 {
			t.Fatal("cannot publish after the restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("published after %v", time.Since(t0))
	all := append(append([]uint64(nil), first...), second...)
	waitFor(t, 25*time.Second, "every event at least once", func() bool { return rec.count() == len(all) })
	t.Logf("all handled after %v", time.Since(t0))
	waitFor(t, 10*time.Second, "nothing pending", func() bool {
		l, err := s.Lag(context.Background())
		return err == nil && l.Pending == 0
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	redelivered := 0
	for _, seq := range all {
		if rec.handled[seq] == 0 {
			t.Errorf("event %d never handled", seq)
		}
		redelivered += rec.handled[seq] - 1
	}
	t.Logf("%d events, %d handled again after the restart", len(all), redelivered)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func tryPublish(e *env, subs []string) []uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var seqs []uint64
	for i, s := range subs {
		ev, _ := jetsource.Prepare(jetsource.Event{Subject: subjects.MustParse(s), Data: []byte(fmt.Sprintf(`{"late":%d}`, i))}, "", time.Now())
		ack, err := e.js.PublishMsg(ctx, ev.Msg())
		if err != nil {
			return nil
		}
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

func TestPermanentAndUndecodableAreDeadLetteredAtOnce(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, "users.A.added")
	// A message whose ce-time header is not a time: no handler can take it.
	if _, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: "users.B.added", Header: nats.Header{"ce-time": {"yesterday"}}, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	s := newSub(t, e.js, "perm", func(ctx context.Context, ev jetsource.Event) error {
		calls.Add(1)
		if ev.Sequence == seqs[0] {
			return subscriber.Permanent(errors.New("rule says no"))
		}
		return nil
	}, subscriber.WithDeadLetter("dlq.perm"), subscriber.WithDeadLetterStream("DLQ_PERM"))
	start(t, s)
	waitFor(t, 5*time.Second, "two dead letters", func() bool { return dlqCount(t, e.js, "DLQ_PERM") == 2 })
	dl := deadLetters(t, e.js, "DLQ_PERM")
	slices.SortFunc(dl, func(a, b jetstream.Msg) int { return strings.Compare(a.Subject(), b.Subject()) })
	if dl[0].Subject() != "dlq.perm.users.A.added" || dl[0].Headers().Get(subscriber.HeaderDeliveries) != "1" ||
		!strings.Contains(dl[0].Headers().Get(subscriber.HeaderError), "rule says no") {
		t.Errorf("permanent: %s %v", dl[0].Subject(), dl[0].Headers())
	}
	if dl[1].Subject() != "dlq.perm.users.B.added" || !strings.Contains(dl[1].Headers().Get(subscriber.HeaderError), "malformed event") ||
		!strings.Contains(dl[1].Headers().Get(subscriber.HeaderMalformed), "ce-time") {
		t.Errorf("undecodable: %s %v", dl[1].Subject(), dl[1].Headers())
	}
	if calls.Load() != 1 {
		t.Errorf("handler called %d times, want once (never for the undecodable message)", calls.Load())
	}
	if got := s.DeadLetterSubject("users.A.added"); got != "dlq.perm.users.A.added" {
		t.Errorf("DeadLetterSubject: %s", got)
	}
}

func TestPanicIsRetried(t *testing.T) {
	e := newEnv(t)
	e.publish(t, "users.A.added")
	var calls atomic.Int64
	s := newSub(t, e.js, "panic", func(ctx context.Context, ev jetsource.Event) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	}, subscriber.WithBackoff(10*time.Millisecond))
	start(t, s)
	waitFor(t, 5*time.Second, "the retry", func() bool { return lag(t, s).Acked == 1 })
	if calls.Load() != 2 {
		t.Fatalf("%d calls, want 2", calls.Load())
	}
}

func TestFiltersAndStartSequence(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, "users.A.added", "groups.G.added", "users.B.added", "groups.H.added")
	var mu sync.Mutex
	var got []uint64
	s := newSub(t, e.js, "filtered", func(ctx context.Context, ev jetsource.Event) error {
		mu.Lock()
		got = append(got, ev.Sequence)
		mu.Unlock()
		return nil
	}, subscriber.WithFilters(subjects.MustParseFilter("groups.>")), subscriber.WithStartSequence(seqs[2]))
	start(t, s)
	waitFor(t, 5*time.Second, "the matching event", func() bool { return lag(t, s).Acked == 1 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []uint64{seqs[3]}) {
		t.Fatalf("got %v, want [%d]", got, seqs[3])
	}
}

func TestStartErrors(t *testing.T) {
	e := newEnv(t)
	ok := func(context.Context, jetsource.Event) error { return nil }
	ctx := context.Background()
	t.Run("ErrStreamNotFound", func(t *testing.T) {
		s, _ := subscriber.New(e.js, "NOPE", "d", ok)
		if err := s.Start(ctx); !errors.Is(err, jetsource.ErrStreamNotFound) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ErrDeadLetterCaptured", func(t *testing.T) {
		s, _ := subscriber.New(e.js, "EVENTS", "d", ok, subscriber.WithDeadLetter("users.dead"))
		if err := s.Start(ctx); !errors.Is(err, subscriber.ErrDeadLetterCaptured) {
			t.Fatalf("got %v", err)
		}
		if n := dlqCount(t, e.js, subscriber.DefaultDeadLetterStream); n != 0 {
			t.Fatal("dead-letter stream touched")
		}
	})
	t.Run("ErrStartedErrClosed", func(t *testing.T) {
		s := newSub(t, e.js, "twice", ok)
		start(t, s)
		if err := s.Start(ctx); !errors.Is(err, subscriber.ErrStarted) {
			t.Fatalf("second Start: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx); !errors.Is(err, subscriber.ErrClosed) {
			t.Fatalf("Start after Close: %v", err)
		}
	})
	t.Run("StopBeforeStart", func(t *testing.T) {
		s := newSub(t, e.js, "never", ok)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		<-s.Closed()
	})
	t.Run("DeadLetterStreamGainsPrefix", func(t *testing.T) {
		a := newSub(t, e.js, "one", ok)
		b := newSub(t, e.js, "two", ok, subscriber.WithDeadLetter("parked.two"))
		start(t, a)
		start(t, b)
		st, err := e.js.Stream(ctx, subscriber.DefaultDeadLetterStream)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.Subjects; !slices.Contains(got, "deadletter.one.>") || !slices.Contains(got, "parked.two.>") {
			t.Fatalf("dead-letter stream subjects %v", got)
		}
	})
}

func TestRunAndNoGoroutineLeak(t *testing.T) {
	e := newEnv(t)
	e.publish(t, spread(5, 2)...)
	before := ours()
	var n atomic.Int64
	s := newSub(t, e.js, "run", func(context.Context, jetsource.Event) error { n.Add(1); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, 5*time.Second, "the events", func() bool { return n.Load() == 10 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ours()) > len(before) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the subscriber or its consumer left, %d before:\n%s", len(ours()), len(before), strings.Join(ours(), "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ours returns the stacks of the goroutines running subscriber or
// nats.go jetstream consumer code.
func ours() []string {
	buf := make([]byte, 4<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "jetsource/subscriber.") && !strings.Contains(g, "subscriber_test.") || strings.Contains(g, "nats.go/jetstream.") {
			out = append(out, g)
		}
	}
	return out
}

func TestInvalidArguments(t *testing.T) {
	e := newEnv(t)
	ok := func(context.Context, jetsource.Event) error { return nil }
	cases := []struct {
		name    string
		stream  string
		durable string
		h       subscriber.Handler
		opt     subscriber.Option
	}{
		{"NilHandler", "EVENTS", "d", nil, nil},
		{"EmptyStream", "", "d", ok, nil},
		{"BadDurable", "EVENTS", "a.b", ok, nil},
		{"DurableWithSpace", "EVENTS", "a b", ok, nil},
		{"NoFilters", "EVENTS", "d", ok, subscriber.WithFilters()},
		{"ZeroFilter", "EVENTS", "d", ok, subscriber.WithFilters(subjects.Filter{})},
		{"OverlappingFilters", "EVENTS", "d", ok, subscriber.WithFilters(subjects.MustParseFilter("users.*.added"), subjects.MustParseFilter("users.A.*"))},
		{"ZeroConcurrency", "EVENTS", "d", ok, subscriber.WithConcurrency(0)},
		{"HugeConcurrency", "EVENTS", "d", ok, subscriber.WithConcurrency(5000)},
		{"ZeroMaxDeliver", "EVENTS", "d", ok, subscriber.WithMaxDeliver(0)},
		{"EmptyBackoff", "EVENTS", "d", ok, subscriber.WithBackoff()},
		{"NegativeBackoff", "EVENTS", "d", ok, subscriber.WithBackoff(time.Second, -1)},
		{"ShortAckWait", "EVENTS", "d", ok, subscriber.WithAckWait(time.Millisecond)},
		{"ZeroMaxAckPending", "EVENTS", "d", ok, subscriber.WithMaxAckPending(0)},
		{"WildcardDeadLetter", "EVENTS", "d", ok, subscriber.WithDeadLetter("dead.*")},
		{"EmptyDeadLetter", "EVENTS", "d", ok, subscriber.WithDeadLetter("")},
		{"BadDeadLetterStream", "EVENTS", "d", ok, subscriber.WithDeadLetterStream("DEAD.LETTERS")},
		{"ZeroDrainTimeout", "EVENTS", "d", ok, subscriber.WithDrainTimeout(0)},
		{"ZeroTimeout", "EVENTS", "d", ok, subscriber.WithTimeout(0)},
		{"ZeroStartSequence", "EVENTS", "d", ok, subscriber.WithStartSequence(0)},
		{"ShortExclusiveTTL", "EVENTS", "d", ok, subscriber.WithExclusive(time.Second)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := subscriber.New(e.js, c.stream, c.durable, c.h, c.opt)
			if !errors.Is(err, subscriber.ErrInvalidOption) || !errors.Is(err, jetsource.ErrInvalidOption) || s != nil {
				t.Fatalf("got %v, %v; want ErrInvalidOption", s, err)
			}
		})
	}
	t.Run("NilJetStream", func(t *testing.T) {
		if _, err := subscriber.New(nil, "EVENTS", "d", ok); !errors.Is(err, subscriber.ErrInvalidOption) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("NothingCreated", func(t *testing.T) {
		if _, err := e.js.Consumer(context.Background(), "EVENTS", "d"); err == nil {
			t.Fatal("a refused subscriber created its consumer")
		}
	})
}

func TestReplay(t *testing.T) {
	ctx := context.Background()
	st, err := jetsource.NewMemoryStore()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"users.A.added", "groups.G.added", "users.B.added", "users.A.renamed"} {
		if _, err := st.Append(ctx, jetsource.Event{Subject: subjects.MustParse(s), Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	last, err := subscriber.Replay(ctx, st, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}, FromSequence: 2},
		func(_ context.Context, e jetsource.Event) error { got = append(got, e.Subject.String()); return nil })
	if err != nil || last != 4 || !slices.Equal(got, []string{"users.B.added", "users.A.renamed"}) {
		t.Fatalf("got %v, last %d, err %v", got, last, err)
	}
	boom := errors.New("boom")
	last, err = subscriber.Replay(ctx, st, jetsource.Query{}, func(_ context.Context, e jetsource.Event) error {
		if e.Sequence == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || last != 2 {
		t.Fatalf("handler error: last %d, err %v", last, err)
	}
	if _, err := subscriber.Replay(ctx, st, jetsource.Query{Limit: -1}, func(context.Context, jetsource.Event) error { return nil }); !errors.Is(err, jetsource.ErrInvalidOption) {
		t.Fatalf("bad query: %v", err)
	}
	if _, err := subscriber.Replay(ctx, st, jetsource.Query{}, nil); !errors.Is(err, subscriber.ErrInvalidOption) {
		t.Fatalf("nil handler: %v", err)
	}
}

func TestReplayJetStream(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, spread(3, 3)...)
	store, err := jetstore.New(context.Background(), e.js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	last, err := subscriber.Replay(context.Background(), store, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.a1.>")}},
		func(_ context.Context, e jetsource.Event) error { got = append(got, e.Sequence); return nil })
	want := []uint64{seqs[1], seqs[4], seqs[7]}
	if err != nil || !slices.Equal(got, want) || last != seqs[7] {
		t.Fatalf("got %v last %d err %v, want %v", got, last, err, want)
	}
}
