package jetstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// These examples need a running NATS server with JetStream, so they are
// compiled but not run.

func ExampleProvision() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}

	// Create the event stream, or bring it to this configuration. Running
	// it again is harmless.
	_, err = jetstore.Provision(context.Background(), js, jetstore.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"users.>", "orders.>"},
	})
	if err != nil {
		log.Fatal(err)
	}
}

func ExampleNew() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}

	store, err := jetstore.New(context.Background(), js, "EVENTS", jetstore.WithTimeout(2*time.Second))
	if errors.Is(err, jetsource.ErrStreamNotFound) {
		log.Fatal("the stream EVENTS does not exist: provision it first")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("events stored on", store.Stream())
}

// Append an event only if the aggregate did not change since it was read:
// the expected sequence is that of the aggregate's last event (0: none).
func ExampleStore_Append() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	store, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		log.Fatal(err)
	}

	// The last event of users.A: the events under users.A.>.
	subject := subjects.MustParse("users.A.renamed")
	last, err := store.LastSequence(ctx, subject.AggregateFilter())
	if err != nil {
		log.Fatal(err)
	}
	ack, err := store.Append(ctx, jetsource.Event{
		Subject: subject,
		Data:    []byte(`{"name":"Anna"}`),
	}, jetsource.ExpectSequence(last))
	var conflict *jetsource.ConflictError
	switch {
	case errors.As(err, &conflict):
		fmt.Println("users.A changed meanwhile, now at", conflict.Current)
	case err != nil:
		log.Fatal(err)
	case ack.Duplicate:
		fmt.Println("already stored at", ack.Sequence)
	default:
		fmt.Println("stored at", ack.Sequence)
	}
}

// On a replicated stream that other clients also write to without
// conditions (plain publishes, appends without expectations), strict mode
// keeps a consistency boundary race-free: the append also expects the
// stream's last sequence, and is retried while only unrelated events move
// the stream.
func ExampleWithStrict() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	store, err := jetstore.New(ctx, js, "EVENTS", jetstore.WithStrict())
	if err != nil {
		log.Fatal(err)
	}

	// Decide on the seats of show 7, then book one if no seat of show 7
	// was booked since the read.
	seats := subjects.MustParseFilter("shows.7.*.booked")
	pos, err := store.LastSequence(ctx, seats)
	if err != nil {
		log.Fatal(err)
	}
	_, err = store.Append(ctx, jetsource.Event{
		Subject: subjects.MustParse("shows.7.A12.booked"),
		Data:    []byte(`{"by":"ann"}`),
	}, jetsource.ExpectNoneAfter(pos, seats))
	switch {
	case errors.Is(err, jetsource.ErrConflict):
		fmt.Println("a seat was booked meanwhile: read again and decide again")
	case errors.Is(err, jetstore.ErrStreamBusy):
		fmt.Println("the stream kept moving: try again later")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", store.Stats())
}

func ExampleStore_Read() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	store, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		log.Fatal(err)
	}

	// Every event of every user stored so far, one at a time.
	q := jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}}
	for e, err := range store.Read(ctx, q) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Sequence, e.Subject, e.Type, string(e.Data))
	}
}

// Provision the stream, append the first event of an aggregate, and read
// the aggregate back.
func Example() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}); err != nil {
		log.Fatal(err)
	}
	store, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		log.Fatal(err)
	}

	// ExpectSequence(0): users.A must have no events yet.
	ack, err := store.Append(ctx, jetsource.Event{
		Subject: subjects.MustParse("users.A.added"),
		Data:    []byte(`{"name":"Ann"}`),
	}, jetsource.ExpectSequence(0))
	if errors.Is(err, jetsource.ErrConflict) {
		log.Fatal("users.A exists already")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored at", ack.Sequence)

	for e, err := range store.Load(ctx, subjects.MustParse("users.A"), 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Sequence, e.Type, string(e.Data))
	}
}
