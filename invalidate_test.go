package jetsource_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

func TestInvalidate(t *testing.T) {
	backends(t, func(t *testing.T, s jetsource.Store) {
		ctx := context.Background()
		bad, err := s.AppendBatch(ctx, []jetsource.Event{ev("users.A.added", `{"n":1}`), ev("users.B.added", `{"n":2}`)}, jetsource.WithTransactionID("tx-bad"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendBatch(ctx, []jetsource.Event{ev("users.A.renamed", `{"n":3}`)}, jetsource.WithTransactionID("tx-good")); err != nil {
			t.Fatal(err)
		}
		single := ev("users.C.added", `{"n":4}`)
		single.ID = "lonely.event"
		if _, err := s.Append(ctx, single); err != nil {
			t.Fatal(err)
		}

		ack, err := jetsource.Invalidate(ctx, s, jetsource.Invalidation{Transaction: "tx-bad", Reason: "produced by a broken importer", Actor: "ops"})
		if err != nil {
			t.Fatal(err)
		}
		if ack.Sequence <= bad[1].Sequence || ack.Duplicate {
			t.Fatalf("invalidation ack %+v", ack)
		}
		again, err := jetsource.Invalidate(ctx, s, jetsource.Invalidation{Transaction: "tx-bad", Reason: "twice"})
		if err != nil || !again.Duplicate || again.Sequence != ack.Sequence {
			t.Fatalf("second invalidation: %+v %v, want duplicate of %d", again, err, ack.Sequence)
		}
		if _, err := jetsource.Invalidate(ctx, s, jetsource.Invalidation{Transaction: "lonely.event"}); err != nil {
			t.Fatal(err)
		}

		set, err := jetsource.ReadInvalidations(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		inv := set["tx-bad"]
		if len(set) != 2 || inv.Reason != "produced by a broken importer" || inv.Actor != "ops" || inv.Sequence != ack.Sequence {
			t.Errorf("invalidations = %+v", set)
		}

		// The audit view (the plain store) still has everything.
		if n := count(t, s, "users.>"); n != 4 {
			t.Errorf("plain read: %d events, want 4", n)
		}
		valid := jetsource.WithoutInvalidated(s)
		got := subjectsOf(t, valid.Read(ctx, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}}))
		if want := []string{"users.A.renamed"}; !slices.Equal(got, want) {
			t.Errorf("valid read = %v, want %v", got, want)
		}
		got = subjectsOf(t, valid.Load(ctx, subjects.MustParse("users.A"), 0))
		if want := []string{"users.A.renamed"}; !slices.Equal(got, want) {
			t.Errorf("valid load = %v, want %v", got, want)
		}
		got = subjectsOf(t, valid.Latest(ctx, subjects.MustParseFilter("users.>")))
		if want := []string{"users.A.renamed"}; !slices.Equal(got, want) {
			t.Errorf("valid latest = %v, want %v", got, want)
		}
		// A reader of everything sees the invalidation events too.
		got = subjectsOf(t, valid.Read(ctx, jetsource.Query{}))
		if len(got) != 3 || got[1] != "jetsource.transactions.tx-bad.invalidated" {
			t.Errorf("valid read of everything = %v", got)
		}
		// Limit counts only what is yielded.
		got = subjectsOf(t, valid.Read(ctx, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}, Limit: 1}))
		if want := []string{"users.A.renamed"}; !slices.Equal(got, want) {
			t.Errorf("valid read with limit = %v, want %v", got, want)
		}
	})
}

