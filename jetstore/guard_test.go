package jetstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// Issue 9, point 4: a one-event append whose boundary has two filters (the
// shape of the example's AddUserToGroup) may fail only because of events
// that match its filters, never because of unrelated writes.
func TestTwoFilterAppendUnderUnrelatedWrites(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	cfg := jetstore.StreamConfig{Name: "TWO", Subjects: []string{"users.>", "groups.>", "other.>"}}
	st := provision(t, js, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Eight writers append to unrelated aggregates until the test is done.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var unrelated atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st.Append(ctx, event(fmt.Sprintf("other.w%d.n%d", w, i%50), `{}`)); err != nil {
					t.Errorf("unrelated writer %d: %v", w, err)
					return
				}
				unrelated.Add(1)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if unrelated.Load() < 50 {
			return errors.New("the unrelated writers have not started")
		}
		return nil
	})

	ann := subjects.MustParseFilter("users.acme.ann.>")
	group := subjects.MustParseFilter("groups.acme.g.>")
	const n = 60
	ok := 0
	var failures []error
	for i := range n {
		pos := lastSequence(t, st)
		_, err := st.Append(ctx, event("groups.acme.g.joined", fmt.Sprintf(`{"n":%d}`, i)), jetsource.ExpectNoneAfter(pos, ann, group))
		if err != nil {
			failures = append(failures, err)
			continue
		}
		ok++
	}
	before := unrelated.Load()
	t.Logf("%d of %d two-filter appends succeeded beside %d unrelated appends; stats %+v", ok, n, before, st.Stats())
	if ok*100 < n*95 {
		t.Fatalf("only %d of %d two-filter appends succeeded beside unrelated writers (want at least 95%%); first failure: %v", ok, n, failures[0])
	}

	// The guarantee holds: an event under either filter after the read
	// position is a conflict.
	for _, f := range []string{"users.acme.ann.renamed", "groups.acme.g.renamed"} {
		pos := lastSequence(t, st)
		if _, err := st.Append(ctx, event(f, `{}`)); err != nil {
			t.Fatal(err)
		}
		_, err := st.Append(ctx, event("groups.acme.g.joined", `{}`), jetsource.ExpectNoneAfter(pos, ann, group))
		if !errors.Is(err, jetsource.ErrConflict) {
			t.Fatalf("an event on %s after the read position: got %v, want ErrConflict", f, err)
		}
	}
}

// The guard message carries its condition atomically: an event that lands
// on the second filter between the store's reads and its publish makes
// the append a conflict, and nothing of it is stored.
func TestTwoFilterAppendRace(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	cfg := jetstore.StreamConfig{Name: "TWORACE", Subjects: []string{"users.>", "groups.>"}}
	other := provision(t, js, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := jetstore.New(ctx, js, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"users.acme.ann.renamed", "groups.acme.g.renamed"} {
		t.Run(target, func(t *testing.T) {
			once := sync.Once{}
			jetstore.SetBeforePublish(st, func() {
				once.Do(func() {
					if _, err := other.Append(ctx, event(target, `{}`)); err != nil {
						t.Error(err)
					}
				})
			})
			defer jetstore.SetBeforePublish(st, nil)
			pos := lastSequence(t, st)
			_, err := st.Append(ctx, event("groups.acme.g.joined", `{"race":true}`),
				jetsource.ExpectNoneAfter(pos, subjects.MustParseFilter("users.acme.ann.>"), subjects.MustParseFilter("groups.acme.g.>")))
			if !errors.Is(err, jetsource.ErrConflict) {
				t.Fatalf("an event on %s stored between the reads and the publish: got %v, want ErrConflict", target, err)
			}
			if got := lastSequence(t, st); got != pos+1 {
				t.Fatalf("the refused append stored something: last sequence %d, want %d", got, pos+1)
			}
		})
	}
}

// Guard messages are internal: on their own subject, marked, with no
// data; they stay, unless the stream allows per-message TTLs.
func TestGuardMessages(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	cfg := jetstore.StreamConfig{Name: "GUARDS", Subjects: []string{"users.>", "groups.>"}}
	st := provision(t, js, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	twoFilters := func(st *jetstore.Store, after uint64) uint64 {
		t.Helper()
		ack, err := st.Append(ctx, event("groups.g.joined", `{}`), jetsource.ExpectNoneAfter(after, subjects.MustParseFilter("users.a.>"), subjects.MustParseFilter("groups.g.>")))
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	if seq := twoFilters(st, 0); seq != 1 {
		t.Fatalf("the event is at %d, want 1 (before its guard)", seq)
	}
	stream, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != jetsource.GuardSubject(cfg.Name) || m.Header.Get(jetsource.HeaderGuard) == "" || len(m.Data) != 0 || m.Header.Get(jetstream.MsgTTLHeader) != "" {
		t.Fatalf("guard message: subject %s, headers %v, data %q", m.Subject, m.Header, m.Data)
	}
	if !jetsource.InternalSubject(m.Subject) {
		t.Fatalf("%s is not internal", m.Subject)
	}

	// A stream that allows TTLs: the guard expires, the event stays.
	info := stream.CachedInfo().Config
	info.AllowMsgTTL = true
	if _, err := js.UpdateStream(ctx, info); err != nil {
		t.Fatal(err)
	}
	st, err = jetstore.New(ctx, js, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	seq := twoFilters(st, 2)
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if _, err := stream.GetMsg(ctx, seq+1); !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("the guard message is still there: %v", err)
		}
		return nil
	})
	for _, seq := range []uint64{1, 2, seq} {
		if _, err := stream.GetMsg(ctx, seq); err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
	}
}

// A guard whose filter is literally a subject the batch writes goes before
// the events (the server refuses an expectation on a subject written
// earlier in the batch), and still guards.
func TestGuardOnWrittenSubject(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	st := provision(t, js, jetstore.StreamConfig{Name: "LITERAL", Subjects: []string{"users.>", "groups.>"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	joined := subjects.MustParseFilter("groups.g.joined")
	// Two conditions on the subject the event writes: one rides on the
	// event, the other on a guard before it.
	opts := func(last uint64) []jetsource.AppendOption {
		return []jetsource.AppendOption{jetsource.ExpectNoneAfter(last, joined), jetsource.ExpectLast(joined, last)}
	}
	ack, err := st.Append(ctx, event("groups.g.joined", `{}`), opts(0)...)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Sequence != 2 {
		t.Fatalf("the event is at %d, want 2 (after its guard)", ack.Sequence)
	}
	if _, err := st.Append(ctx, event("groups.g.joined", `{}`), opts(0)...); !errors.Is(err, jetsource.ErrConflict) {
		t.Fatalf("a stale literal condition on a guard: got %v, want ErrConflict", err)
	}
	if _, err := st.Append(ctx, event("groups.g.joined", `{}`), opts(ack.Sequence)...); err != nil {
		t.Fatalf("a current literal condition on a guard: %v", err)
	}
}
