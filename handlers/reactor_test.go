package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/handlers/example"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
	"github.com/jetsource/jetsource/subscriber"
)

// toggleWithin is how soon a flag toggle must take effect.
const toggleWithin = time.Second

// rxEnv is a server with the example domain: the event stream, a store
// and a processor of the example commands.
type rxEnv struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	store *jetstore.Store
	proc  *handlers.Processor
}

func newRxEnv(t *testing.T) *rxEnv {
	t.Helper()
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	must(t, err)
	ctx := context.Background()
	_, err = jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>", "groups.>", "companies.>"}})
	must(t, err)
	st, err := jetstore.New(ctx, js, "EVENTS")
	must(t, err)
	reg := handlers.NewRegistry()
	must(t, example.Register(reg))
	p, err := handlers.NewProcessor(st, reg)
	must(t, err)
	return &rxEnv{nc: nc, js: js, store: st, proc: p}
}

// start runs a reactor until the test ends.
func (e *rxEnv) start(t *testing.T, rules []*handlers.Rule, send handlers.Sender, opts ...handlers.ReactorOption) *handlers.Reactor {
	t.Helper()
	opts = append([]handlers.ReactorOption{handlers.WithSubscriberOptions(subscriber.WithDrainTimeout(5 * time.Second))}, opts...)
	r, err := handlers.NewReactor(e.js, "EVENTS", rules, send, opts...)
	must(t, err)
	must(t, r.Start(context.Background()))
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// insert inserts a user and returns the id of its inserted event.
func (e *rxEnv) insert(t *testing.T, company, id string) string {
	t.Helper()
	cmdID := "insert-" + company + "-" + id
	res, err := e.proc.Send(context.Background(), "InsertUser", example.InsertUser{Company: company, ID: id, Name: id, Username: id},
		handlers.WithCommandID(cmdID), handlers.WithCorrelationID("conv-"+id))
	if err != nil || res.Status != handlers.StatusAccepted {
		t.Fatalf("InsertUser %s/%s: %+v, %v", company, id, res, err)
	}
	return "InsertUser:" + cmdID + ":0"
}

// memberships returns the events of a user's membership in a group.
func (e *rxEnv) memberships(t *testing.T, company, group, user string) []jetsource.Event {
	t.Helper()
	f := subjects.MustParseFilter("groups." + subjects.Escape(company) + "." + subjects.Escape(group) + ".members." + subjects.Escape(user) + ".>")
	var out []jetsource.Event
	for ev, err := range e.store.Read(context.Background(), jetsource.Query{Filters: []subjects.Filter{f}}) {
		must(t, err)
		out = append(out, ev)
	}
	return out
}

// settled waits until the rule's worker acknowledged at least n events and
// has nothing pending.
func settled(t *testing.T, r *handlers.Reactor, rule string, n uint64) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		lag, err := r.Lag(context.Background(), rule)
		if err != nil {
			return err
		}
		if lag.Acked < n || lag.Pending != 0 {
			return fmt.Errorf("rule %s: %+v, want %d acknowledged and none pending", rule, lag, n)
		}
		return nil
	})
}

// waitFor polls f until it returns nil or d passes, and returns how long
// it took.
func waitFor(t *testing.T, d time.Duration, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *rxEnv) isMember(t *testing.T, company, group, user string) error {
	ms := e.memberships(t, company, group, user)
	if len(ms) == 0 || ms[len(ms)-1].Name() != "added" {
		return fmt.Errorf("%s is not a member of %s/%s", user, company, group)
	}
	return nil
}

// countingSender counts the commands sent and keeps their results.
type countingSender struct {
	next handlers.Sender
	mu   sync.Mutex
	sent []handlers.Result
	// fail, when set, decides whether the i-th call (from 0) reports an
	// error after forwarding the command, as if its reply was lost.
	fail func(i int) error
}

func (s *countingSender) Send(ctx context.Context, name string, payload any, opts ...handlers.SendOption) (handlers.Result, error) {
	res, err := s.next.Send(ctx, name, payload, opts...)
	s.mu.Lock()
	i := len(s.sent)
	s.sent = append(s.sent, res)
	s.mu.Unlock()
	if err == nil && s.fail != nil {
		if ferr := s.fail(i); ferr != nil {
			return handlers.Result{}, ferr
		}
	}
	return res, err
}

func (s *countingSender) results() []handlers.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]handlers.Result(nil), s.sent...)
}

