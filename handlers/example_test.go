package handlers_test

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/subjects"
)

// Reserve is the payload of a command reserving a seat.
type Reserve struct {
	Seat  string `json:"seat"`
	Guest string `json:"guest"`
}

// A typed decider: the seat's events fold into "who holds it", and a seat is
// reserved only once.
func Example() {
	store, _ := jetsource.NewMemoryStore()
	reg := handlers.NewRegistry()
	_ = reg.Register("Reserve", handlers.New(handlers.Funcs[Reserve, string]{
		QueryFunc: func(p Reserve) ([]subjects.Filter, error) {
			f, err := subjects.ParseFilter("seats." + subjects.Escape(p.Seat) + ".>")
			return []subjects.Filter{f}, err
		},
		EvolveFunc: func(holder string, e jetsource.Event) string { return string(e.Data) },
		DecideFunc: func(holder string, p Reserve) ([]jetsource.Event, error) {
			if holder != "" {
				return nil, handlers.Reject("seat " + p.Seat + " is taken")
			}
			s, _ := subjects.Parse("seats." + subjects.Escape(p.Seat) + ".reserved")
			return []jetsource.Event{{Subject: s, Data: []byte(fmt.Sprintf("%q", p.Guest))}}, nil
		},
	}))
	p, _ := handlers.NewProcessor(store, reg)
	ctx := context.Background()

	res, _ := p.Send(ctx, "Reserve", Reserve{Seat: "12A", Guest: "ann"}, handlers.WithCommandID("r-1"))
	fmt.Println(res.Status, res.Sequences)
	res, _ = p.Send(ctx, "Reserve", Reserve{Seat: "12A", Guest: "bob"})
	fmt.Println(res.Status, res.Reasons)
	res, _ = p.Send(ctx, "Reserve", Reserve{Seat: "12A", Guest: "ann"}, handlers.WithCommandID("r-1"))
	fmt.Println(res.Status, res.Sequences, "duplicate:", res.Duplicate)
	// Output:
	// accepted [1]
	// rejected [seat 12A is taken]
	// accepted [1] duplicate: true
}

// Serving commands on the bus and sending one (needs a NATS server).
func ExampleServe() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		return
	}
	defer nc.Close()
	var store handlers.Store // a jetstore.Store in practice
	reg := handlers.NewRegistry()
	// reg.Register("InsertUser", handlers.New(insertUserDecider{}))
	p, err := handlers.NewProcessor(store, reg)
	if err != nil {
		return
	}
	srv, err := handlers.Serve(context.Background(), nc, p, handlers.WithQueue("users-service"))
	if err != nil {
		return
	}
	defer srv.Close()

	c, _ := handlers.NewClient(nc)
	res, err := c.Send(context.Background(), "InsertUser", map[string]string{"company": "acme", "id": "1", "username": "homer"},
		handlers.WithActor("admin"), handlers.WithCommandID("req-42"))
	if err != nil {
		return
	}
	fmt.Println(res.Status, res.Sequences)
}
