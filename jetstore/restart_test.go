package jetstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// reconnecting are the client options of a connection that outlives
// server restarts.
func reconnecting() []nats.Option {
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
		quiet(),
	}
}

// ackLog records the acknowledged appends of a writer.
type ackLog struct {
	mu   sync.Mutex
	seqs map[string]uint64 // event id -> acknowledged sequence
	errs int               // failed attempts, retried
}

func (l *ackLog) add(id string, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seqs[id] = seq
}

func (l *ackLog) failed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs++
}

func (l *ackLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seqs)
}

// restartWait bounds the waits of the restart tests for a condition (so
// many acknowledgements, events delivered): only a store that is stuck
// takes that long, even on a machine loaded with other work.
const restartWait = time.Minute

// waitAcks waits until the log holds at least n acknowledgements.
func (l *ackLog) waitAcks(tb testing.TB, n int) {
	tb.Helper()
	checkFor(tb, restartWait, 5*time.Millisecond, func() error {
		if got := l.len(); got < n {
			return fmt.Errorf("%d events acknowledged, waiting for %d", got, n)
		}
		return nil
	})
}

func TestRestartNeverLosesOrDuplicatesAcknowledgedEvents(t *testing.T) {
	const (
		restarts      = 3
		ackPerRestart = 25
	)
	srv := embeddedtest.RunDurable(t)
	if !srv.SyncAlways() {
		t.Fatal("RunDurable server does not sync every write")
	}
	nc, js := newJetStream(t, srv, reconnecting()...)
	st := provision(t, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}, jetstore.WithTimeout(250*time.Millisecond))

	acks := &ackLog{seqs: map[string]uint64{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			e := event(fmt.Sprintf("users.U%d.added", i%7), fmt.Sprintf(`{"n":%d}`, i))
			e.ID = fmt.Sprintf("event-%05d", i)
			// Retry the same event until it is acknowledged.
			for {
				if ctx.Err() != nil {
					return
				}
				ack, err := st.Append(ctx, e)
				if err == nil {
					acks.add(e.ID, ack.Sequence)
					break
				}
				acks.failed()
			}
		}
	})
	defer func() {
		stop()
		wg.Wait()
	}()

	start := time.Now()
	acks.waitAcks(t, ackPerRestart)
	for r := range restarts {
		before := acks.len()
		srv = embeddedtest.Restart(t, srv)
		acks.waitAcks(t, before+ackPerRestart)
		t.Logf("restart %d: %d events acknowledged before, %d now", r+1, before, acks.len())
	}
	stop()
	wg.Wait()
	t.Logf("%d events acknowledged, %d attempts failed and retried, in %v", acks.len(), acks.errs, time.Since(start))

	reader, err := jetstore.New(context.Background(), js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	// A publish of the last, unacknowledged append may still sit in the
	// connection's reconnect buffer or the stream's queue: let it land
	// before reading.
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	prev := lastSequence(t, reader)
	checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		cur := lastSequence(t, reader)
		if cur != prev {
			prev = cur
			return fmt.Errorf("last sequence still moving: %d", cur)
		}
		return nil
	})
	stored := readAll(t, reader, jetsource.Query{})
	count := map[string]int{}
	for i, e := range stored {
		count[e.ID]++
		if want := uint64(i) + 1; e.Sequence != want {
			t.Errorf("event %d (%s) at sequence %d, want %d: the sequences have a gap", i, e.ID, e.Sequence, want)
		}
	}
	for id, n := range count {
		if n > 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	for id, seq := range acks.seqs {
		switch n := count[id]; {
		case n == 0:
			t.Errorf("acknowledged event %s (sequence %d) is lost", id, seq)
		case seq == 0 || seq > uint64(len(stored)) || stored[seq-1].ID != id:
			t.Errorf("event %s acknowledged at sequence %d, which does not hold it", id, seq)
		}
	}
	// At most the one append in flight when the writer stopped may be
	// stored without its acknowledgement.
	if extra := len(stored) - len(acks.seqs); extra < 0 || extra > 1 {
		t.Errorf("%d events stored for %d acknowledged", len(stored), len(acks.seqs))
	}
	if got := lastSequence(t, reader); got != uint64(len(stored)) {
		t.Errorf("last sequence %d, want %d", got, len(stored))
	}
}

func TestReadFollowSpansRestart(t *testing.T) {
	srv := embeddedtest.RunDurable(t)
	_, js := newJetStream(t, srv, reconnecting()...)
	st := provision(t, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}, jetstore.WithTimeout(500*time.Millisecond))

	// appendN appends events n0..n0+n-1, retrying each until it is stored.
	appendN := func(n0, n int) {
		t.Helper()
		for i := n0; i < n0+n; i++ {
			e := event("users.A.added", fmt.Sprintf(`{"n":%d}`, i))
			e.ID = fmt.Sprintf("event-%d", i)
			checkFor(t, restartWait, 10*time.Millisecond, func() error {
				_, err := st.Append(context.Background(), e)
				return err
			})
		}
	}

	var (
		mu   sync.Mutex
		got  []jetsource.Event
		errs []error
	)
	received := func(n int) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(errs) > 0 {
				return nil // reported below
			}
			if len(got) < n {
				return fmt.Errorf("follow read delivered %d events, waiting for %d", len(got), n)
			}
			return nil
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for e, err := range st.Read(ctx, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}, Follow: true}) {
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				got = append(got, e)
			}
			mu.Unlock()
		}
	})
	defer func() {
		stop()
		wg.Wait()
	}()

	appendN(0, 5)
	checkFor(t, restartWait, 5*time.Millisecond, received(5))
	srv = embeddedtest.Restart(t, srv)
	start := time.Now()
	appendN(5, 5)
	checkFor(t, restartWait, 10*time.Millisecond, received(10))
	t.Logf("follow read caught up %v after the restart", time.Since(start))
	stop()
	wg.Wait()

	if len(errs) > 0 {
		t.Fatalf("follow read failed across the restart: %v", errors.Join(errs...))
	}
	if len(got) != 10 {
		t.Fatalf("follow read delivered %d events, want 10", len(got))
	}
	for i, e := range got {
		if want := fmt.Sprintf("event-%d", i); e.ID != want || e.Sequence != uint64(i)+1 {
			t.Errorf("event %d: got %s at %d, want %s at %d", i, e.ID, e.Sequence, want, i+1)
		}
	}
}
