package jetstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// Reads remove their consumers when they end: thousands of short reads
// (one per command decision) must not pile up against the server's
// consumer limit.
func TestReadsLeaveNoConsumers(t *testing.T) {
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "R", Subjects: []string{"users.>"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "R")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"users.A.added", "users.A.renamed", "users.B.added"} {
		if _, err := st.Append(ctx, jetsource.Event{Subject: subjects.MustParse(s), Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	// Far more reads than the stream allows consumers.
	for i := range 100 {
		n := 0
		var seq func(func(jetsource.Event, error) bool)
		switch i % 3 {
		case 0:
			seq = st.Read(ctx, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}})
		case 1:
			seq = st.Load(ctx, subjects.MustParse("users.A"), 0)
		default:
			seq = st.Latest(ctx, subjects.MustParseFilter("users.>"))
		}
		for _, err := range seq {
			if err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			n++
		}
		if n == 0 {
			t.Fatalf("read %d found nothing", i)
		}
		// A read stopped early by its caller cleans up too.
		for _, err := range st.Read(ctx, jetsource.Query{}) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Consumers == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d consumers left after the reads ended", info.State.Consumers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// No message stops a read: every shape of the catalogue, published by a
// plain NATS client between good events, comes back from Read, Load and
// Latest (as a valid or a malformed event, with a nil error), and the good
// events after it come too.
func TestReadsGoOnPastMalformedMessages(t *testing.T) {
	srv := embeddedtest.Run(t)
	nc, js := newJetStream(t, srv)
	st := provision(t, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	appendGood := func(subject string) uint64 {
		t.Helper()
		ack, err := st.Append(ctx, jetsource.Event{Subject: subjects.MustParse(subject), Data: []byte(`{"ok":true}`)})
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	first := appendGood("users.m1.added")
	shapes, seqs := embeddedtest.PublishMalformed(t, nc, "users")
	// The good events after the catalogue: one on an aggregate of the
	// catalogue, one on another.
	last1 := appendGood("users.m1.renamed")
	last2 := appendGood("users.Z.added")

	// read collects a read, failing on any error.
	read := func(t *testing.T, seq func(func(jetsource.Event, error) bool)) map[uint64]jetsource.Event {
		t.Helper()
		got := map[uint64]jetsource.Event{}
		for e, err := range seq {
			if err != nil {
				t.Fatalf("read stopped with an error after %d events: %v", len(got), err)
			}
			got[e.Sequence] = e
		}
		return got
	}
	t.Run("Read", func(t *testing.T) {
		got := read(t, st.Read(ctx, jetsource.Query{}))
		for _, s := range []uint64{first, last1, last2} {
			if e, ok := got[s]; !ok || e.Malformed != nil {
				t.Errorf("good event %d missing or malformed: %+v", s, e)
			}
		}
		for i, s := range seqs {
			e, ok := got[s]
			if !ok {
				t.Errorf("shape %q (sequence %d) not delivered", shapes[i].Name, s)
				continue
			}
			if e.Malformed != nil && (e.Malformed.Subject != shapes[i].Msg.Subject || e.Malformed.Reason == "") {
				t.Errorf("shape %q: raw subject or reason lost: %+v", shapes[i].Name, e.Malformed)
			}
		}
	})
	t.Run("ReadFilteredSeesMalformedByRawSubject", func(t *testing.T) {
		// Two overlapping filters make the read filter on the client.
		got := read(t, st.Read(ctx, jetsource.Query{Filters: []subjects.Filter{
			subjects.MustParseFilter("users.*.added"), subjects.MustParseFilter("users.>"),
		}}))
		if len(got) != len(seqs)+3 {
			t.Fatalf("client-side filtered read got %d events, want %d", len(got), len(seqs)+3)
		}
		got = read(t, st.Read(ctx, jetsource.Query{Filters: []subjects.Filter{
			subjects.MustParseFilter("users.*.added"), subjects.MustParseFilter("users.Z.>"),
		}}))
		wild := seqs[4] // "wildcard token in the subject": users.*.added
		if e, ok := got[wild]; !ok || e.Malformed == nil || !e.Subject.IsZero() {
			t.Fatalf("malformed event on users.*.added not matched by its raw subject: %+v (ok %v)", e, ok)
		}
		if _, ok := got[last2]; !ok {
			t.Fatal("good event after the catalogue missing")
		}
	})
	t.Run("Load", func(t *testing.T) {
		got := read(t, st.Load(ctx, subjects.MustParse("users.m1"), 0))
		if _, ok := got[last1]; !ok || len(got) != 3 {
			t.Fatalf("Load users.m1 got %d events (want 3: good, 0.3, good): %v", len(got), got)
		}
		if got = read(t, st.Load(ctx, subjects.MustParse("users.m3"), 0)); len(got) != 1 || got[seqs[2]].Malformed == nil {
			t.Fatalf("Load users.m3: got %+v, want the malformed event", got)
		}
	})
	t.Run("Latest", func(t *testing.T) {
		got := read(t, st.Latest(ctx, subjects.MustParseFilter("users.>")))
		if _, ok := got[last2]; !ok {
			t.Fatal("Latest lost the good event after the catalogue")
		}
		// One per subject: the 17 of the catalogue (the 0.3 event is the
		// latest on users.m1.added), users.m1.renamed and users.Z.added.
		if len(got) != len(seqs)+2 {
			t.Fatalf("Latest got %d subjects, want %d", len(got), len(seqs)+2)
		}
	})
}
