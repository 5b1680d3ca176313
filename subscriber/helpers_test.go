package subscriber_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
	"github.com/jetsource/jetsource/subscriber"
)

type env struct {
	srv *embedded.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := embeddedtest.Run(t)
	return connectEnv(t, srv)
}

func connectEnv(t *testing.T, srv *embedded.Server) *env {
	t.Helper()
	nc := embeddedtest.Connect(t, srv, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>", "groups.>"}}); err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, nc: nc, js: js}
}

// publish stores one event per subject, in order, and returns their
// sequences.
func (e *env) publish(t *testing.T, subs ...string) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	futs := make([]jetstream.PubAckFuture, len(subs))
	for i, s := range subs {
		ev, err := jetsource.Prepare(jetsource.Event{Subject: subjects.MustParse(s), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m := ev.Msg()
		m.Header.Set(jetsource.HeaderMsgID, ev.ID)
		if futs[i], err = e.js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	seqs := make([]uint64, len(subs))
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal("publish timed out")
		}
	}
	return seqs
}

// spread returns n events on each of aggs aggregates users.a<i>,
// interleaved: a0 e0, a1 e0, ..., a0 e1, ...
func spread(aggs, n int) []string {
	var out []string
	for j := range n {
		for i := range aggs {
			out = append(out, fmt.Sprintf("users.a%d.e%d", i, j))
		}
	}
	return out
}

func newSub(t *testing.T, js jetstream.JetStream, durable string, h subscriber.Handler, opts ...subscriber.Option) *subscriber.Subscriber {
	t.Helper()
	base := []subscriber.Option{subscriber.WithLogger(testLogger()), subscriber.WithDrainTimeout(5 * time.Second)}
	s, err := subscriber.New(js, "EVENTS", durable, h, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func start(t *testing.T, s *subscriber.Subscriber) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
}

func testLogger() *slog.Logger {
	if os.Getenv("SUBSCRIBER_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lag(t *testing.T, s *subscriber.Subscriber) subscriber.Lag {
	t.Helper()
	l, err := s.Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// deadLetters reads every message of the dead-letter stream.
func deadLetters(t *testing.T, js jetstream.JetStream, stream string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := info.State.Msgs
	if n == 0 {
		return nil
	}
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(int(n), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

func dlqCount(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		return 0
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// record is a concurrency-safe log of handled events.
type record struct {
	mu      sync.Mutex
	handled map[uint64]int // sequence -> successful handlings
	calls   map[uint64]int // sequence -> handler calls
}

func newRecord() *record { return &record{handled: map[uint64]int{}, calls: map[uint64]int{}} }

func (r *record) call(seq uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[seq]++
	return r.calls[seq]
}

func (r *record) ok(seq uint64) {
	r.mu.Lock()
	r.handled[seq]++
	r.mu.Unlock()
}

func (r *record) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.handled)
}
