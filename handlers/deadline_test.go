package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/subjects"
)

// waitUntil polls cond until it holds or the timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A command whose sender gave up before a worker took it is not executed:
// nothing is written, and the server counts it.
func TestExpiredCommandWritesNothing(t *testing.T) {
	e := newEnv(t)
	entered, release := make(chan struct{}), make(chan struct{})
	block := handlers.HandlerFunc(func(ctx context.Context, _ handlers.Reader, _ handlers.Command) (handlers.Decision, error) {
		close(entered)
		<-release
		return handlers.Decision{}, nil
	})
	p := processor(t, e, registry(t, map[string]handlers.Handler{"Block": block}))
	srv, err := handlers.Serve(context.Background(), e.nc, p, handlers.WithConcurrency(1))
	must(t, err)
	t.Cleanup(func() { srv.Close() })
	c, err := handlers.NewClient(e.nc)
	must(t, err)

	blocked := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), "Block", nil)
		blocked <- err
	}()
	<-entered
	// The only worker slot is taken: this command waits past its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err = c.Send(ctx, "Note", note{User: "late"}, handlers.WithCommandID("late-1"))
	cancel()
	if !errors.Is(err, jetsource.ErrUnavailable) {
		t.Fatalf("late command: %v, want a timeout", err)
	}
	close(release)
	must(t, <-blocked)
	waitUntil(t, 10*time.Second, "the expired command counted", func() bool { return srv.Expired() == 1 })
	// A command sent after it is served, so the late one was taken before.
	res, err := c.Send(context.Background(), "Note", note{User: "early"})
	if err != nil || res.Status != handlers.StatusAccepted {
		t.Fatalf("next command: %+v, %v", res, err)
	}
	for _, ev := range e.events(t) {
		if ev.Subject.String() == "users.late.noted" {
			t.Fatalf("the expired command recorded %s at %d", ev.Subject, ev.Sequence)
		}
	}
}

// A command that arrives with a deadline already passed is answered with
// an error naming the expiry; one with a bad deadline header is rejected.
func TestDeadlineHeader(t *testing.T) {
	e := newEnv(t)
	p := processor(t, e, registry(t, nil))
	srv, err := handlers.Serve(context.Background(), e.nc, p)
	must(t, err)
	t.Cleanup(func() { srv.Close() })
	for _, tc := range []struct {
		name, deadline string
		want           handlers.Status
		text           string
	}{
		{"Passed", time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano), handlers.StatusError, "expired"},
		{"NotATime", "soon", handlers.StatusRejected, handlers.HeaderDeadline},
		{"Future", time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano), handlers.StatusAccepted, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := &nats.Msg{Subject: "cmd.Note", Data: []byte(`{"user":"dl` + tc.name + `"}`),
				Header: nats.Header{handlers.HeaderDeadline: {tc.deadline}, handlers.HeaderCommandID: {"dl-" + tc.name}}}
			reply, err := e.nc.RequestMsg(msg, 5*time.Second)
			must(t, err)
			var res handlers.Result
			must(t, json.Unmarshal(reply.Data, &res))
			if res.Status != tc.want || !strings.Contains(res.Error+strings.Join(res.Reasons, ";"), tc.text) {
				t.Fatalf("got %+v", res)
			}
		})
	}
	if srv.Expired() != 1 {
		t.Errorf("expired %d, want 1", srv.Expired())
	}
	for _, ev := range e.events(t) {
		if ev.Subject.String() != "users.dlFuture.noted" {
			t.Errorf("unexpected event %s", ev.Subject)
		}
	}
}

// A decider that panics in Query, Evolve or Decide fails its command with
// an error result; the worker lives on and serves the next command.
func TestDeciderPanicsOverTheBus(t *testing.T) {
	e := newEnv(t)
	_, err := e.store.Append(context.Background(), jetsource.Event{Subject: subjects.MustParse("users.p.added"), Data: []byte(`{}`)})
	must(t, err)
	panicky := func(where string) handlers.Handler {
		return handlers.New(handlers.Funcs[note, int]{
			QueryFunc: func(p note) ([]subjects.Filter, error) {
				if where == "query" {
					panic("query boom")
				}
				return []subjects.Filter{subjects.MustParseFilter("users.p.>")}, nil
			},
			EvolveFunc: func(n int, e jetsource.Event) int {
				if where == "evolve" {
					panic("evolve boom")
				}
				return n
			},
			DecideFunc: func(n int, p note) ([]jetsource.Event, error) {
				if where == "decide" {
					panic("decide boom")
				}
				return nil, nil
			},
		})
	}
	reg := registry(t, map[string]handlers.Handler{"PQuery": panicky("query"), "PEvolve": panicky("evolve"), "PDecide": panicky("decide")})
	srv, err := handlers.Serve(context.Background(), e.nc, processor(t, e, reg))
	must(t, err)
	t.Cleanup(func() { srv.Close() })
	c, err := handlers.NewClient(e.nc)
	must(t, err)
	for _, name := range []string{"PQuery", "PEvolve", "PDecide"} {
		res, err := c.Send(context.Background(), name, note{User: "p"})
		want := strings.ToLower(strings.TrimPrefix(name, "P")) + " boom"
		if err != nil || res.Status != handlers.StatusError || !strings.Contains(res.Error, want) {
			t.Errorf("%s: %+v, %v", name, res, err)
		}
	}
	res, err := c.Send(context.Background(), "Note", note{User: "after"})
	if err != nil || res.Status != handlers.StatusAccepted {
		t.Fatalf("the worker did not live on: %+v, %v", res, err)
	}
}
