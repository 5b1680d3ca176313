package jetstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// Issue 9, point 5: after a lost answer, every result must say what is
// true. An event this call stored is not a duplicate, whichever path the
// retry took (a plain resend, a condition its own event broke, a batch
// refused for holding stored ids); a later call with the same ids is.
func TestLostAnswerIsNotADuplicate(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	provision(t, js, jetstore.StreamConfig{Name: "LOST", Subjects: []string{"lost.>"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := jetstore.New(ctx, js, "LOST")
	if err != nil {
		t.Fatal(err)
	}
	// lose drops the answers of the next n publishes.
	var lost atomic.Int64
	jetstore.SetLoseAck(st, func() bool { return lost.Add(-1) >= 0 })
	lose := func(n int64) { lost.Store(n) }

	type result struct {
		acks []jetsource.Ack
		err  error
	}
	one := func(ack jetsource.Ack, err error) result { return result{[]jetsource.Ack{ack}, err} }
	var n atomic.Int64
	ev := func(agg string) jetsource.Event {
		e := event(fmt.Sprintf("lost.%s.happened", agg), fmt.Sprintf(`{"n":%d}`, n.Add(1)))
		e.ID = jetsource.NewID()
		return e
	}
	cases := []struct {
		name string
		// run appends fresh events; again appends the same ones.
		run func() (result, func() result)
	}{
		{"Append", func() (result, func() result) {
			e := ev("a")
			return one(st.Append(ctx, e)), func() result { return one(st.Append(ctx, e)) }
		}},
		{"AppendExpectSequence", func() (result, func() result) {
			e := ev("b")
			last, _ := st.LastSequence(ctx, subjects.MustParseFilter("lost.b.>"))
			return one(st.Append(ctx, e, jetsource.ExpectSequence(last))), func() result { return one(st.Append(ctx, e, jetsource.ExpectSequence(last))) }
		}},
		{"AppendTwoFilters", func() (result, func() result) {
			e := ev("c")
			pos := lastSequence(t, st)
			opt := jetsource.ExpectNoneAfter(pos, subjects.MustParseFilter("lost.c.>"), subjects.MustParseFilter("lost.d.>"))
			return one(st.Append(ctx, e, opt)), func() result { return one(st.Append(ctx, e, opt)) }
		}},
		{"AppendBatch", func() (result, func() result) {
			evs := []jetsource.Event{ev("e"), ev("e")}
			acks, err := st.AppendBatch(ctx, evs)
			return result{acks, err}, func() result { acks, err := st.AppendBatch(ctx, evs); return result{acks, err} }
		}},
		{"AppendBatchWithCondition", func() (result, func() result) {
			evs := []jetsource.Event{ev("f"), ev("f")}
			last, _ := st.LastSequence(ctx, subjects.MustParseFilter("lost.f.>"))
			opt := jetsource.ExpectLast(subjects.MustParseFilter("lost.f.>"), last)
			acks, err := st.AppendBatch(ctx, evs, opt)
			return result{acks, err}, func() result { acks, err := st.AppendBatch(ctx, evs, opt); return result{acks, err} }
		}},
	}
	for _, c := range cases {
		for _, lostAnswers := range []int64{1, 1000} {
			t.Run(fmt.Sprintf("%s/%dLost", c.name, lostAnswers), func(t *testing.T) {
				// 1: the first answer is lost, a resend is answered.
				// 1000: every answer is lost; the store looks it up.
				lose(lostAnswers)
				before := lastSequence(t, st)
				got, again := c.run()
				lose(0)
				if got.err != nil {
					t.Fatalf("stored, answer lost: got %v, want the acks", got.err)
				}
				for i, a := range got.acks {
					if a.Duplicate || a.Sequence <= before {
						t.Errorf("ack %d: %+v; want a new event after %d, not a duplicate: this call stored it", i, a, before)
					}
				}
				dup := again()
				if dup.err != nil {
					t.Fatalf("the same again: %v", dup.err)
				}
				for i, a := range dup.acks {
					if !a.Duplicate || a.Sequence != got.acks[i].Sequence {
						t.Errorf("the same again, ack %d: %+v; want a duplicate of %+v", i, a, got.acks[i])
					}
				}
			})
		}
	}
}

// When the store cannot find out whether an append was stored, it says
// so with the ids to look up, never "nothing written".
func TestUnknownOutcome(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv, reconnecting()...)
	st := provision(t, js, jetstore.StreamConfig{Name: "GONE", Subjects: []string{"gone.>"}}, jetstore.WithTimeout(300*time.Millisecond))
	srv.Shutdown()
	e := event("gone.a.added", `{}`)
	e.ID = "evt-unknown"
	_, err := st.Append(context.Background(), e)
	var ue *jetsource.UnknownOutcomeError
	if !errors.As(err, &ue) || len(ue.IDs) != 1 || ue.IDs[0] != e.ID || !errors.Is(err, jetsource.ErrUnavailable) {
		t.Fatalf("Append to a server gone mid-request: got %v, want an UnknownOutcomeError naming %s", err, e.ID)
	}
	_, err = st.AppendBatch(context.Background(), []jetsource.Event{event("gone.a.x", `{}`), event("gone.a.y", `{}`)}, jetsource.WithTransactionID("tx-unknown"))
	if !errors.As(err, &ue) || ue.TransactionID != "tx-unknown" || len(ue.IDs) != 2 {
		t.Fatalf("AppendBatch to a server gone mid-request: got %v, want an UnknownOutcomeError naming tx-unknown", err)
	}
}

// Across server restarts, each answer is true: an acknowledged event is
// stored where the ack says (and is not a duplicate: every id is new), an
// error other than ErrUnknownOutcome means it is not stored.
func TestRestartAnswersAreTrue(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server")
	}
	srv := embeddedtest.RunDurable(t)
	_, js := newJetStream(t, srv, reconnecting()...)
	st := provision(t, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}, jetstore.WithTimeout(300*time.Millisecond))

	type answer struct {
		ids  []string
		acks []jetsource.Ack
		err  error
	}
	var mu sync.Mutex
	var answers []answer
	record := func(ids []string, acks []jetsource.Ack, err error) {
		mu.Lock()
		defer mu.Unlock()
		answers = append(answers, answer{ids, acks, err})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(answers) }
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				agg := fmt.Sprintf("users.w%d", w)
				switch i % 3 {
				case 0:
					e := event(agg+".added", `{}`)
					e.ID = jetsource.NewID()
					ack, err := st.Append(ctx, e)
					record([]string{e.ID}, []jetsource.Ack{ack}, err)
				case 1:
					e := event(agg+".renamed", `{}`)
					e.ID = jetsource.NewID()
					last, err := st.LastSequence(ctx, subjects.MustParseFilter(agg+".>"))
					if err != nil {
						continue
					}
					ack, err := st.Append(ctx, e, jetsource.ExpectSequence(last))
					if errors.Is(err, jetsource.ErrConflict) && !errors.Is(err, jetsource.ErrUnknownOutcome) {
						err = nil // a true conflict: nothing stored, checked below
						ack = jetsource.Ack{}
					}
					record([]string{e.ID}, []jetsource.Ack{ack}, err)
				case 2:
					evs := []jetsource.Event{event(agg+".x", `{}`), event(agg+".y", `{}`)}
					evs[0].ID, evs[1].ID = jetsource.NewID(), jetsource.NewID()
					acks, err := st.AppendBatch(ctx, evs)
					record([]string{evs[0].ID, evs[1].ID}, acks, err)
				}
			}
		})
	}
	wait := func(n int) {
		checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
			if got := count(); got < n {
				return fmt.Errorf("%d answers, waiting for %d", got, n)
			}
			return nil
		})
	}
	wait(20)
	for range 2 {
		n := count()
		srv = embeddedtest.Restart(t, srv)
		wait(n + 20)
	}
	stop()
	wg.Wait()

	reader, err := jetstore.New(context.Background(), js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	at := map[string]uint64{}
	for _, e := range readAll(t, reader, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}}) {
		at[e.ID] = e.Sequence
	}
	unknown, failed := 0, 0
	for _, a := range answers {
		switch {
		case errors.Is(a.err, jetsource.ErrUnknownOutcome):
			unknown++
		case errors.Is(a.err, context.Canceled):
		case a.err != nil:
			failed++
			for _, id := range a.ids {
				if seq, ok := at[id]; ok {
					t.Errorf("answered %v, but %s is stored at %d", a.err, id, seq)
				}
			}
		case a.acks[0].Sequence == 0: // a true conflict
			if seq, ok := at[a.ids[0]]; ok {
				t.Errorf("answered a conflict, but %s is stored at %d", a.ids[0], seq)
			}
		default:
			for i, id := range a.ids {
				if a.acks[i].Duplicate || at[id] != a.acks[i].Sequence {
					t.Errorf("%s acknowledged at %+v, stored at %d", id, a.acks[i], at[id])
				}
			}
		}
	}
	t.Logf("%d answers: %d unknown, %d failed", len(answers), unknown, failed)
}