func TestReactorFiresOnlyForMatchingEvents(t *testing.T) {
	e := newRxEnv(t)
	rules := parseRules(t, `
handlers:
  - name: starters
    on: users.*.*.inserted
    entities: [users.acme.*]
    when: event.data.username startsWith "a"
    do:
      command: AddUserToGroup
      payload:
        company: ${ unescape(event.tokens[1]) }
        group: starters
        user: ${ unescape(event.tokens[2]) }
`, handlers.WithCommands(exampleCommands...))
	send := &countingSender{next: e.proc}
	r := e.start(t, rules, send)

	trigger := e.insert(t, "acme", "ann") // matches
	e.insert(t, "acme", "bob")            // when is false
	e.insert(t, "globex", "amy")          // another entity
	_, err := e.proc.Send(context.Background(), "SetAPIKey", example.SetAPIKey{Company: "acme", ID: "ann", Key: "k"})
	must(t, err)                 // not on
	settled(t, r, "starters", 3) // three inserted events

	must(t, e.isMember(t, "acme", "starters", "ann"))
	for _, u := range [][2]string{{"acme", "bob"}, {"globex", "amy"}} {
		if ms := e.memberships(t, u[0], "starters", u[1]); len(ms) != 0 {
			t.Fatalf("%s/%s joined: %v", u[0], u[1], ms)
		}
	}
	if got := send.results(); len(got) != 1 {
		t.Fatalf("sent %d commands, want 1: %+v", len(got), got)
	}
	added := e.memberships(t, "acme", "starters", "ann")[0]
	if added.Actor != "handler:starters" || added.CorrelationID != "conv-ann" || added.CausationID != handlers.FollowOnID("starters", trigger, 0) {
		t.Fatalf("follow-on event metadata: actor %q correlation %q causation %q", added.Actor, added.CorrelationID, added.CausationID)
	}
	if got, want := r.Rules(), []string{"starters"}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("Rules = %v", got)
	}
}

// TestReactorRedeliveryHasOneEffect loses the reply of the first follow-on
// command: the worker retries the triggering event, sends the command
// again with the same id, and the pipeline answers it as a duplicate.
func TestReactorRedeliveryHasOneEffect(t *testing.T) {
	e := newRxEnv(t)
	rules := parseRules(t, `
handlers:
  - name: join
    on: users.*.*.inserted
    backoff: [50ms]
    do:
      command: AddUserToGroup
      payload: {company: "${ unescape(event.tokens[1]) }", group: default, user: "${ unescape(event.tokens[2]) }"}
`, handlers.WithCommands(exampleCommands...))
	send := &countingSender{next: e.proc, fail: func(i int) error {
		if i == 0 {
			return fmt.Errorf("%w: reply lost", jetsource.ErrUnavailable)
		}
		return nil
	}}
	r := e.start(t, rules, send)
	e.insert(t, "acme", "ann")
	settled(t, r, "join", 1)

	got := send.results()
	if len(got) != 2 || got[0].Status != handlers.StatusAccepted || got[0].Duplicate || got[1].Status != handlers.StatusAccepted || !got[1].Duplicate || got[0].ID != got[1].ID {
		t.Fatalf("results %+v, want an accepted command and its duplicate", got)
	}
	if ms := e.memberships(t, "acme", "default", "ann"); len(ms) != 1 {
		t.Fatalf("%d membership events, want exactly 1", len(ms))
	}

	t.Run("ReactTwice", func(t *testing.T) {
		trigger := e.insert(t, "acme", "bob")
		var ev jetsource.Event
		for x, err := range e.store.Read(context.Background(), jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.acme.bob.>")}}) {
			must(t, err)
			ev = x
		}
		if ev.ID != trigger {
			t.Fatalf("event id %q, want %q", ev.ID, trigger)
		}
		settled(t, r, "join", 2) // the worker handled it once already
		for i := range 2 {
			out, err := rules[0].React(context.Background(), ev, e.proc)
			if err != nil || !out.Matched || !out.Sent || out.Result.Status != handlers.StatusAccepted || !out.Result.Duplicate {
				t.Fatalf("React %d: %+v, %v; want an accepted duplicate", i, out, err)
			}
		}
		if ms := e.memberships(t, "acme", "default", "bob"); len(ms) != 1 {
			t.Fatalf("%d membership events, want exactly 1", len(ms))
		}
	})
}

