package jetsource_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

func ExampleTypeFromSubject() {
	for _, s := range []string{"users.A.added", "orders.eu.42.placed", "heartbeat"} {
		fmt.Println(s, "->", jetsource.TypeFromSubject(subjects.MustParse(s)))
	}
	// Output:
	// users.A.added -> users.added
	// orders.eu.42.placed -> orders.placed
	// heartbeat -> heartbeat
}

func ExampleEncodeHeader() {
	e, err := jetsource.Prepare(jetsource.Event{
		ID:      "evt-1",
		Subject: subjects.MustParse("users.A.renamed"),
		Time:    time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC),
		Data:    []byte(`{"name":"Zoë"}`),
		Actor:   "Zoë Smith",
		// An extension of your own.
		Extensions: map[string]string{"tenant": "acme"},
	}, "/users-service", time.Now())
	if err != nil {
		panic(err)
	}
	h := jetsource.EncodeHeader(e)
	for _, k := range slices.Sorted(maps.Keys(h)) {
		fmt.Printf("%s: %s\n", k, h.Get(k))
	}
	// Output:
	// Content-Type: application/json
	// ce-actor: Zo%C3%AB%20Smith
	// ce-id: evt-1
	// ce-source: /users-service
	// ce-specversion: 1.0
	// ce-tenant: acme
	// ce-time: 2025-03-14T15:09:26Z
	// ce-type: users.renamed
}

func ExampleDecodeMsg() {
	// A message published with no headers, as by
	//	nats pub users.A.added '{"name":"Ann"}'
	// and stored as the 7th message of the stream EVENTS.
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 7, Time: time.Date(2025, 3, 14, 15, 9, 27, 0, time.UTC)}
	e, err := jetsource.DecodeMsg("users.A.added", nil, []byte(`{"name":"Ann"}`), at)
	if err != nil {
		panic(err)
	}
	fmt.Println("id:", e.ID)
	fmt.Println("source:", e.Source)
	fmt.Println("type:", e.Type)
	fmt.Println("time:", e.Time.Format(time.RFC3339))
	fmt.Println("content type:", e.DataContentType)
	fmt.Println("aggregate:", e.Aggregate(), "event:", e.Name())
	// Output:
	// id: EVENTS-7
	// source: /streams/EVENTS
	// type: users.added
	// time: 2025-03-14T15:09:27Z
	// content type: application/json
	// aggregate: users.A event: added
}

func ExampleMemoryStore() {
	ctx := context.Background()
	store, err := jetsource.NewMemoryStore(jetsource.MemoryStreamName("EVENTS"))
	if err != nil {
		panic(err)
	}

	// Each append expects the aggregate's last sequence: 0 for a new one.
	ack, err := store.Append(ctx, jetsource.Event{
		Subject: subjects.MustParse("users.A.added"), Data: []byte(`{"name":"Ann"}`),
	}, jetsource.ExpectSequence(0))
	if err != nil {
		panic(err)
	}
	fmt.Println("added at", ack.Sequence)
	ack, err = store.Append(ctx, jetsource.Event{
		Subject: subjects.MustParse("users.A.renamed"), Data: []byte(`{"name":"Anna"}`),
	}, jetsource.ExpectSequence(ack.Sequence))
	if err != nil {
		panic(err)
	}
	fmt.Println("renamed at", ack.Sequence)

	// A writer that read the aggregate before the rename is refused.
	_, err = store.Append(ctx, jetsource.Event{
		Subject: subjects.MustParse("users.A.removed"),
	}, jetsource.ExpectSequence(1))
	var conflict *jetsource.ConflictError
	if errors.Is(err, jetsource.ErrConflict) && errors.As(err, &conflict) {
		fmt.Println("conflict: current sequence", conflict.Current)
	}
	fmt.Println(err)

	// Read the aggregate back.
	for e, err := range store.Load(ctx, subjects.MustParse("users.A"), 0) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Sequence, e.Type, string(e.Data))
	}
	// Output:
	// added at 1
	// renamed at 2
	// conflict: current sequence 2
	// jetsource: concurrency conflict on users.A.>: expected last sequence 1, current 2
	// 1 users.added {"name":"Ann"}
	// 2 users.renamed {"name":"Anna"}
}
