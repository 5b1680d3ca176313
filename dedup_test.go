package jetsource_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// backends runs f against a memory store and a JetStream store whose
// stream captures users.> and the invalidation subjects.
func backends(t *testing.T, f func(t *testing.T, s jetsource.Store)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		s, err := jetsource.NewMemoryStore()
		if err != nil {
			t.Fatal(err)
		}
		f(t, s)
	})
	t.Run("jetstream", func(t *testing.T) {
		t.Parallel()
		srv := embeddedtest.Run(t)
		nc := embeddedtest.Connect(t, srv)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>", jetsource.InvalidationRoot + ".>"}}); err != nil {
			t.Fatal(err)
		}
		s, err := jetstore.New(ctx, js, "EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		f(t, s)
	})
}

func ev(subject, data string) jetsource.Event {
	return jetsource.Event{Subject: subjects.MustParse(subject), Data: []byte(data)}
}

func TestContentHash(t *testing.T) {
	a := ev("users.A.renamed", `{"name":"x","n":1}`)
	b := ev("users.B.renamed", "{\n  \"n\": 1, \"name\": \"x\"}")
	b.ID, b.Actor, b.Source = "other", "bob", "/elsewhere"
	if jetsource.ContentHash(a) != jetsource.ContentHash(b) {
		t.Error("same type and equivalent JSON should hash the same")
	}
	for name, c := range map[string]jetsource.Event{
		"data":        ev("users.A.renamed", `{"name":"y","n":1}`),
		"type":        ev("users.A.added", `{"name":"x","n":1}`),
		"number text": ev("users.A.renamed", `{"name":"x","n":1.0}`),
		"schema":      func() jetsource.Event { e := a; e.DataSchema = "https://x/s"; return e }(),
		"ctype":       func() jetsource.Event { e := a; e.DataContentType = "text/plain"; return e }(),
	} {
		if jetsource.ContentHash(c) == jetsource.ContentHash(a) {
			t.Errorf("%s: different content hashed the same", name)
		}
	}
}