// A lost answer must not turn a duplicate into a new event: when the
// events were stored by an earlier call, the resent append of a later call
// is answered with their acks as duplicates, whichever path the retry
// took. (The events carry no time, so each call prepares its own, as
// "jetsource import" does for lines without a time.)
func TestLostAnswerOfADuplicate(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	provision(t, js, jetstore.StreamConfig{Name: "AGAIN", Subjects: []string{"again.>"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := jetstore.New(ctx, js, "AGAIN")
	if err != nil {
		t.Fatal(err)
	}
	var lost atomic.Int64
	jetstore.SetLoseAck(st, func() bool { return lost.Add(-1) >= 0 })
	var n atomic.Int64
	ev := func(agg string) jetsource.Event {
		e := event(fmt.Sprintf("again.%s.happened", agg), fmt.Sprintf(`{"n":%d}`, n.Add(1)))
		e.ID = jetsource.NewID()
		return e
	}
	cases := []struct {
		name string
		// events returns the events of the case, appended by append.
		events func() []jetsource.Event
		append func([]jetsource.Event) ([]jetsource.Ack, error)
	}{
		{"Append", func() []jetsource.Event { return []jetsource.Event{ev("a")} },
			func(evs []jetsource.Event) ([]jetsource.Ack, error) {
				ack, err := st.Append(ctx, evs[0])
				return []jetsource.Ack{ack}, err
			}},
		{"AppendTwoFilters", func() []jetsource.Event { return []jetsource.Event{ev("c")} },
			func(evs []jetsource.Event) ([]jetsource.Ack, error) {
				opt := jetsource.ExpectNoneAfter(0, subjects.MustParseFilter("again.none1.>"), subjects.MustParseFilter("again.none2.>"))
				ack, err := st.Append(ctx, evs[0], opt)
				return []jetsource.Ack{ack}, err
			}},
		{"AppendBatch", func() []jetsource.Event { return []jetsource.Event{ev("e"), ev("e")} },
			func(evs []jetsource.Event) ([]jetsource.Ack, error) { return st.AppendBatch(ctx, evs) }},
		{"AppendPrepared", func() []jetsource.Event { return []jetsource.Event{ev("p"), ev("q")} },
			func(evs []jetsource.Event) ([]jetsource.Ack, error) {
				prepared := make([]jetsource.Event, len(evs))
				for i, e := range evs {
					p, err := jetsource.Prepare(e, st.Source(), time.Now())
					if err != nil {
						return nil, err
					}
					prepared[i] = p
				}
				return st.AppendPrepared(ctx, prepared, nil)
			}},
	}
	for _, c := range cases {
		for _, lostAnswers := range []int64{1, 1000} {
			t.Run(fmt.Sprintf("%s/%dLost", c.name, lostAnswers), func(t *testing.T) {
				evs := c.events()
				first, err := c.append(evs)
				if err != nil {
					t.Fatalf("first append: %v", err)
				}
				lost.Store(lostAnswers)
				again, err := c.append(evs)
				lost.Store(0)
				if err != nil {
					t.Fatalf("the same again, answer lost: %v", err)
				}
				for i, a := range again {
					if !a.Duplicate || a.Sequence != first[i].Sequence {
						t.Errorf("the same again, answer lost, ack %d: %+v; want a duplicate of %+v (an earlier call stored it)", i, a, first[i])
					}
				}
			})
		}
	}
}
