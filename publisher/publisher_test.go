package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/publisher"
	"github.com/jetsource/jetsource/subjects"
)

var streams atomic.Int64

// newStore provisions a fresh stream capturing root.> on srv.
func newStore(t *testing.T, nc *nats.Conn, root string, opts ...jetstore.Option) *jetstore.Store {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("P%d", streams.Add(1))
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: name, Subjects: []string{root + ".>"}}); err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newPublisher(t *testing.T, st *jetstore.Store, opts ...publisher.Option) *publisher.Publisher {
	t.Helper()
	p, err := publisher.New(st, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func ev(t testing.TB, subject, data string) jetsource.Event {
	t.Helper()
	return jetsource.Event{Subject: subjects.MustParse(subject), Data: []byte(data)}
}

func readAll(t *testing.T, st jetsource.Store) []jetsource.Event {
	t.Helper()
	var out []jetsource.Event
	for e, err := range st.Read(context.Background(), jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestPipelinedChainsKeepOrderPerAggregate(t *testing.T) {
	srv := embeddedtest.Run(t)
	st := newStore(t, embeddedtest.Connect(t, srv), "t")
	p := newPublisher(t, st)
	ctx := context.Background()
	const aggs, each = 50, 40
	for i := range each {
		for a := range aggs {
			opt := publisher.ExpectPrevious()
			if i == 0 {
				opt = jetsource.ExpectSequence(0)
			}
			if _, err := p.Append(ctx, ev(t, fmt.Sprintf("t.A%d.step", a), fmt.Sprintf(`{"i":%d}`, i)), opt); err != nil {
				t.Fatal(err)
			}
		}
	}
	results, err := p.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != aggs*each {
		t.Fatalf("got %d results, want %d", len(results), aggs*each)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("append %s: %v", r.Subject, r.Err)
		}
	}
	evs := readAll(t, st)
	if len(evs) != aggs*each {
		t.Fatalf("stored %d events, want %d", len(evs), aggs*each)
	}
	next := map[string]int{}
	for _, e := range evs {
		want := fmt.Sprintf(`{"i":%d}`, next[e.Subject.String()])
		if string(e.Data) != want {
			t.Fatalf("%s at %d: got %s, want %s: order within an aggregate is the order of the appends", e.Subject, e.Sequence, e.Data, want)
		}
		next[e.Subject.String()]++
	}
}

func TestConflictSettlesOthersAndLeavesNoHoles(t *testing.T) {
	srv := embeddedtest.Run(t)
	st := newStore(t, embeddedtest.Connect(t, srv), "t")
	ctx := context.Background()
	if _, err := st.Append(ctx, ev(t, "t.X.created", `{}`)); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, st)
	var futs []*publisher.Future
	for a := range 20 {
		for i := range 5 {
			opt := publisher.ExpectPrevious()
			if i == 0 {
				opt = jetsource.ExpectSequence(0) // fails for X, which exists
			}
			subj := fmt.Sprintf("t.A%d.step", a)
			if a == 7 {
				subj = "t.X.step"
			}
			f, err := p.Append(ctx, ev(t, subj, fmt.Sprintf(`{"i":%d}`, i)), opt)
			if err != nil {
				t.Fatal(err)
			}
			futs = append(futs, f)
		}
	}
	results, err := p.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		switch {
		case r.Subject.String() == "t.X.step" && i%5 == 0:
			if !errors.Is(r.Err, jetsource.ErrConflict) {
				t.Errorf("X's first append: got %v, want ErrConflict", r.Err)
			}
		case r.Subject.String() == "t.X.step":
			if !errors.Is(r.Err, publisher.ErrAggregateFailed) || !errors.Is(r.Err, jetsource.ErrConflict) {
				t.Errorf("X's later appends: got %v, want ErrAggregateFailed wrapping the conflict", r.Err)
			}
		case r.Err != nil:
			t.Errorf("%s: other aggregates proceed; got %v", r.Subject, r.Err)
		}
	}
	if ack, err := futs[0].Wait(ctx); err != nil || ack.Sequence == 0 {
		t.Fatalf("future: %+v %v", ack, err)
	}
	for _, e := range readAll(t, st) {
		if e.Subject.String() == "t.X.step" {
			t.Fatalf("no holes: an append after X's failed one was stored at %d", e.Sequence)
		}
	}
	// After Flush the aggregate accepts appends again.
	f, err := p.Append(ctx, ev(t, "t.X.step", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Wait(ctx); err != nil {
		t.Fatalf("after Flush the failure is cleared; got %v", err)
	}
}

func TestDuplicateIDsInOneBatch(t *testing.T) {
	srv := embeddedtest.Run(t)
	st := newStore(t, embeddedtest.Connect(t, srv), "t")
	p := newPublisher(t, st)
	ctx := context.Background()
	for i := range 10 {
		e := ev(t, fmt.Sprintf("t.A%d.x", i), `{}`)
		e.ID = fmt.Sprintf("id-%d", i%5)
		if _, err := p.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	results, err := p.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The same id on another subject is a reuse with other content
	// (issue 9): refused, never a silent duplicate.
	dups := 0
	for _, r := range results {
		if errors.Is(r.Err, jetsource.ErrIDReused) {
			dups++
			continue
		}
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Subject, r.Err)
		}
	}
	if n := len(readAll(t, st)); n != 5 || dups != 5 {
		t.Fatalf("each id is stored once: %d stored, %d reuses refused", n, dups)
	}
}

func TestBoundaryConditionsAcrossUnits(t *testing.T) {
	srv := embeddedtest.Run(t)
	st := newStore(t, embeddedtest.Connect(t, srv), "t")
	p := newPublisher(t, st)
	ctx := context.Background()
	boundary := subjects.MustParseFilter("t.*.seat")
	for round := range 20 {
		pos, err := st.LastSequence(ctx, subjects.All())
		if err != nil {
			t.Fatal(err)
		}
		// Every writer claims the boundary after the same read: one wins.
		for w := range 10 {
			if _, err := p.Append(ctx, ev(t, fmt.Sprintf("t.W%d.seat", w), fmt.Sprintf(`{"round":%d}`, round)), jetsource.ExpectNoneAfter(pos, boundary)); err != nil {
				t.Fatal(err)
			}
		}
		results, err := p.Flush(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wins := 0
		for _, r := range results {
			switch {
			case r.Err == nil:
				wins++
			case !errors.Is(r.Err, jetsource.ErrConflict):
				t.Fatalf("unexpected error: %v", r.Err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d writers won the boundary, want exactly 1", round, wins)
		}
	}
}

func TestUnconditionalAndConditionalInterleaved(t *testing.T) {
	srv := embeddedtest.Run(t)
	st := newStore(t, embeddedtest.Connect(t, srv), "t")
	p := newPublisher(t, st)
	ctx := context.Background()
	pos, _ := st.LastSequence(ctx, subjects.All())
	// B.x is appended first without a condition; A.x then claims "no t.*.x
	// after pos". Whatever the batching, the stream must never hold a t.*.x
	// event between pos and a successful A.x.
	for range 50 {
		if _, err := p.Append(ctx, ev(t, "t.B.x", `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	fa, err := p.Append(ctx, ev(t, "t.A.x", `{}`), jetsource.ExpectNoneAfter(pos, subjects.MustParseFilter("t.*.x")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ack, err := fa.Wait(ctx)
	if err == nil {
		for _, e := range readAll(t, st) {
			if e.Sequence > pos && e.Sequence < ack.Sequence {
				t.Fatalf("A.x succeeded at %d although %s was stored at %d after the read position %d", ack.Sequence, e.Subject, e.Sequence, pos)
			}
		}
	} else if !errors.Is(err, jetsource.ErrConflict) {
		t.Fatal(err)
	}
}

func TestBadInputAndClose(t *testing.T) {
	srv := embeddedtest.Run(t)
	st := newStore(t, embeddedtest.Connect(t, srv), "t")
	ctx := context.Background()
	if _, err := publisher.New(st, publisher.WithWindow(0)); !errors.Is(err, publisher.ErrInvalidOption) {
		t.Fatalf("window 0: got %v", err)
	}
	if _, err := publisher.New(st, publisher.WithMaxBatch(jetsource.MaxBatch+1)); !errors.Is(err, publisher.ErrInvalidOption) {
		t.Fatalf("max batch: got %v", err)
	}
	p, err := publisher.New(st, publisher.WithWindow(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(ctx, ev(t, "t.A.x", `{"bad`)); !errors.Is(err, jetsource.ErrInvalidData) {
		t.Fatalf("invalid data is refused before queueing; got %v", err)
	}
	if _, err := p.Append(ctx, ev(t, "t.A.x", `{}`), publisher.ExpectPrevious()); !errors.Is(err, jetsource.ErrInvalidOption) {
		t.Fatalf("ExpectPrevious without a previous append; got %v", err)
	}
	if _, err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(ctx, ev(t, "t.A.x", `{}`)); !errors.Is(err, publisher.ErrClosed) {
		t.Fatalf("after Close: got %v", err)
	}
	if _, err := p.Close(ctx); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if n := len(readAll(t, st)); n != 0 {
		t.Fatalf("bad input wrote %d events", n)
	}
}

func TestWindowBlocksUntilContextEnds(t *testing.T) {
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	st := newStore(t, nc, "t")
	p := newPublisher(t, st, publisher.WithWindow(1), publisher.WithTimeout(2*time.Second))
	// Make the server slow to answer by closing the connection: the first
	// append occupies the window until its batch fails.
	nc.Close()
	ctx := context.Background()
	if _, err := p.Append(ctx, ev(t, "t.A.x", `{}`)); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := p.Append(short, ev(t, "t.B.x", `{}`)); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a full window blocks until ctx ends; got %v", err)
	}
	results, err := p.Flush(ctx)
	if err != nil || len(results) == 0 || !errors.Is(results[0].Err, jetsource.ErrUnavailable) {
		t.Fatalf("an append on a closed connection fails with ErrUnavailable; got %+v, %v", results, err)
	}
}

func TestRestartDuringPipelinedImportLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a durable server under a pipelined import")
	}
	srv := embeddedtest.RunDurable(t)
	nc := embeddedtest.Connect(t, srv, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	st := newStore(t, nc, "t", jetstore.WithTimeout(500*time.Millisecond))
	p := newPublisher(t, st, publisher.WithTimeout(time.Second))
	ctx := context.Background()
	const total = 3000
	events := make([]jetsource.Event, total)
	for i := range events {
		events[i] = ev(t, fmt.Sprintf("t.A%d.imported", i%37), fmt.Sprintf(`{"i":%d}`, i))
		events[i].ID = fmt.Sprintf("import-%d", i)
	}
	acked := map[string]uint64{}
	restarts := 0
	todo := events
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt > 50 {
			t.Fatalf("%d events still failing after %d attempts", len(todo), attempt)
		}
		for i, e := range todo {
			if _, err := p.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
			if restarts < 3 && attempt == 0 && i > 0 && i%(total/4) == 0 {
				srv = embeddedtest.Restart(t, srv)
				restarts++
			}
		}
		results, err := p.Flush(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var again []jetsource.Event
		for i, r := range results {
			if r.Err != nil {
				again = append(again, todo[i]) // retry with the same id
				continue
			}
			acked[r.ID] = r.Ack.Sequence
		}
		todo = again
	}
	if restarts != 3 {
		t.Fatalf("restarted %d times", restarts)
	}
	var stored []jetsource.Event
	for e, err := range st.Read(ctx, jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, e)
	}
	seen := map[string]int{}
	for _, e := range stored {
		seen[e.ID]++
		if seen[e.ID] > 1 {
			t.Fatalf("event %s stored twice", e.ID)
		}
		if want, ok := acked[e.ID]; ok && want != e.Sequence {
			t.Fatalf("event %s acked at %d but stored at %d", e.ID, want, e.Sequence)
		}
	}
	if len(acked) != total || len(stored) != total {
		t.Fatalf("acked %d, stored %d, want %d", len(acked), len(stored), total)
	}
}

// One event the stream refuses (too large, or on a subject no stream
// captures) fails alone; the others of its batch are stored.
func TestOneBadEventDoesNotFailItsBatch(t *testing.T) {
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "SMALL", Subjects: []string{"s.>"}, MaxMsgSize: 2048}); err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "SMALL")
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, st)
	big := `{"pad":"` + strings.Repeat("x", 4096) + `"}`
	for i := range 60 {
		e := ev(t, fmt.Sprintf("s.A%d.step", i), `{}`)
		switch i {
		case 17:
			e.Data = []byte(big)
		case 31:
			e.Subject = subjects.MustParse("elsewhere.A.step")
		}
		_, err := p.Append(ctx, e)
		if i == 31 {
			// Refused at once, before it is queued.
			if !errors.Is(err, jetsource.ErrStreamNotFound) || !errors.Is(err, jetsource.ErrForbiddenSubject) {
				t.Errorf("uncaptured subject: %v, want ErrForbiddenSubject and ErrStreamNotFound", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	results, err := p.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		switch i {
		case 17:
			if !errors.Is(r.Err, jetsource.ErrPayloadTooLarge) {
				t.Errorf("big event: %v, want ErrPayloadTooLarge", r.Err)
			}
		default:
			if r.Err != nil {
				t.Errorf("event %d: %v", i, r.Err)
			}
		}
	}
	if n := len(readAll(t, st)); n != 58 {
		t.Errorf("stored %d events, want 58", n)
	}
}

// Issue 9, point 1: the publisher refuses a forbidden subject when the
// append is made, before anything is queued or sent, and the other appends
// of the moment go through.
func TestForbiddenSubjectRefusedAtOnce(t *testing.T) {
	srv := embeddedtest.Run(t)
	st := newStore(t, embeddedtest.Connect(t, srv), "f")
	p := newPublisher(t, st)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, subj := range []string{"$JS.API.STREAM.DELETE." + st.Stream(), "_INBOX.x.y", "cmd.Do", "other.a.added"} {
		fut, err := p.Append(ctx, ev(t, subj, `{}`))
		if !errors.Is(err, jetsource.ErrForbiddenSubject) || fut != nil {
			t.Fatalf("%s: got %v, %v; want ErrForbiddenSubject at once", subj, fut, err)
		}
	}
	fut, err := p.Append(ctx, ev(t, "f.a.added", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fut.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, st); len(got) != 1 {
		t.Fatalf("%d events stored, want 1", len(got))
	}
}
