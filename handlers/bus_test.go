package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"

	"github.com/nats-io/nats.go/jetstream"
)

// counting counts the commands a worker executes.
func counting(n *atomic.Int32) handlers.Middleware {
	return func(next handlers.Handler) handlers.Handler {
		return handlers.HandlerFunc(func(ctx context.Context, r handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
			n.Add(1)
			return next.Handle(ctx, r, cmd)
		})
	}
}

// worker serves the test registry on a connection of its own.
func worker(t *testing.T, url string, n *atomic.Int32, opts ...handlers.BusOption) *handlers.Server {
	t.Helper()
	nc, err := nats.Connect(url)
	must(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	must(t, err)
	st, err := jetstore.New(context.Background(), js, "EVENTS")
	must(t, err)
	p, err := handlers.NewProcessor(st, registry(t, nil), handlers.WithMiddleware(counting(n)))
	must(t, err)
	s, err := handlers.Serve(context.Background(), nc, p, opts...)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBusRoundTripQueueGroupOfTwo(t *testing.T) {
	e := newEnv(t)
	url := e.nc.ConnectedUrl()
	var n1, n2 atomic.Int32
	worker(t, url, &n1)
	worker(t, url, &n2)
	c, err := handlers.NewClient(e.nc)
	must(t, err)
	ctx := context.Background()

	const commands = 40
	var wg sync.WaitGroup
	results := make([]handlers.Result, commands)
	errs := make([]error, commands)
	for i := range commands {
		wg.Go(func() {
			results[i], errs[i] = c.Send(ctx, "Note", note{User: fmt.Sprintf("bus%d", i%4)},
				handlers.WithActor("alice"), handlers.WithCommandID(fmt.Sprintf("bus-%d", i)), handlers.WithCausationID("evt-9"))
		})
	}
	wg.Wait()
	for i := range commands {
		if errs[i] != nil || results[i].Status != handlers.StatusAccepted || len(results[i].Sequences) != 1 || results[i].ID != fmt.Sprintf("bus-%d", i) || results[i].Command != "Note" {
			t.Fatalf("command %d: %+v, %v", i, results[i], errs[i])
		}
	}
	if n1.Load()+n2.Load() < commands || n1.Load() == 0 || n2.Load() == 0 {
		t.Fatalf("the workers executed %d and %d commands: both should share %d", n1.Load(), n2.Load(), commands)
	}
	evs := e.events(t)
	if len(evs) != commands {
		t.Fatalf("stored %d events, want %d", len(evs), commands)
	}
	for _, ev := range evs {
		if ev.Actor != "alice" || !strings.HasPrefix(ev.CausationID, "bus-") || ev.CorrelationID != ev.CausationID || ev.Extensions[handlers.ExtCommand] != "Note" {
			t.Fatalf("event metadata: %+v", ev)
		}
	}
	// Per user the notes count up 1..10 whichever worker decided them.
	per := map[string][]string{}
	for _, ev := range evs {
		per[ev.Subject.Token(1)] = append(per[ev.Subject.Token(1)], string(ev.Data))
	}
	for u, data := range per {
		for i, d := range data {
			if d != fmt.Sprintf(`{"n":%d}`, i+1) {
				t.Fatalf("%s: %v", u, data)
			}
		}
	}

	t.Run("RejectedOverTheBus", func(t *testing.T) {
		res, err := c.Send(ctx, "Note", note{User: "bus0", Max: 3})
		if err != nil || res.Status != handlers.StatusRejected || !strings.Contains(res.Reasons[0], "the limit is 3") {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
	t.Run("IdempotentOverTheBus", func(t *testing.T) {
		again, err := c.Send(ctx, "Note", note{User: "bus0"}, handlers.WithCommandID("bus-0"))
		if err != nil || !again.Duplicate || !slices.Equal(again.Sequences, results[0].Sequences) {
			t.Fatalf("got %+v, %v; first %+v", again, err, results[0])
		}
		if len(e.events(t)) != commands {
			t.Fatal("a retry over the bus wrote an event")
		}
	})
	t.Run("UnknownCommandNoResponders", func(t *testing.T) {
		start := time.Now()
		_, err := c.Send(ctx, "Nope", nil)
		if !errors.Is(err, handlers.ErrUnknownCommand) || !strings.Contains(err.Error(), "cmd.Nope") || time.Since(start) > 5*time.Second {
			t.Fatalf("got %v after %v", err, time.Since(start))
		}
	})
	t.Run("BadHeaderRejected", func(t *testing.T) {
		msg := &nats.Msg{Subject: "cmd.Note", Data: []byte(`{"user":"h"}`), Header: nats.Header{handlers.HeaderActor: {"%FF"}}}
		reply, err := e.nc.RequestMsg(msg, 5*time.Second)
		must(t, err)
		var res handlers.Result
		must(t, json.Unmarshal(reply.Data, &res))
		if res.Status != handlers.StatusRejected || !strings.Contains(res.Reasons[0], "UTF-8") {
			t.Fatalf("got %+v", res)
		}
	})
	t.Run("RawRequestWithoutID", func(t *testing.T) {
		reply, err := e.nc.Request("cmd.Note", []byte(`{"user":"raw"}`), 5*time.Second)
		must(t, err)
		var res handlers.Result
		must(t, json.Unmarshal(reply.Data, &res))
		if res.Status != handlers.StatusAccepted || res.ID == "" {
			t.Fatalf("got %+v", res)
		}
	})
}

func TestServerCloseDrains(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := handlers.HandlerFunc(func(ctx context.Context, r handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
		started <- struct{}{}
		<-release
		return handlers.Decision{Events: []jetsource.Event{{Subject: subjects.MustParse("users.slow.done"), Data: []byte(`{}`)}}}, nil
	})
	p := processor(t, e, registry(t, map[string]handlers.Handler{"Slow": slow}))
	s, err := handlers.Serve(context.Background(), e.nc, p, handlers.WithPrefix("app.cmd"), handlers.WithQueue("workers"))
	must(t, err)
	c, err := handlers.NewClient(e.nc, handlers.WithPrefix("app.cmd"))
	must(t, err)
	done := make(chan handlers.Result)
	go func() {
		res, _ := c.Send(context.Background(), "Slow", nil)
		done <- res
	}()
	<-started
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned with a command in progress")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if res := <-done; res.Status != handlers.StatusAccepted {
		t.Fatalf("the command in progress got %+v", res)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Send(context.Background(), "Slow", nil); !errors.Is(err, handlers.ErrUnknownCommand) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := handlers.Serve(ctx, e.nc, processor(t, e, registry(t, nil)))
	must(t, err)
	cancel()
	select {
	case <-s.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not stop when its context ended")
	}
	if _, err := handlers.Serve(context.Background(), e.nc, processor(t, e, handlers.NewRegistry())); !errors.Is(err, handlers.ErrInvalidOption) {
		t.Fatalf("empty registry: %v", err)
	}
}

func TestClientTimeout(t *testing.T) {
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	// A responder that never answers.
	sub, err := nc.Subscribe("cmd.Silent", func(*nats.Msg) {})
	must(t, err)
	defer sub.Unsubscribe()
	c, err := handlers.NewClient(nc, handlers.WithRequestTimeout(100*time.Millisecond))
	must(t, err)
	_, err = c.Send(context.Background(), "Silent", nil, handlers.WithCommandID("s-1"))
	if !errors.Is(err, jetsource.ErrUnavailable) || !strings.Contains(err.Error(), "same id is safe") {
		t.Fatalf("got %v", err)
	}
}