// A follower skips events of a transaction once its invalidation arrived.
func TestInvalidateFollow(t *testing.T) {
	backends(t, func(t *testing.T, s jetsource.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := jetsource.Invalidate(ctx, s, jetsource.Invalidation{Transaction: "tx-late"}, jetsource.AllowUnknownTransaction()); err != nil {
			t.Fatal(err)
		}
		valid := jetsource.WithoutInvalidated(s)
		got := make(chan string, 10)
		go func() {
			for e, err := range valid.Read(ctx, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}, Follow: true}) {
				if err != nil {
					return
				}
				got <- e.Subject.String()
			}
		}()
		// Invalidated before it was written (ids can be known in advance).
		if _, err := s.AppendBatch(ctx, []jetsource.Event{ev("users.A.added", `{}`)}, jetsource.WithTransactionID("tx-late")); err != nil {
			t.Fatal(err)
		}
		if _, err := jetsource.Invalidate(ctx, s, jetsource.Invalidation{Transaction: "tx-next"}, jetsource.AllowUnknownTransaction()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendBatch(ctx, []jetsource.Event{ev("users.B.added", `{}`)}, jetsource.WithTransactionID("tx-next")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, ev("users.C.added", `{}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case subj := <-got:
			if subj != "users.C.added" {
				t.Errorf("follower got %s first, want users.C.added", subj)
			}
		case <-ctx.Done():
			t.Fatal("follower got nothing")
		}
	})
}

// An invalidation of a transaction no event carries (a typo) is refused
// and writes nothing, unless it is allowed explicitly.
func TestInvalidateUnknownTransaction(t *testing.T) {
	backends(t, func(t *testing.T, s jetsource.Store) {
		ctx := context.Background()
		if _, err := s.AppendBatch(ctx, []jetsource.Event{ev("users.A.added", `{}`)}, jetsource.WithTransactionID("tx-real")); err != nil {
			t.Fatal(err)
		}
		single := ev("users.B.added", `{}`)
		single.ID = "evt-alone"
		if _, err := s.Append(ctx, single); err != nil {
			t.Fatal(err)
		}
		for _, tx := range []string{"nosuchtx", "tx-rea", "users.A.added"} {
			if _, err := jetsource.Invalidate(ctx, s, jetsource.Invalidation{Transaction: tx, Reason: "typo"}); !errors.Is(err, jetsource.ErrUnknownTransaction) || !strings.Contains(err.Error(), strconv.Quote(tx)) {
				t.Fatalf("Invalidate(%q): %v, want ErrUnknownTransaction naming it", tx, err)
			}
		}
		set, err := jetsource.ReadInvalidations(ctx, s)
		if err != nil || len(set) != 0 {
			t.Fatalf("refused invalidations were recorded: %v %v", set, err)
		}
		for _, tx := range []string{"tx-real", "evt-alone"} {
			e, err := jetsource.FindTransaction(ctx, s, tx)
			if err != nil || (e.TransactionID != tx && e.ID != tx) {
				t.Fatalf("FindTransaction(%q) = %+v, %v", tx, e, err)
			}
			if _, err := jetsource.Invalidate(ctx, s, jetsource.Invalidation{Transaction: tx}); err != nil {
				t.Fatalf("Invalidate(%q): %v", tx, err)
			}
		}
		// An invalidation is no transaction of its own.
		if _, err := jetsource.FindTransaction(ctx, s, "invalidate-tx-real"); !errors.Is(err, jetsource.ErrUnknownTransaction) {
			t.Fatalf("an invalidation event counted as a transaction: %v", err)
		}
		ack, err := jetsource.Invalidate(ctx, s, jetsource.Invalidation{Transaction: "nosuchtx"}, jetsource.AllowUnknownTransaction())
		if err != nil || ack.Duplicate {
			t.Fatalf("allowed unknown: %+v %v", ack, err)
		}
		// Invalidating it again is a duplicate, allowed or not.
		again, err := jetsource.Invalidate(ctx, s, jetsource.Invalidation{Transaction: "nosuchtx"})
		if err != nil || !again.Duplicate || again.Sequence != ack.Sequence {
			t.Fatalf("again: %+v %v", again, err)
		}
	})
}

func TestInvalidateBadInput(t *testing.T) {
	s, err := jetsource.NewMemoryStore()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jetsource.Invalidate(context.Background(), s, jetsource.Invalidation{}); !errors.Is(err, jetsource.ErrInvalidOption) {
		t.Errorf("empty transaction: %v", err)
	}
	// Odd ids are escaped into one token.
	subj, err := jetsource.InvalidationSubject("a.b c*>")
	if err != nil || subj.NumTokens() != 4 {
		t.Errorf("subject %q %v", subj, err)
	}
	if _, err := jetsource.Invalidate(context.Background(), s, jetsource.Invalidation{Transaction: "a.b c*>"}, jetsource.AllowUnknownTransaction()); err != nil {
		t.Fatal(err)
	}
	set, err := jetsource.ReadInvalidations(context.Background(), s)
	if _, ok := set["a.b c*>"]; err != nil || !ok {
		t.Errorf("set %v %v", set, err)
	}
}

func subjectsOf(t *testing.T, seq func(func(jetsource.Event, error) bool)) []string {
	t.Helper()
	var out []string
	for e, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Subject.String())
	}
	return out
}
