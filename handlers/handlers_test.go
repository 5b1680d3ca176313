package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// env is a server with the stream EVENTS on users.>, groups.>, companies.>.
type env struct {
	nc    *nats.Conn
	store *jetstore.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>", "groups.>", "companies.>"}}); err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	return &env{nc: nc, store: st}
}

// events returns every stored event.
func (e *env) events(t *testing.T) []jetsource.Event {
	t.Helper()
	var out []jetsource.Event
	for ev, err := range e.store.Read(context.Background(), jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// addUser is the test command: a user with a username unique per company.
type addUser struct {
	Company  string `json:"company"`
	ID       string `json:"id"`
	Username string `json:"username"`
}

type userModel struct {
	exists bool
	owner  string
}

func userDecider() handlers.Decider[addUser, userModel] {
	return handlers.Funcs[addUser, userModel]{
		QueryFunc: func(p addUser) ([]subjects.Filter, error) {
			return []subjects.Filter{
				subjects.MustParseFilter("users." + subjects.Escape(p.ID) + ".>"),
				subjects.MustParseFilter("companies." + subjects.Escape(p.Company) + ".usernames." + subjects.Escape(p.Username) + ".>"),
			}, nil
		},
		EvolveFunc: func(m userModel, e jetsource.Event) userModel {
			switch e.Name() {
			case "added":
				m.exists = true
			case "claimed":
				m.owner = string(e.Data)
			}
			return m
		},
		DecideFunc: func(m userModel, p addUser) ([]jetsource.Event, error) {
			var reasons []string
			if m.exists {
				reasons = append(reasons, "user "+p.ID+" exists")
			}
			if m.owner != "" {
				reasons = append(reasons, "username "+p.Username+" is taken")
			}
			if len(reasons) > 0 {
				return nil, handlers.Reject(reasons...)
			}
			return []jetsource.Event{
				{Subject: subjects.MustParse("users." + subjects.Escape(p.ID) + ".added"), Data: []byte(fmt.Sprintf(`{"username":%q}`, p.Username))},
				{Subject: subjects.MustParse("companies." + subjects.Escape(p.Company) + ".usernames." + subjects.Escape(p.Username) + ".claimed"), Data: []byte(fmt.Sprintf("%q", p.ID))},
			}, nil
		},
	}
}

// note is a one-event command with a limit per user: at most Max notes.
type note struct {
	User string `json:"user"`
	Max  int    `json:"max"`
}

func noteDecider() handlers.Decider[note, int] {
	return handlers.Funcs[note, int]{
		QueryFunc: func(p note) ([]subjects.Filter, error) {
			return []subjects.Filter{subjects.MustParseFilter("users." + subjects.Escape(p.User) + ".>")}, nil
		},
		EvolveFunc: func(n int, e jetsource.Event) int { return n + 1 },
		DecideFunc: func(n int, p note) ([]jetsource.Event, error) {
			if p.Max > 0 && n >= p.Max {
				return nil, handlers.Reject(fmt.Sprintf("user %s has %d notes, the limit is %d", p.User, n, p.Max))
			}
			return []jetsource.Event{{Subject: subjects.MustParse("users." + subjects.Escape(p.User) + ".noted"), Data: []byte(fmt.Sprintf(`{"n":%d}`, n+1))}}, nil
		},
	}
}

func registry(t *testing.T, extra map[string]handlers.Handler) *handlers.Registry {
	t.Helper()
	r := handlers.NewRegistry()
	must(t, r.Register("AddUser", handlers.New(userDecider())))
	must(t, r.Register("Note", handlers.New(noteDecider())))
	for name, h := range extra {
		must(t, r.Register(name, h))
	}
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func processor(t *testing.T, e *env, reg *handlers.Registry, opts ...handlers.Option) *handlers.Processor {
	t.Helper()
	p, err := handlers.NewProcessor(e.store, reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProcessor(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := processor(t, e, registry(t, nil))

	t.Run("Accept", func(t *testing.T) {
		res, err := p.Send(ctx, "AddUser", addUser{Company: "acme", ID: "u1", Username: "homer"},
			handlers.WithActor("alice"), handlers.WithCommandID("cmd-1"), handlers.WithCorrelationID("conv-1"))
		if err != nil || res.Status != handlers.StatusAccepted || !slices.Equal(res.Sequences, []uint64{1, 2}) || res.Attempts != 1 || res.Duplicate {
			t.Fatalf("got %+v, %v", res, err)
		}
		evs := e.events(t)
		if len(evs) != 2 {
			t.Fatalf("want 2 events, got %d", len(evs))
		}
		for i, ev := range evs {
			if ev.Actor != "alice" || ev.CausationID != "cmd-1" || ev.CorrelationID != "conv-1" || ev.Extensions[handlers.ExtCommand] != "AddUser" ||
				ev.ID != fmt.Sprintf("AddUser:cmd-1:%d", i) || ev.TransactionID != "AddUser:cmd-1" {
				t.Errorf("event %d: %+v", i, ev)
			}
		}
	})
	t.Run("RejectWithReasons", func(t *testing.T) {
		res, err := p.Send(ctx, "AddUser", addUser{Company: "acme", ID: "u1", Username: "homer"})
		want := []string{"user u1 exists", "username homer is taken"}
		if err != nil || res.Status != handlers.StatusRejected || !slices.Equal(res.Reasons, want) {
			t.Fatalf("got %+v, %v", res, err)
		}
		var re *handlers.RejectedError
		if !errors.As(res.Err(), &re) || !errors.Is(res.Err(), handlers.ErrRejected) {
			t.Fatalf("Err: %v", res.Err())
		}
		// A username is unique per company, not globally.
		res, _ = p.Send(ctx, "AddUser", addUser{Company: "other", ID: "u2", Username: "homer"})
		if res.Status != handlers.StatusAccepted {
			t.Fatalf("other company: %+v", res)
		}
		if n := len(e.events(t)); n != 4 {
			t.Fatalf("a rejection wrote: %d events", n)
		}
	})
	t.Run("DefaultCorrelationIsCommandID", func(t *testing.T) {
		res, _ := p.Send(ctx, "Note", note{User: "u9"}, handlers.WithCommandID("n-1"))
		evs := e.events(t)
		last := evs[len(evs)-1]
		if res.Status != handlers.StatusAccepted || last.CorrelationID != "n-1" || last.CausationID != "n-1" || last.ID != "Note:n-1:0" {
			t.Fatalf("got %+v and %+v", res, last)
		}
	})
	t.Run("BadPayloadRejectedNothingWritten", func(t *testing.T) {
		before := len(e.events(t))
		for _, payload := range []any{raw(`{"user":"u1","nope":1}`), raw(`[1,2]`), raw(`{"user":1}`)} {
			res, err := p.Send(ctx, "Note", payload)
			if err != nil || res.Status != handlers.StatusRejected || !strings.HasPrefix(res.Reasons[0], "payload:") {
				t.Fatalf("%s: got %+v, %v", payload, res, err)
			}
		}
		if _, err := p.Send(ctx, "Note", raw(`{bad`)); !errors.Is(err, handlers.ErrInvalidCommand) {
			t.Fatalf("not JSON: %v", err)
		}
		if n := len(e.events(t)); n != before {
			t.Fatalf("bad payloads wrote %d events", n-before)
		}
	})
	t.Run("UnknownCommand", func(t *testing.T) {
		res, err := p.Send(ctx, "Nope", nil)
		if !errors.Is(err, handlers.ErrUnknownCommand) || res.Status != handlers.StatusError || !strings.Contains(res.Error, "unknown command") {
			t.Fatalf("got %+v, %v", res, err)
		}
		if _, err := p.Send(ctx, "bad.name", nil); !errors.Is(err, handlers.ErrInvalidCommand) {
			t.Fatalf("bad name: %v", err)
		}
		res = p.Execute(ctx, handlers.Command{Name: "a.b"})
		if res.Status != handlers.StatusError || !strings.Contains(res.Error, "unknown command") {
			t.Fatalf("Execute bad name: %+v", res)
		}
	})
}

type raw = []byte

func TestSchemaFailureWritesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sc, err := jetsource.NewSchemas()
	must(t, err)
	must(t, sc.Add("AddUser", 1, []byte(`{"type":"object","required":["company","id","username"],
		"properties":{"username":{"type":"string","minLength":2}},"additionalProperties":true}`)))
	p := processor(t, e, registry(t, nil), handlers.WithSchemas(sc))
	cases := []struct {
		name, payload, reason string
	}{
		{"Missing", `{"company":"c","id":"u1"}`, "required"},
		{"TooShort", `{"company":"c","id":"u1","username":"x"}`, "/username"},
		{"Null", ``, "null"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := p.Send(ctx, "AddUser", []byte(c.payload))
			if c.payload == "" {
				res, err = p.Send(ctx, "AddUser", nil)
			}
			if err != nil || res.Status != handlers.StatusRejected || len(res.Reasons) != 1 || !strings.Contains(res.Reasons[0], c.reason) || !strings.Contains(res.Reasons[0], "schema") {
				t.Fatalf("got %+v, %v", res, err)
			}
		})
	}
	if last, _ := e.store.LastSequence(ctx, subjects.All()); last != 0 {
		t.Fatalf("schema failures wrote up to sequence %d", last)
	}
	res, _ := p.Send(ctx, "AddUser", addUser{Company: "c", ID: "u1", Username: "ok"})
	if res.Status != handlers.StatusAccepted {
		t.Fatalf("valid payload: %+v", res)
	}
}

// racing returns a handler that decides like the note decider, but whose
// first attempts wait at a barrier until n executions have read: all of
// them decide on the same read position.
func racing(n int) (handlers.Handler, *atomic.Int32) {
	inner := handlers.New(noteDecider())
	var arrived sync.WaitGroup
	arrived.Add(n)
	var decisions atomic.Int32
	var first sync.Map
	return handlers.HandlerFunc(func(ctx context.Context, r handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
		d, err := inner.Handle(ctx, r, cmd)
		decisions.Add(1)
		if _, again := first.LoadOrStore(cmd.ID, true); !again {
			arrived.Done()
			arrived.Wait()
		}
		return d, err
	}), &decisions
}

func TestConflictThenRetrySucceeds(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h, decisions := racing(2)
	p := processor(t, e, registry(t, map[string]handlers.Handler{"RacingNote": h}), handlers.WithBackoff(0, 0))
	results := make([]handlers.Result, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			results[i], _ = p.Send(ctx, "RacingNote", note{User: "same", Max: 5})
		})
	}
	wg.Wait()
	attempts := []int{results[0].Attempts, results[1].Attempts}
	slices.Sort(attempts)
	for _, r := range results {
		if r.Status != handlers.StatusAccepted {
			t.Fatalf("got %+v", results)
		}
	}
	if !slices.Equal(attempts, []int{1, 2}) || decisions.Load() != 3 {
		t.Fatalf("attempts %v, decisions %d: exactly one should win the first round and the other decide again", attempts, decisions.Load())
	}
	// The loser decided again on the winner's event: the second note is n=2.
	evs := e.events(t)
	if len(evs) != 2 || string(evs[0].Data) != `{"n":1}` || string(evs[1].Data) != `{"n":2}` {
		t.Fatalf("events: %v", evs)
	}
}

func TestConflictRedecidesToRejection(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h, _ := racing(2)
	p := processor(t, e, registry(t, map[string]handlers.Handler{"RacingNote": h}), handlers.WithBackoff(0, 0))
	results := make([]handlers.Result, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { results[i], _ = p.Send(ctx, "RacingNote", note{User: "same", Max: 1}) })
	}
	wg.Wait()
	statuses := []string{string(results[0].Status), string(results[1].Status)}
	slices.Sort(statuses)
	if !slices.Equal(statuses, []string{"accepted", "rejected"}) {
		t.Fatalf("with a limit of 1, one must be accepted and the other rejected on its second decision: %+v", results)
	}
}