func TestContentDedup(t *testing.T) {
	backends(t, func(t *testing.T, base jetsource.Store) {
		ctx := context.Background()
		s, err := jetsource.WithContentDedup(base)
		if err != nil {
			t.Fatal(err)
		}
		first, err := s.Append(ctx, ev("users.A.renamed", `{"name":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.Append(ctx, ev("users.A.renamed", `{ "name" : "x" }`))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.Sequence != first.Sequence {
			t.Errorf("same content: got %+v, want duplicate of %d", again, first.Sequence)
		}
		changed, err := s.Append(ctx, ev("users.A.renamed", `{"name":"y"}`))
		if err != nil || changed.Duplicate || changed.Sequence <= first.Sequence {
			t.Fatalf("new content: %+v %v", changed, err)
		}
		// Back to x: compared with the latest (y), so it is new again.
		back, err := s.Append(ctx, ev("users.A.renamed", `{"name":"x"}`))
		if err != nil || back.Duplicate {
			t.Fatalf("content equal to an older event only: %+v %v", back, err)
		}
		// Another subject with the same content is not a duplicate.
		other, err := s.Append(ctx, ev("users.B.renamed", `{"name":"x"}`))
		if err != nil || other.Duplicate {
			t.Fatalf("other subject: %+v %v", other, err)
		}
		if n := count(t, base, "users.>"); n != 4 {
			t.Errorf("stored %d events, want 4", n)
		}

		// A duplicate whose caller's condition fails is a conflict, not a
		// duplicate; with the condition holding it is a duplicate.
		_, err = s.Append(ctx, ev("users.A.renamed", `{"name":"x"}`), jetsource.ExpectSequence(1))
		if !errors.Is(err, jetsource.ErrConflict) {
			t.Errorf("duplicate content with a stale expectation: %v, want conflict", err)
		}
		dup, err := s.Append(ctx, ev("users.A.renamed", `{"name":"x"}`), jetsource.ExpectSequence(back.Sequence))
		if err != nil || !dup.Duplicate || dup.Sequence != back.Sequence {
			t.Errorf("duplicate content with a holding expectation: %+v %v", dup, err)
		}
		// The caller's own condition still applies to new content.
		_, err = s.Append(ctx, ev("users.A.renamed", `{"name":"z"}`), jetsource.ExpectSequence(1))
		if !errors.Is(err, jetsource.ErrConflict) {
			t.Errorf("stale expectation: %v, want conflict", err)
		}
		if n := count(t, base, "users.>"); n != 4 {
			t.Errorf("a refused append wrote: %d events", n)
		}
	})
}

func TestContentDedupTypes(t *testing.T) {
	backends(t, func(t *testing.T, base jetsource.Store) {
		ctx := context.Background()
		s, err := jetsource.WithContentDedup(base, jetsource.DedupTypes("users.renamed"))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := s.Append(ctx, ev("users.A.renamed", `{"name":"x"}`)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(ctx, ev("users.A.touched", `{}`)); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, base, "users.A.renamed"); n != 1 {
			t.Errorf("renamed stored %d times, want 1", n)
		}
		if n := count(t, base, "users.A.touched"); n != 2 {
			t.Errorf("touched (not de-duplicated) stored %d times, want 2", n)
		}
	})
	if _, err := jetsource.WithContentDedup(nil, jetsource.DedupTypes()); !errors.Is(err, jetsource.ErrInvalidOption) {
		t.Errorf("DedupTypes(): %v", err)
	}
	if _, err := jetsource.WithContentDedup(nil, jetsource.DedupTypes("")); !errors.Is(err, jetsource.ErrInvalidOption) {
		t.Errorf(`DedupTypes(""): %v`, err)
	}
}

// Concurrent identical appends store the content once.
func TestContentDedupConcurrent(t *testing.T) {
	backends(t, func(t *testing.T, base jetsource.Store) {
		ctx := context.Background()
		s, err := jetsource.WithContentDedup(base)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		acks := make([]jetsource.Ack, 8)
		errs := make([]error, 8)
		for i := range acks {
			wg.Go(func() { acks[i], errs[i] = s.Append(ctx, ev("users.C.renamed", `{"name":"same"}`)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("writer %d: %v", i, err)
			}
			if acks[i].Sequence != acks[0].Sequence {
				t.Errorf("writer %d got sequence %d, writer 0 %d", i, acks[i].Sequence, acks[0].Sequence)
			}
		}
		if n := count(t, base, "users.C.>"); n != 1 {
			t.Errorf("stored %d times, want once", n)
		}
	})
}

func TestContentDedupBatch(t *testing.T) {
	backends(t, func(t *testing.T, base jetsource.Store) {
		ctx := context.Background()
		s, err := jetsource.WithContentDedup(base)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.Append(ctx, ev("users.A.renamed", `{"name":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		acks, err := s.AppendBatch(ctx, []jetsource.Event{
			ev("users.A.renamed", `{"name":"x"}`), // duplicate of the stored one
			ev("users.B.renamed", `{"name":"x"}`), // new
			ev("users.B.renamed", `{"name":"x"}`), // duplicate of the previous
			ev("users.A.renamed", `{"name":"y"}`), // new
		})
		if err != nil {
			t.Fatal(err)
		}
		if !acks[0].Duplicate || acks[0].Sequence != stored.Sequence {
			t.Errorf("ack 0 = %+v, want duplicate of %d", acks[0], stored.Sequence)
		}
		if acks[1].Duplicate || !acks[2].Duplicate || acks[2].Sequence != acks[1].Sequence {
			t.Errorf("acks 1, 2 = %+v %+v", acks[1], acks[2])
		}
		if acks[3].Duplicate || acks[3].Sequence != acks[1].Sequence+1 {
			t.Errorf("ack 3 = %+v", acks[3])
		}
		if n := count(t, base, "users.>"); n != 3 {
			t.Errorf("stored %d events, want 3", n)
		}
		// Nothing but duplicates writes nothing.
		acks, err = s.AppendBatch(ctx, []jetsource.Event{ev("users.A.renamed", `{"name":"y"}`), ev("users.B.renamed", `{"name":"x"}`)})
		if err != nil || !acks[0].Duplicate || !acks[1].Duplicate {
			t.Fatalf("all duplicates: %+v %v", acks, err)
		}
		if n := count(t, base, "users.>"); n != 3 {
			t.Errorf("stored %d events, want 3", n)
		}
		// ... unless the caller's condition fails.
		_, err = s.AppendBatch(ctx, []jetsource.Event{ev("users.A.renamed", `{"name":"y"}`)}, jetsource.ExpectLast(subjects.MustParseFilter("users.A.>"), 1))
		if !errors.Is(err, jetsource.ErrConflict) {
			t.Errorf("all duplicates with a stale condition: %v, want conflict", err)
		}
	})
}

func count(t *testing.T, s jetsource.Store, filter string) int {
	t.Helper()
	n := 0
	for _, err := range s.Read(context.Background(), jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter(filter)}}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