func TestReactorRejectionIsAcknowledged(t *testing.T) {
	e := newRxEnv(t)
	rules := parseRules(t, `
handlers:
  - name: rejoin
    on: users.*.*.deleted
    max_deliver: 3
    backoff: [50ms]
    do:
      command: AddUserToGroup
      payload: {company: acme, group: default, user: "${ unescape(event.tokens[2]) }"}
`, handlers.WithCommands(exampleCommands...))
	send := &countingSender{next: e.proc}
	var logs syncBuffer
	r := e.start(t, rules, send, handlers.WithReactorLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	e.insert(t, "acme", "ann")
	res, err := e.proc.Send(context.Background(), "DeleteUser", example.DeleteUser{Company: "acme", ID: "ann"})
	if err != nil || res.Status != handlers.StatusAccepted {
		t.Fatalf("DeleteUser: %+v, %v", res, err)
	}
	settled(t, r, "rejoin", 1)
	time.Sleep(200 * time.Millisecond) // longer than the backoff: a retry would show
	got := send.results()
	if len(got) != 1 || got[0].Status != handlers.StatusRejected {
		t.Fatalf("results %+v, want one rejection", got)
	}
	if n := deadLetters(t, e, "rejoin"); n != 0 {
		t.Fatalf("%d dead letters, want 0", n)
	}
	if l := logs.String(); !strings.Contains(l, "follow-on command rejected") || !strings.Contains(l, "handler=rejoin") || !strings.Contains(l, "is deleted") {
		t.Fatalf("the rejection is not logged:\n%s", l)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// deadLetters counts the dead letters of a rule's worker.
func deadLetters(t *testing.T, e *rxEnv, rule string) uint64 {
	t.Helper()
	st, err := e.js.Stream(context.Background(), subscriber.DefaultDeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	must(t, err)
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subscriber.DefaultDeadLetterRoot+"."+handlers.DurablePrefix+rule+".>"))
	must(t, err)
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func TestReactorFailureRetriesThenDeadLetters(t *testing.T) {
	e := newRxEnv(t)
	rules := parseRules(t, `
handlers:
  - name: flaky
    on: users.*.*.inserted
    max_deliver: 3
    backoff: [20ms, 40ms]
    do:
      command: AddUserToGroup
      payload: {company: acme, group: default, user: "${ unescape(event.tokens[2]) }"}
  - name: broken
    on: users.*.*.inserted
    max_deliver: 5
    do:
      command: AddUserToGroup
      payload: {user: "${ unescape(event.tokens[2] + '%zz') }"}
`, handlers.WithCommands(exampleCommands...))
	var calls atomic.Int32
	conflicting := handlers.Sender(senderFunc(func(ctx context.Context, name string, payload any, opts ...handlers.SendOption) (handlers.Result, error) {
		calls.Add(1)
		return handlers.Result{Status: handlers.StatusConflict, Command: name, Error: "the boundary kept changing"}, nil
	}))
	e.start(t, rules, conflicting)
	e.insert(t, "acme", "ann")
	waitFor(t, 10*time.Second, func() error {
		if n := deadLetters(t, e, "flaky"); n != 1 {
			return fmt.Errorf("%d dead letters of flaky, want 1", n)
		}
		if n := deadLetters(t, e, "broken"); n != 1 {
			return fmt.Errorf("%d dead letters of broken, want 1", n)
		}
		return nil
	})
	// flaky: three deliveries, three conflicts; broken: its payload fails
	// at once and is dead-lettered without sending.
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d commands sent, want 3", n)
	}
}

type senderFunc func(ctx context.Context, name string, payload any, opts ...handlers.SendOption) (handlers.Result, error)

func (f senderFunc) Send(ctx context.Context, name string, payload any, opts ...handlers.SendOption) (handlers.Result, error) {
	return f(ctx, name, payload, opts...)
}

func TestReactorFlagSkip(t *testing.T) {
	e := newRxEnv(t)
	rules := parseRules(t, `
handlers:
  - name: join
    on: users.*.*.inserted
    flag: join.default
    when_off: skip
    do:
      command: AddUserToGroup
      payload: {company: acme, group: default, user: "${ unescape(event.tokens[2]) }"}
`, handlers.WithCommands(exampleCommands...))
	var fl flags.Var
	r := e.start(t, rules, e.proc, handlers.WithFlags(&fl))

	e.insert(t, "acme", "off1")
	settled(t, r, "join", 1)
	if ms := e.memberships(t, "acme", "default", "off1"); len(ms) != 0 {
		t.Fatalf("joined while the flag was off: %v", ms)
	}

	must(t, fl.Set("join.default", true))
	e.insert(t, "acme", "on1")
	took := waitFor(t, toggleWithin, func() error { return e.isMember(t, "acme", "default", "on1") })
	t.Logf("on: the next event reacted to after %v", took)

	must(t, fl.Set("join.default", false))
	e.insert(t, "acme", "off2")
	settled(t, r, "join", 3)
	if ms := e.memberships(t, "acme", "default", "off2"); len(ms) != 0 {
		t.Fatalf("joined after the flag was turned off: %v", ms)
	}
	if ms := e.memberships(t, "acme", "default", "off1"); len(ms) != 0 {
		t.Fatalf("a skipped event was handled later: %v", ms)
	}
}

// TestReactorFlagPauseExampleConfig runs testdata/handlers/users.yaml over
// the command bus with its flag in a KV bucket: while the flag is off the
// worker waits; once it is turned on the waiting user joins within a
// second, without a restart.
func TestReactorFlagPauseExampleConfig(t *testing.T) {
	e := newRxEnv(t)
	ctx := context.Background()
	rules, err := handlers.LoadRules(filepath.Join("..", "testdata", "handlers", "users.yaml"), handlers.WithCommands(exampleCommands...))
	must(t, err)

	srv, err := handlers.Serve(ctx, e.nc, e.proc)
	must(t, err)
	t.Cleanup(func() { srv.Close() })
	client, err := handlers.NewClient(e.nc)
	must(t, err)

	kv, err := flags.EnsureBucket(ctx, e.js, jetstream.KeyValueConfig{})
	must(t, err)
	set, err := flags.New(flags.WithBucket(kv))
	must(t, err)
	wctx, cancel := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- set.Watch(wctx) }()
	t.Cleanup(func() { cancel(); <-watched })
	<-set.Ready()
	_, err = set.Put(ctx, "join-default-group", false)
	must(t, err)
	waitFor(t, toggleWithin, func() error {
		if set.Enabled(ctx, "join-default-group") {
			return errors.New("flag still on")
		}
		return nil
	})

	r := e.start(t, rules, client, handlers.WithFlags(set))
	e.insert(t, "acme", "ann")
	waitFor(t, 5*time.Second, func() error {
		lag, err := r.Lag(ctx, "join-default-group")
		if err != nil {
			return err
		}
		if lag.AckPending != 1 || lag.Acked != 0 {
			return fmt.Errorf("lag %+v: want the event delivered and waiting", lag)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	if ms := e.memberships(t, "acme", "default", "ann"); len(ms) != 0 {
		t.Fatalf("joined while paused: %v", ms)
	}

	_, err = set.Put(ctx, "join-default-group", true)
	must(t, err)
	took := waitFor(t, toggleWithin, func() error { return e.isMember(t, "acme", "default", "ann") })
	t.Logf("resumed %v after the toggle", took)
	settled(t, r, "join-default-group", 1)

	// Off again: the next user waits, and joins once the flag is back on.
	_, err = set.Put(ctx, "join-default-group", false)
	must(t, err)
	waitFor(t, toggleWithin, func() error {
		if set.Enabled(ctx, "join-default-group") {
			return errors.New("flag still on")
		}
		return nil
	})
	e.insert(t, "acme", "bob")
	time.Sleep(200 * time.Millisecond)
	if ms := e.memberships(t, "acme", "default", "bob"); len(ms) != 0 {
		t.Fatalf("joined while paused: %v", ms)
	}
	_, err = set.Put(ctx, "join-default-group", true)
	must(t, err)
	waitFor(t, toggleWithin, func() error { return e.isMember(t, "acme", "default", "bob") })
	if n := deadLetters(t, e, "join-default-group"); n != 0 {
		t.Fatalf("%d dead letters, want 0", n)
	}
}

func TestReactorStopWhilePaused(t *testing.T) {
	e := newRxEnv(t)
	rules := parseRules(t, `
handlers:
  - name: join
    on: users.*.*.inserted
    flag: join
    when_off: pause
    do:
      command: AddUserToGroup
      payload: {company: acme, group: default, user: "${ unescape(event.tokens[2]) }"}
`, handlers.WithCommands(exampleCommands...))
	var fl flags.Var
	r, err := handlers.NewReactor(e.js, "EVENTS", rules, e.proc, handlers.WithFlags(&fl),
		handlers.WithSubscriberOptions(subscriber.WithDrainTimeout(10*time.Second)))
	must(t, err)
	must(t, r.Start(context.Background()))
	e.insert(t, "acme", "ann")
	waitFor(t, 5*time.Second, func() error {
		lag, err := r.Lag(context.Background(), "join")
		if err != nil || lag.AckPending != 1 {
			return fmt.Errorf("lag %+v, %v: want the event waiting", lag, err)
		}
		return nil
	})
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v while paused", d)
	}
	if err := r.Start(context.Background()); !errors.Is(err, handlers.ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}

	// A new reactor picks the event up once the flag is on.
	must(t, fl.Set("join", true))
	e.start(t, rules, e.proc, handlers.WithFlags(&fl))
	waitFor(t, 5*time.Second, func() error { return e.isMember(t, "acme", "default", "ann") })
}

func TestReactorGoHandler(t *testing.T) {
	e := newRxEnv(t)
	reactions := handlers.NewReactions()
	var seen atomic.Int32
	must(t, reactions.Register("issue-key", handlers.ReactionFunc(func(ctx context.Context, ev jetsource.Event, send handlers.Sender) error {
		if seen.Add(1) == 1 {
			return errors.New("first attempt fails") // retried
		}
		company, _ := subjects.Unescape(ev.Subject.Token(1))
		user, _ := subjects.Unescape(ev.Subject.Token(2))
		res, err := send.Send(ctx, "SetAPIKey", example.SetAPIKey{Company: company, ID: user, Key: "key-" + user})
		if err != nil {
			return err
		}
		return res.Err()
	})))
	rules := parseRules(t, `
handlers:
  - name: keys
    on: users.*.*.inserted
    entities: [users.acme.*]
    go: issue-key
    backoff: [30ms]
`, handlers.WithCommands(exampleCommands...), handlers.WithReactions(reactions))
	r := e.start(t, rules, e.proc)
	e.insert(t, "globex", "amy") // another entity: the reaction is not called
	trigger := e.insert(t, "acme", "ann")
	settled(t, r, "keys", 2)
	if n := seen.Load(); n != 2 {
		t.Fatalf("reaction called %d times, want 2 (one failure, one success)", n)
	}
	var keys []jetsource.Event
	for ev, err := range e.store.Read(context.Background(), jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.*.*.apikeyset")}}) {
		must(t, err)
		keys = append(keys, ev)
	}
	if len(keys) != 1 || keys[0].Subject.String() != "users.acme.ann.apikeyset" || keys[0].Actor != "handler:keys" ||
		keys[0].CausationID != handlers.FollowOnID("keys", trigger, 0) || keys[0].CorrelationID != "conv-ann" {
		t.Fatalf("keys %+v", keys)
	}
}

func TestNewReactorErrors(t *testing.T) {
	e := newRxEnv(t)
	rules := parseRules(t, `
handlers:
  - name: a
    on: users.>
    flag: a
    do: {command: AddUserToGroup}
`)
	for _, tt := range []struct {
		name  string
		js    jetstream.JetStream
		rules []*handlers.Rule
		send  handlers.Sender
		opts  []handlers.ReactorOption
	}{
		{"NilJetStream", nil, rules, e.proc, []handlers.ReactorOption{handlers.WithFlags(flags.Static{})}},
		{"NilSender", e.js, rules, nil, []handlers.ReactorOption{handlers.WithFlags(flags.Static{})}},
		{"FlagWithoutSource", e.js, rules, e.proc, nil},
		{"NilFlagSource", e.js, rules, e.proc, []handlers.ReactorOption{handlers.WithFlags(nil)}},
		{"DuplicateRule", e.js, append(rules, rules...), e.proc, []handlers.ReactorOption{handlers.WithFlags(flags.Static{})}},
		{"NilRule", e.js, []*handlers.Rule{nil}, e.proc, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := handlers.NewReactor(tt.js, "EVENTS", tt.rules, tt.send, tt.opts...); !errors.Is(err, handlers.ErrInvalidOption) {
				t.Fatalf("got %v, want ErrInvalidOption", err)
			}
		})
	}
	t.Run("StreamNotFound", func(t *testing.T) {
		r, err := handlers.NewReactor(e.js, "NOPE", rules, e.proc, handlers.WithFlags(flags.Static{}))
		must(t, err)
		if err := r.Start(context.Background()); !errors.Is(err, jetsource.ErrStreamNotFound) {
			t.Fatalf("got %v, want ErrStreamNotFound", err)
		}
		select {
		case <-r.Closed():
		default:
			t.Fatal("a reactor that failed to start is not closed")
		}
	})
	t.Run("StartTwice", func(t *testing.T) {
		r := e.start(t, rules, e.proc, handlers.WithFlags(flags.Static{}))
		if err := r.Start(context.Background()); !errors.Is(err, subscriber.ErrStarted) {
			t.Fatalf("got %v, want ErrStarted", err)
		}
		if _, err := r.Lag(context.Background(), "nope"); !errors.Is(err, jetsource.ErrNotFound) {
			t.Fatalf("Lag of an unknown rule: %v", err)
		}
	})
}