func TestRetriesExhaustedIsConflict(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	inner := handlers.New(noteDecider())
	var interlopers atomic.Int32
	// After every read, another writer appends to the same boundary.
	h := handlers.HandlerFunc(func(ctx context.Context, r handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
		d, err := inner.Handle(ctx, r, cmd)
		interlopers.Add(1)
		if _, aerr := e.store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("users.busy.other"), Data: []byte(`{}`)}); aerr != nil {
			t.Error(aerr)
		}
		return d, err
	})
	p := processor(t, e, registry(t, map[string]handlers.Handler{"BusyNote": h}), handlers.WithMaxAttempts(3), handlers.WithBackoff(time.Millisecond, 2*time.Millisecond))
	res, err := p.Send(ctx, "BusyNote", note{User: "busy"})
	if err != nil || res.Status != handlers.StatusConflict || res.Attempts != 3 || res.Conflict == nil || res.Conflict.Filter != "users.busy.>" {
		t.Fatalf("got %+v, %v", res, err)
	}
	if !errors.Is(res.Err(), jetsource.ErrConflict) {
		t.Fatalf("Err: %v", res.Err())
	}
	for _, ev := range e.events(t) {
		if ev.Name() == "noted" {
			t.Fatalf("a conflicting command wrote %v", ev)
		}
	}
	if interlopers.Load() != 3 {
		t.Fatalf("decided %d times, want 3", interlopers.Load())
	}
}

