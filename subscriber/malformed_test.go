package subscriber_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/subscriber"
)

// malformedSeqs publishes the catalogue of foreign messages and returns,
// by stream sequence, the shapes that do not decode as events.
func malformedSeqs(t *testing.T, e *env) map[uint64]embeddedtest.Shape {
	t.Helper()
	shapes, seqs := embeddedtest.PublishMalformed(t, e.nc, "users")
	bad := map[uint64]embeddedtest.Shape{}
	for i, s := range shapes {
		ev := jetsource.DecodeStored(s.Msg.Subject, s.Msg.Header, s.Msg.Data, jetsource.Stored{Stream: "EVENTS", Sequence: seqs[i]})
		if ev.Malformed != nil {
			bad[seqs[i]] = s
		}
	}
	if len(bad) < 5 {
		t.Fatalf("only %d of %d shapes are malformed", len(bad), len(shapes))
	}
	return bad
}

// Every malformed message is dead-lettered with its reason, its body and
// headers as stored; the handler never sees one and the events around
// them are handled.
func TestMalformedMessagesAreDeadLetteredAndSkipped(t *testing.T) {
	e := newEnv(t)
	before := e.publish(t, "users.A.added")
	bad := malformedSeqs(t, e)
	after := e.publish(t, "users.A.renamed", "users.B.added")
	var mu sync.Mutex
	seen := map[uint64]bool{}
	s := newSub(t, e.js, "mal", func(ctx context.Context, ev jetsource.Event) error {
		if ev.Malformed != nil {
			t.Errorf("handler called with malformed sequence %d", ev.Sequence)
		}
		mu.Lock()
		seen[ev.Sequence] = true
		mu.Unlock()
		return nil
	}, subscriber.WithDeadLetterStream("DLQ_MAL"), subscriber.WithDeadLetter("dlq.mal"))
	start(t, s)
	waitFor(t, 10*time.Second, "every malformed message dead-lettered", func() bool { return dlqCount(t, e.js, "DLQ_MAL") == uint64(len(bad)) })
	waitFor(t, 10*time.Second, "the good events handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen[before[0]] && seen[after[0]] && seen[after[1]]
	})
	for _, m := range deadLetters(t, e.js, "DLQ_MAL") {
		seq, _ := strconv.ParseUint(m.Headers().Get(subscriber.HeaderSequence), 10, 64)
		shape, ok := bad[seq]
		if !ok {
			t.Errorf("dead letter of sequence %d, which is no malformed message", seq)
			continue
		}
		if m.Headers().Get(subscriber.HeaderMalformed) == "" || !strings.Contains(m.Headers().Get(subscriber.HeaderError), "malformed") {
			t.Errorf("%s: dead letter without the reason: %v", shape.Name, m.Headers())
		}
		if !bytes.Equal(m.Data(), shape.Msg.Data) || m.Headers().Get(subscriber.HeaderSubject) != shape.Msg.Subject {
			t.Errorf("%s: dead letter does not keep the raw message", shape.Name)
		}
		for k, v := range shape.Msg.Header {
			if !strings.HasPrefix(strings.ToLower(k), "nats-") && m.Headers().Get(k) != v[0] {
				t.Errorf("%s: header %s is %q in the dead letter, want %q", shape.Name, k, m.Headers().Get(k), v[0])
			}
		}
		delete(bad, seq)
		mu.Lock()
		if seen[seq] {
			t.Errorf("%s: handled and dead-lettered", shape.Name)
		}
		mu.Unlock()
	}
	for _, s := range bad {
		t.Errorf("%s: not dead-lettered", s.Name)
	}
	waitFor(t, 10*time.Second, "nothing pending", func() bool { return lag(t, s).Pending == 0 })
}

// A handler that panics on every delivery has its event dead-lettered
// with the panic and the stack after the last delivery; the worker goes
// on with the aggregate's next event.
func TestPanicIsDeadLetteredWithStack(t *testing.T) {
	e := newEnv(t)
	seqs := e.publish(t, "users.A.added", "users.A.renamed")
	var renamed atomic.Bool
	s := newSub(t, e.js, "panics", func(ctx context.Context, ev jetsource.Event) error {
		if ev.Sequence == seqs[0] {
			panicHere()
		}
		renamed.Store(true)
		return nil
	}, subscriber.WithMaxDeliver(2), subscriber.WithBackoff(10*time.Millisecond),
		subscriber.WithDeadLetterStream("DLQ_PANIC"), subscriber.WithDeadLetter("dlq.panic"))
	start(t, s)
	waitFor(t, 10*time.Second, "the dead letter and the next event", func() bool { return dlqCount(t, e.js, "DLQ_PANIC") == 1 && renamed.Load() })
	dl := deadLetters(t, e.js, "DLQ_PANIC")[0]
	if got := dl.Headers().Get(subscriber.HeaderError); !strings.Contains(got, "panicked: boom") {
		t.Errorf("error header %q", got)
	}
	if got := dl.Headers().Get(subscriber.HeaderStack); !strings.Contains(got, "panicHere") {
		t.Errorf("stack header %q does not name the panicking function", got)
	}
	if dl.Headers().Get(subscriber.HeaderDeliveries) != "2" {
		t.Errorf("deliveries %q, want 2", dl.Headers().Get(subscriber.HeaderDeliveries))
	}
}

func panicHere() { panic("boom") }

// Data a typed handler cannot decode is dead-lettered at once, not
// retried in a loop.
func TestJSONHandlerDeadLettersUndecodableData(t *testing.T) {
	e := newEnv(t)
	// The first event's data {"n":0} is no string; the second decodes.
	seqs := e.publish(t, "users.A.added")
	type added struct {
		N int `json:"n"`
	}
	var got atomic.Int64
	var calls atomic.Int64
	s := newSub(t, e.js, "typed", subscriber.JSON(func(ctx context.Context, ev jetsource.Event, v struct{ N string }) error {
		calls.Add(1)
		return nil
	}), subscriber.WithDeadLetterStream("DLQ_TYPED"), subscriber.WithDeadLetter("dlq.typed"))
	start(t, s)
	ok := newSub(t, e.js, "typed-ok", subscriber.JSON(func(ctx context.Context, ev jetsource.Event, v added) error {
		got.Store(int64(v.N) + 1)
		return nil
	}))
	start(t, ok)
	waitFor(t, 10*time.Second, "the dead letter", func() bool { return dlqCount(t, e.js, "DLQ_TYPED") == 1 })
	waitFor(t, 10*time.Second, "the typed handler", func() bool { return got.Load() == 1 })
	dl := deadLetters(t, e.js, "DLQ_TYPED")[0]
	if dl.Headers().Get(subscriber.HeaderDeliveries) != "1" || !strings.Contains(dl.Headers().Get(subscriber.HeaderError), "does not decode") {
		t.Errorf("dead letter %v", dl.Headers())
	}
	if calls.Load() != 0 {
		t.Errorf("handler called %d times", calls.Load())
	}
	_ = seqs
	h := subscriber.JSON(func(ctx context.Context, ev jetsource.Event, v added) error { return nil })
	if err := h(context.Background(), jetsource.Event{Data: []byte("{")}); !errors.Is(err, subscriber.ErrPermanent) || !errors.Is(err, subscriber.ErrInvalidData) {
		t.Errorf("JSON on bad data: %v", err)
	}
}
