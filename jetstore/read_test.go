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