func TestIdempotentRetry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Outside: a command whose events lie outside its own query (it reads
	// nothing), so only the event ids can recognise a retry.
	outside := func(n int) handlers.Handler {
		return handlers.HandlerFunc(func(ctx context.Context, r handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
			var evs []jetsource.Event
			for i := range n {
				evs = append(evs, jetsource.Event{Subject: subjects.MustParse(fmt.Sprintf("groups.g%d.pinged", i)), Data: []byte(`{}`)})
			}
			return handlers.Decision{Events: evs}, nil
		})
	}
	p := processor(t, e, registry(t, map[string]handlers.Handler{"Ping": outside(1), "PingTwo": outside(2)}))
	cases := []struct {
		name    string
		payload any
	}{
		{"InQueryOneEvent", note{User: "idem"}},
		{"InQueryBatch", addUser{Company: "c", ID: "idem", Username: "idem"}},
		{"OutsideQueryOneEvent", nil},
		{"OutsideQueryBatch", nil},
	}
	names := []string{"Note", "AddUser", "Ping", "PingTwo"}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "retry-" + c.name
			first, err := p.Send(ctx, names[i], c.payload, handlers.WithCommandID(id))
			if err != nil || first.Status != handlers.StatusAccepted || first.Duplicate {
				t.Fatalf("first: %+v, %v", first, err)
			}
			before := len(e.events(t))
			for range 2 {
				again, err := p.Send(ctx, names[i], c.payload, handlers.WithCommandID(id))
				if err != nil || again.Status != handlers.StatusAccepted || !again.Duplicate || !slices.Equal(again.Sequences, first.Sequences) {
					t.Fatalf("retry: %+v, %v (first %+v)", again, err, first)
				}
			}
			if n := len(e.events(t)); n != before {
				t.Fatalf("a retry wrote %d events", n-before)
			}
		})
	}
	t.Run("Concurrent", func(t *testing.T) {
		before := len(e.events(t))
		var wg sync.WaitGroup
		results := make([]handlers.Result, 8)
		for i := range results {
			wg.Go(func() {
				results[i], _ = p.Send(ctx, "AddUser", addUser{Company: "c", ID: "conc", Username: "conc"}, handlers.WithCommandID("same-id"))
			})
		}
		wg.Wait()
		for _, r := range results {
			if r.Status != handlers.StatusAccepted || !slices.Equal(r.Sequences, results[0].Sequences) {
				t.Fatalf("results: %+v", results)
			}
		}
		if n := len(e.events(t)); n != before+2 {
			t.Fatalf("8 concurrent sends of one command wrote %d events, want 2", n-before)
		}
	})
}

