package state_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A fold skips every malformed message of the catalogue with a warning
// and a report, never stops, and folds the good events around it; on
// both read paths, with and without snapshots.
func TestLoadSkipsMalformedEvents(t *testing.T) {
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}); err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	shapes := embeddedtest.MalformedShapes("users")
	put := func(subject, data string) {
		t.Helper()
		if _, err := st.Append(ctx, jetsource.Event{Subject: subjects.MustParse(subject), Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	// Each aggregate of the catalogue gets a good event before and after
	// its message.
	var aggs []subjects.Subject
	for _, s := range shapes {
		if a, err := subjects.Parse(strings.TrimSuffix(s.Msg.Subject, ".added")); err == nil {
			aggs = append(aggs, a)
			put(a.String()+".before", `{"before":1}`)
		}
	}
	embeddedtest.PublishMalformed(t, nc, "users")
	for _, a := range aggs {
		put(a.String()+".after", `{"after":2}`)
	}
	kv, err := state.NewKVSnapshots(ctx, js, "SNAPS")
	if err != nil {
		t.Fatal(err)
	}
	paths := []struct {
		name string
		opts []state.Option
	}{
		{"Consumer", nil},
		{"Direct", []state.Option{state.WithJetStream(js, "EVENTS")}},
		{"DirectSnapshots", []state.Option{state.WithJetStream(js, "EVENTS"), state.WithSnapshots(kv)}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			// Twice: the second load starts from the snapshot written by
			// the first (with snapshots).
			for round := range 2 {
				skipped := 0
				var logs syncBuffer
				// A reducer that tolerates any valid event: it records
				// what it saw.
				r := state.Reducer[map[string]int]{
					Version: "test/1",
					Initial: func() map[string]int { return map[string]int{} },
					Apply: func(s map[string]int, e jetsource.Event) (map[string]int, error) {
						if e.Malformed != nil {
							t.Errorf("reducer got a malformed event: %+v", e.Malformed)
						}
						s[e.Name()]++
						return s, nil
					},
				}
				opts := append([]state.Option{
					state.OnMalformed(func(jetsource.Event) { skipped++ }),
					state.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
				}, p.opts...)
				for _, a := range aggs {
					s, seq, err := state.Load(ctx, st, r, a, opts...)
					if err != nil {
						t.Fatalf("round %d: load %s: %v", round, a, err)
					}
					if s["before"] != 1 || s["after"] != 1 || seq == 0 {
						t.Fatalf("round %d: load %s: got %v at %d, want the events before and after", round, a, s, seq)
					}
				}
				wantSkipped := len(aggs) - 8 // the eight shapes read as valid events
				if round == 1 && p.name == "DirectSnapshots" {
					wantSkipped = 0 // current snapshots: nothing read
				}
				if skipped != wantSkipped {
					t.Errorf("round %d: %d malformed events reported, want %d", round, skipped, wantSkipped)
				}
				if n := strings.Count(logs.String(), "skipping malformed event"); n != wantSkipped {
					t.Errorf("round %d: %d warnings logged, want %d:\n%s", round, n, wantSkipped, logs.String())
				}
			}
		})
	}
}