func TestHandlerPanicIsError(t *testing.T) {
	e := newEnv(t)
	h := handlers.HandlerFunc(func(context.Context, handlers.Reader, handlers.Command) (handlers.Decision, error) { panic("boom") })
	p := processor(t, e, registry(t, map[string]handlers.Handler{"Boom": h}))
	res, err := p.Send(context.Background(), "Boom", nil)
	if err != nil || res.Status != handlers.StatusError || !strings.Contains(res.Error, "boom") {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestMiddlewareOrderAndRefusal(t *testing.T) {
	e := newEnv(t)
	var order []string
	var mu sync.Mutex
	mark := func(name string) handlers.Middleware {
		return func(next handlers.Handler) handlers.Handler {
			return handlers.HandlerFunc(func(ctx context.Context, r handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				if cmd.Actor == "mallory" {
					return handlers.Decision{}, handlers.Reject(cmd.Actor + " may not issue " + cmd.Name)
				}
				return next.Handle(ctx, r, cmd)
			})
		}
	}
	p := processor(t, e, registry(t, nil), handlers.WithMiddleware(mark("a"), mark("b")))
	res, _ := p.Send(context.Background(), "Note", note{User: "m"}, handlers.WithActor("bob"))
	if res.Status != handlers.StatusAccepted || !slices.Equal(order, []string{"a", "b"}) {
		t.Fatalf("got %+v, order %v", res, order)
	}
	res, _ = p.Send(context.Background(), "Note", note{User: "m"}, handlers.WithActor("mallory"))
	if res.Status != handlers.StatusRejected || res.Reasons[0] != "mallory may not issue Note" {
		t.Fatalf("got %+v", res)
	}
}

func TestOptions(t *testing.T) {
	e := newEnv(t)
	reg := registry(t, nil)
	bad := map[string]handlers.Option{
		"MaxAttempts": handlers.WithMaxAttempts(0),
		"Backoff":     handlers.WithBackoff(time.Second, time.Millisecond),
		"Schemas":     handlers.WithSchemas(nil),
		"Reader":      handlers.WithReader(nil),
		"Middleware":  handlers.WithMiddleware(nil),
	}
	for name, o := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := handlers.NewProcessor(e.store, reg, o); !errors.Is(err, handlers.ErrInvalidOption) {
				t.Fatalf("got %v", err)
			}
		})
	}
	if _, err := handlers.NewProcessor(nil, reg); !errors.Is(err, handlers.ErrInvalidOption) {
		t.Fatalf("nil store: %v", err)
	}
	if err := reg.Register("Note", handlers.New(noteDecider())); !errors.Is(err, handlers.ErrInvalidOption) {
		t.Fatalf("registered twice: %v", err)
	}
	if err := reg.Register("a b", handlers.New(noteDecider())); !errors.Is(err, handlers.ErrInvalidCommand) {
		t.Fatalf("bad name: %v", err)
	}
	for _, o := range []handlers.BusOption{handlers.WithPrefix("cmd.*"), handlers.WithPrefix(""), handlers.WithQueue(""), handlers.WithConcurrency(0),
		handlers.WithRequestTimeout(0), handlers.WithCommandTimeout(-1), handlers.WithDrainTimeout(0)} {
		if _, err := handlers.NewClient(e.nc, o); !errors.Is(err, handlers.ErrInvalidOption) {
			t.Fatalf("bus option: %v", err)
		}
	}
}

func TestMoreFiltersThanConditionsFit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	filters := []subjects.Filter{subjects.MustParseFilter("users.x.>"), subjects.MustParseFilter("groups.g.>"), subjects.MustParseFilter("companies.c.>")}
	var interfere atomic.Bool
	h := handlers.HandlerFunc(func(ctx context.Context, r handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
		var pos uint64
		for ev, err := range r.Read(ctx, jetsource.Query{Filters: filters}) {
			if err != nil {
				return handlers.Decision{}, err
			}
			pos = ev.Sequence
		}
		if interfere.Load() {
			if _, err := e.store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("companies.c.changed")}); err != nil {
				return handlers.Decision{}, err
			}
		}
		return handlers.Decision{Filters: filters, Position: pos, Events: []jetsource.Event{{Subject: subjects.MustParse("users.x.touched")}}}, nil
	})
	p := processor(t, e, registry(t, map[string]handlers.Handler{"Three": h}), handlers.WithMaxAttempts(2), handlers.WithBackoff(0, 0))
	for range 2 {
		if res, _ := p.Send(ctx, "Three", nil); res.Status != handlers.StatusAccepted {
			t.Fatalf("three filters, one event: %+v", res)
		}
	}
	interfere.Store(true)
	if res, _ := p.Send(ctx, "Three", nil); res.Status != handlers.StatusConflict {
		t.Fatalf("an event on the third filter after the read: %+v", res)
	}
}

func TestSerialBoundaries(t *testing.T) {
	for _, serial := range []bool{true, false} {
		t.Run(fmt.Sprint(serial), func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			p := processor(t, e, registry(t, nil), handlers.WithSerialBoundaries(serial), handlers.WithMaxAttempts(100), handlers.WithBackoff(0, time.Millisecond))
			const n = 20
			results := make([]handlers.Result, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { results[i], _ = p.Send(ctx, "Note", note{User: "hot"}) })
			}
			wg.Wait()
			retries := 0
			for _, r := range results {
				if r.Status != handlers.StatusAccepted {
					t.Fatalf("got %+v", r)
				}
				retries += r.Attempts - 1
			}
			if serial && retries != 0 {
				t.Fatalf("serial boundaries: %d retries in one processor", retries)
			}
			evs := e.events(t)
			for i, ev := range evs {
				if string(ev.Data) != fmt.Sprintf(`{"n":%d}`, i+1) {
					t.Fatalf("event %d: %s: a decision missed an event", i, ev.Data)
				}
			}
			if len(evs) != n {
				t.Fatalf("%d events, want %d", len(evs), n)
			}
		})
	}
}
