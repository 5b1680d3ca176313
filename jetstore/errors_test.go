package jetstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// checkFor polls f every interval until it returns nil, and fails the test
// with f's last error when timeout passes first.
func checkFor(tb testing.TB, timeout, interval time.Duration, f func() error) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			tb.Fatalf("condition not met within %v: %v", timeout, err)
		case <-tick.C:
		}
	}
}

// newJetStream connects to srv and returns the connection and its
// JetStream context; the connection is closed when the test ends.
func newJetStream(tb testing.TB, srv *embedded.Server, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc := embeddedtest.Connect(tb, srv, opts...)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// provision creates the stream and opens a store on it.
func provision(tb testing.TB, js jetstream.JetStream, cfg jetstore.StreamConfig, opts ...jetstore.Option) *jetstore.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := jetstore.Provision(ctx, js, cfg); err != nil {
		tb.Fatalf("provision %s: %v", cfg.Name, err)
	}
	st, err := jetstore.New(ctx, js, cfg.Name, opts...)
	if err != nil {
		tb.Fatalf("open store %s: %v", cfg.Name, err)
	}
	return st
}

// readAll reads every event matching q, failing the test on an error.
func readAll(tb testing.TB, st jetsource.Store, q jetsource.Query) []jetsource.Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []jetsource.Event
	for e, err := range st.Read(ctx, q) {
		if err != nil {
			tb.Fatalf("read: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// lastSequence returns the last sequence of the whole store, failing the
// test on an error.
func lastSequence(tb testing.TB, st jetsource.Store) uint64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seq, err := st.LastSequence(ctx, subjects.All())
	if err != nil {
		tb.Fatalf("last sequence: %v", err)
	}
	return seq
}

func event(subject, data string) jetsource.Event {
	return jetsource.Event{Subject: subjects.MustParse(subject), Data: []byte(data)}
}

// authConfig defines the account APP with an administrator and a writer
// that may use the JetStream API and receive replies but not publish
// events.
const authConfig = `
accounts: {
  APP: {
    jetstream: enabled
    users: [
      {user: admin, password: admin}
      {user: writer, password: writer, permissions: {
        publish: {allow: ["$JS.API.>", "audit.>"]}
        subscribe: {allow: ["_INBOX.>"]}
      }}
    ]
  }
}
`

// quiet drops the asynchronous errors nats.go would otherwise print, such
// as the permission violations these tests cause on purpose.
func quiet() nats.Option {
	return nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
}

func runWithAuth(tb testing.TB) *embedded.Server {
	tb.Helper()
	return embeddedtest.Run(tb, embedded.WithServerOptions(func(o *server.Options) error {
		return o.ProcessConfigString(authConfig)
	}))
}

func TestAppendDeniedPublishIsPermissionDenied(t *testing.T) {
	srv := runWithAuth(t)
	_, admin := newJetStream(t, srv, nats.UserInfo("admin", "admin"))
	adminStore := provision(t, admin, jetstore.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})

	_, writer := newJetStream(t, srv, nats.UserInfo("writer", "writer"), quiet())
	st, err := jetstore.New(context.Background(), writer, "ORDERS", jetstore.WithTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("New as writer: %v", err)
	}

	start := time.Now()
	_, err = st.Append(context.Background(), event("orders.A.placed", `{"total":1}`))
	took := time.Since(start)
	if !errors.Is(err, jetsource.ErrPermissionDenied) {
		t.Fatalf("Append: got %v, want ErrPermissionDenied", err)
	}
	if took >= 2*time.Second {
		t.Errorf("Append took %v, want well under 2s with a 500ms timeout", took)
	}
	if got := lastSequence(t, adminStore); got != 0 {
		t.Errorf("last sequence after a denied append: got %d, want 0", got)
	}
	// The writer may still read: it is only denied publishing events.
	if got := lastSequence(t, st); got != 0 {
		t.Errorf("last sequence seen by the writer: got %d, want 0", got)
	}
}

// An earlier permission violation on a connection must not turn a later,
// unrelated timeout into ErrPermissionDenied: nats.go keeps the last
// violation in LastError until the connection reconnects.
func TestAppendTimeoutAfterEarlierDenialIsUnavailable(t *testing.T) {
	srv := runWithAuth(t)
	anc, admin := newJetStream(t, srv, nats.UserInfo("admin", "admin"))
	// The stream captures audit.> when the store opens, then no longer:
	// the store still takes audit.> for a stream subject.
	provision(t, admin, jetstore.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>", "audit.>"}})
	_, writer := newJetStream(t, srv, nats.UserInfo("writer", "writer"), quiet())
	st, err := jetstore.New(context.Background(), writer, "ORDERS", jetstore.WithTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatalf("New as writer: %v", err)
	}
	if _, err := jetstore.Provision(context.Background(), admin, jetstore.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	// Something that is not a stream takes audit.> and never answers.
	sub, err := anc.SubscribeSync("audit.>")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := anc.Flush(); err != nil {
		t.Fatal(err)
	}

	if _, err := st.Append(context.Background(), event("orders.A.placed", `{}`)); !errors.Is(err, jetsource.ErrPermissionDenied) {
		t.Fatalf("denied Append: got %v, want ErrPermissionDenied", err)
	}
	_, err = st.Append(context.Background(), event("audit.A.logged", `{}`))
	if !errors.Is(err, jetsource.ErrUnavailable) || errors.Is(err, jetsource.ErrPermissionDenied) {
		t.Fatalf("unanswered Append: got %v, want ErrUnavailable (and not ErrPermissionDenied)", err)
	}
}

func TestUnavailableServer(t *testing.T) {
	const timeout = 300 * time.Millisecond
	cases := []struct {
		name string
		// down makes the server unreachable for nc.
		down    func(t *testing.T, srv *embedded.Server, nc *nats.Conn)
		natsOpt nats.Option
	}{
		{
			name:    "ClosedConnection",
			natsOpt: nats.NoReconnect(),
			down:    func(t *testing.T, _ *embedded.Server, nc *nats.Conn) { nc.Close() },
		},
		{
			name:    "ServerShutDownNoReconnect",
			natsOpt: nats.NoReconnect(),
			down: func(t *testing.T, srv *embedded.Server, nc *nats.Conn) {
				srv.Shutdown()
				checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
					if !nc.IsClosed() {
						return fmt.Errorf("connection status %v", nc.Status())
					}
					return nil
				})
			},
		},
		{
			name:    "ServerShutDownWhileReconnecting",
			natsOpt: nats.MaxReconnects(-1),
			down: func(t *testing.T, srv *embedded.Server, nc *nats.Conn) {
				srv.Shutdown()
				checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
					if !nc.IsReconnecting() {
						return fmt.Errorf("connection status %v", nc.Status())
					}
					return nil
				})
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := embeddedtest.Run(t)
			nc, js := newJetStream(t, srv, c.natsOpt)
			st := provision(t, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}, jetstore.WithTimeout(timeout))
			c.down(t, srv, nc)

			ops := []struct {
				name string
				run  func(ctx context.Context) error
			}{
				{"Append", func(ctx context.Context) error {
					_, err := st.Append(ctx, event("users.A.added", `{"name":"Ann"}`))
					return err
				}},
				{"Read", func(ctx context.Context) error {
					for _, err := range st.Read(ctx, jetsource.Query{}) {
						if err != nil {
							return err
						}
					}
					return errors.New("read ended without an error")
				}},
				{"LastSequence", func(ctx context.Context) error {
					_, err := st.LastSequence(ctx, subjects.All())
					return err
				}},
				{"New", func(ctx context.Context) error {
					_, err := jetstore.New(ctx, js, "EVENTS", jetstore.WithTimeout(timeout))
					return err
				}},
			}
			for _, op := range ops {
				start := time.Now()
				err := op.run(context.Background())
				took := time.Since(start)
				if !errors.Is(err, jetsource.ErrUnavailable) {
					t.Errorf("%s: got %v, want ErrUnavailable", op.name, err)
				}
				if took > timeout+time.Second {
					t.Errorf("%s took %v with a %v timeout", op.name, took, timeout)
				}
			}
		})
	}
}

func TestMissingStream(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	orders := provision(t, js, jetstore.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}, jetstore.WithTimeout(2*time.Second))
	users := provision(t, js, jetstore.StreamConfig{Name: "USERS", Subjects: []string{"users.>"}})

	t.Run("NewOnMissingStream", func(t *testing.T) {
		_, err := jetstore.New(context.Background(), js, "NOPE")
		if !errors.Is(err, jetsource.ErrStreamNotFound) {
			t.Fatalf("got %v, want ErrStreamNotFound", err)
		}
	})

	cases := []struct {
		name    string
		subject string
	}{
		{"SubjectNoStreamCaptures", "payments.A.paid"},
		{"SubjectOfAnotherStream", "users.A.added"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := orders.Append(context.Background(), event(c.subject, `{}`))
			if !errors.Is(err, jetsource.ErrStreamNotFound) {
				t.Fatalf("got %v, want ErrStreamNotFound", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Append took %v with a 2s timeout", took)
			}
			if got := lastSequence(t, orders); got != 0 {
				t.Errorf("ORDERS last sequence: got %d, want 0", got)
			}
			if got := lastSequence(t, users); got != 0 {
				t.Errorf("USERS last sequence: got %d, want 0 (the other stream stored the event)", got)
			}
		})
	}
}

func TestPayloadTooLarge(t *testing.T) {
	const serverMax = 64 * 1024
	srv := embeddedtest.Run(t, embedded.WithMaxPayload(serverMax))
	_, js := newJetStream(t, srv)

	big := func(n int) []byte { return []byte(strings.Repeat("x", n)) }
	blob := func(subject string, n int) jetsource.Event {
		return jetsource.Event{Subject: subjects.MustParse(subject), DataContentType: "application/octet-stream", Data: big(n)}
	}

	t.Run("OverServerMaxPayload", func(t *testing.T) {
		st := provision(t, js, jetstore.StreamConfig{Name: "SERVERMAX", Subjects: []string{"servermax.>"}})
		_, err := st.Append(context.Background(), blob("servermax.A.added", serverMax))
		if !errors.Is(err, jetsource.ErrPayloadTooLarge) {
			t.Fatalf("got %v, want ErrPayloadTooLarge", err)
		}
		if got := lastSequence(t, st); got != 0 {
			t.Errorf("last sequence: got %d, want 0", got)
		}
	})

	t.Run("OverStreamMaxMsgSize", func(t *testing.T) {
		st := provision(t, js, jetstore.StreamConfig{Name: "STREAMMAX", Subjects: []string{"streammax.>"}, MaxMsgSize: 1024})
		_, err := st.Append(context.Background(), blob("streammax.A.added", 2048))
		if !errors.Is(err, jetsource.ErrPayloadTooLarge) {
			t.Fatalf("got %v, want ErrPayloadTooLarge", err)
		}
		if got := lastSequence(t, st); got != 0 {
			t.Errorf("last sequence: got %d, want 0", got)
		}
	})

	// The store learns MaxMsgSize when it opens the stream; a limit lowered
	// later is enforced by the server, and its refusal maps the same way.
	t.Run("StreamMaxMsgSizeLoweredAfterNew", func(t *testing.T) {
		cfg := jetstore.StreamConfig{Name: "LOWERED", Subjects: []string{"lowered.>"}}
		st := provision(t, js, cfg)
		cfg.MaxMsgSize = 1024
		if _, err := jetstore.Provision(context.Background(), js, cfg); err != nil {
			t.Fatalf("lower MaxMsgSize: %v", err)
		}
		_, err := st.Append(context.Background(), blob("lowered.A.added", 2048))
		if !errors.Is(err, jetsource.ErrPayloadTooLarge) {
			t.Fatalf("got %v, want ErrPayloadTooLarge", err)
		}
		if got := lastSequence(t, st); got != 0 {
			t.Errorf("last sequence: got %d, want 0", got)
		}
	})

	// Near a limit, an append either stores the event or fails with
	// ErrPayloadTooLarge and stores nothing; no other error leaks out.
	limits := []struct {
		name  string
		cfg   jetstore.StreamConfig
		limit int
	}{
		{"NearServerMaxPayload", jetstore.StreamConfig{Name: "NEARSERVER", Subjects: []string{"nearserver.>"}}, serverMax},
		{"NearStreamMaxMsgSize", jetstore.StreamConfig{Name: "NEARSTREAM", Subjects: []string{"nearstream.>"}, MaxMsgSize: 1024}, 1024},
	}
	for _, l := range limits {
		t.Run(l.name, func(t *testing.T) {
			st := provision(t, js, l.cfg)
			subject := strings.ToLower(l.cfg.Name) + ".A.added"
			var stored uint64
			for n := l.limit - 512; n <= l.limit+16; n += 8 {
				ack, err := st.Append(context.Background(), blob(subject, n))
				switch {
				case err == nil:
					stored++
					if ack.Sequence != stored {
						t.Fatalf("%d bytes: stored at %d, want %d", n, ack.Sequence, stored)
					}
				case errors.Is(err, jetsource.ErrPayloadTooLarge):
				default:
					t.Fatalf("%d bytes: got %v, want success or ErrPayloadTooLarge", n, err)
				}
				if n >= l.limit && err == nil {
					t.Errorf("%d bytes of data stored with a limit of %d", n, l.limit)
				}
			}
			if stored == 0 {
				t.Errorf("no event stored, even %d bytes under the limit", 512)
			}
			if got := lastSequence(t, st); got != stored {
				t.Errorf("last sequence: got %d, want %d (the successful appends)", got, stored)
			}
		})
	}
}

func TestAppendBadInput(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	st := provision(t, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}})

	cases := []struct {
		name  string
		event jetsource.Event
		want  error
	}{
		{"ErrInvalidDataNotJSON", jetsource.Event{Subject: subjects.MustParse("users.A.added"), DataContentType: "application/json", Data: []byte(`{"name":`)}, jetsource.ErrInvalidData},
		{"ErrInvalidDataDefaultJSON", jetsource.Event{Subject: subjects.MustParse("users.A.added"), Data: []byte(`not json`)}, jetsource.ErrInvalidData},
		{"ErrInvalidDataJSONSuffix", jetsource.Event{Subject: subjects.MustParse("users.A.added"), DataContentType: "application/vnd.user+json", Data: []byte(`{`)}, jetsource.ErrInvalidData},
		{"ErrInvalidSubjectZero", jetsource.Event{Data: []byte(`{}`)}, jetsource.ErrInvalidSubject},
		{"ErrInvalidSubjectOneToken", jetsource.Event{Subject: subjects.MustParse("users"), Data: []byte(`{}`)}, jetsource.ErrInvalidSubject},
		{"ErrInvalidEventControlCharacter", jetsource.Event{Subject: subjects.MustParse("users.A.added"), Actor: "ann\n", Data: []byte(`{}`)}, jetsource.ErrInvalidEvent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := st.Append(context.Background(), c.event)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if got := lastSequence(t, st); got != 0 {
		t.Errorf("last sequence after bad appends: got %d, want 0", got)
	}
	if got := readAll(t, st, jetsource.Query{}); len(got) != 0 {
		t.Errorf("read %d events after bad appends, want none", len(got))
	}
}

func TestConflictOnSingleReplica(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	st := provision(t, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}, Replicas: 1})
	ctx := context.Background()

	first, err := st.Append(ctx, event("users.A.added", `{"name":"Ann"}`), jetsource.ExpectSequence(0))
	if err != nil {
		t.Fatal(err)
	}
	// Another aggregate moves the stream on but not users.A.
	if _, err := st.Append(ctx, event("users.B.added", `{"name":"Bob"}`)); err != nil {
		t.Fatal(err)
	}

	t.Run("ConflictReportsCurrent", func(t *testing.T) {
		_, err := st.Append(ctx, event("users.A.renamed", `{"name":"Anna"}`), jetsource.ExpectSequence(0))
		if !errors.Is(err, jetsource.ErrConflict) {
			t.Fatalf("got %v, want ErrConflict", err)
		}
		var ce *jetsource.ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("got %T, want *ConflictError", err)
		}
		if !ce.CurrentKnown || ce.Current != first.Sequence {
			t.Errorf("current: got %d (known %v), want %d", ce.Current, ce.CurrentKnown, first.Sequence)
		}
		if ce.Expected != 0 || ce.Filter != "users.A.>" {
			t.Errorf("expected %d on %q, want 0 on users.A.>", ce.Expected, ce.Filter)
		}
		if got := lastSequence(t, st); got != 2 {
			t.Errorf("last sequence after a conflict: got %d, want 2", got)
		}
	})

	t.Run("RetryOfSuccessIsDuplicate", func(t *testing.T) {
		e := event("users.A.renamed", `{"name":"Anna"}`)
		e.ID = "rename-1"
		ack, err := st.Append(ctx, e, jetsource.ExpectSequence(first.Sequence))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate {
			t.Fatalf("first append reported as duplicate: %+v", ack)
		}
		// The same append again, as after a lost acknowledgement: its
		// expectation no longer holds, but it is the stored event itself.
		retry, err := st.Append(ctx, e, jetsource.ExpectSequence(first.Sequence))
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if !retry.Duplicate || retry.Sequence != ack.Sequence || retry.Stream != "EVENTS" {
			t.Errorf("retry: got %+v, want duplicate of sequence %d on EVENTS", retry, ack.Sequence)
		}
		// Not once the aggregate moved on: then it is a real conflict.
		if _, err := st.Append(ctx, event("users.A.removed", `{}`), jetsource.ExpectSequence(ack.Sequence)); err != nil {
			t.Fatal(err)
		}
		other := e
		other.ID = "rename-2"
		_, err = st.Append(ctx, other, jetsource.ExpectSequence(first.Sequence))
		var ce *jetsource.ConflictError
		if !errors.As(err, &ce) || ce.Current != ack.Sequence+1 {
			t.Errorf("stale append with a new id: got %v, want a conflict at %d", err, ack.Sequence+1)
		}
		n := 0
		for _, ev := range readAll(t, st, jetsource.Query{}) {
			if ev.ID == e.ID {
				n++
			}
		}
		if n != 1 {
			t.Errorf("event %s stored %d times, want once", e.ID, n)
		}
	})
}

func TestReadPlainPublish(t *testing.T) {
	srv := embeddedtest.Run(t)
	nc, js := newJetStream(t, srv)
	st := provision(t, js, jetstore.StreamConfig{Name: "USERS", Subjects: []string{"users.>"}})

	if err := nc.Publish("users.A.added", []byte(`{"name":"Ann"}`)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := lastSequence(t, st); n != 1 {
			return fmt.Errorf("last sequence %d, want 1", n)
		}
		return nil
	})

	got := readAll(t, st, jetsource.Query{})
	if len(got) != 1 {
		t.Fatalf("read %d events, want 1", len(got))
	}
	e := got[0]
	raw, err := js.Stream(context.Background(), "USERS")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := raw.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ID", e.ID, "USERS-1"},
		{"Type", e.Type, "users.added"},
		{"Source", e.Source, "/streams/USERS"},
		{"Subject", e.Subject.String(), "users.A.added"},
		{"DataContentType", e.DataContentType, "application/json"},
		{"Data", string(e.Data), `{"name":"Ann"}`},
		{"Stream", e.Stream, "USERS"},
		{"Sequence", e.Sequence, uint64(1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if !e.Time.Equal(e.Stored) || !e.Stored.Equal(msg.Time) {
		t.Errorf("time %v, stored %v, want both the stream's time %v", e.Time, e.Stored, msg.Time)
	}
	ce, err := e.ToCloudEvent()
	if err != nil {
		t.Fatalf("ToCloudEvent: %v", err)
	}
	if err := ce.Validate(); err != nil {
		t.Errorf("CloudEvent does not validate: %v", err)
	}
}

// A read that loses its connection before reaching the stored head must
// say so, not end early as if every event had been read.
func TestReadConnectionLostMidReadIsUnavailable(t *testing.T) {
	cases := []struct {
		name   string
		follow bool
	}{
		{"UpToHead", false},
		{"Follow", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := embeddedtest.Run(t)
			nc, js := newJetStream(t, srv, nats.NoReconnect(), quiet())
			st := provision(t, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}, jetstore.WithPullBatch(1))
			for i := range 20 {
				if _, err := st.Append(context.Background(), event("users.A.added", fmt.Sprintf(`{"n":%d}`, i))); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			n := 0
			var last error
			for _, err := range st.Read(ctx, jetsource.Query{Follow: c.follow}) {
				if err != nil {
					last = err
					break
				}
				if n++; n == 1 {
					nc.Close()
				}
			}
			took := time.Since(start)
			if !errors.Is(last, jetsource.ErrUnavailable) {
				t.Errorf("read %d of 20 events, then got %v after %v; want ErrUnavailable", n, last, took)
			}
			if took > 3*time.Second {
				t.Errorf("read took %v to report the lost connection", took)
			}
		})
	}
}

// A read whose server goes away while the client keeps trying to
// reconnect gives up within the store's timeout, even when its context has
// no deadline.
func TestReadServerLostMidReadIsUnavailable(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv, reconnecting()...)
	st := provision(t, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}, jetstore.WithPullBatch(1), jetstore.WithTimeout(timeout))
	for i := range 20 {
		if _, err := st.Append(context.Background(), event("users.A.added", fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background()) // no deadline
	defer cancel()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		var r result
		for _, err := range st.Read(ctx, jetsource.Query{}) {
			if err != nil {
				r.err = err
				break
			}
			if r.n++; r.n == 1 {
				srv.Shutdown()
			}
		}
		done <- r
	}()
	select {
	case r := <-done:
		if !errors.Is(r.err, jetsource.ErrUnavailable) {
			t.Errorf("read %d of 20 events, then got %v after %v; want ErrUnavailable", r.n, r.err, time.Since(start))
		}
	case <-time.After(timeout + 2*time.Second):
		cancel()
		r := <-done
		t.Errorf("read %d of 20 events and was still waiting %v after the server went away; then got %v", r.n, time.Since(start), r.err)
	}
}

func TestMapErr(t *testing.T) {
	api := func(status, code int) error {
		return &jetstream.APIError{Code: status, ErrorCode: jetstream.ErrorCode(code), Description: fmt.Sprintf("code %d", code)}
	}
	cases := []struct {
		name      string
		err       error
		want      error // nil: passed through unchanged
		transient bool
	}{
		{"ClusterNoPeers", api(400, 10005), jetsource.ErrUnavailable, true},
		{"ClusterNotAvailable", api(503, 10008), jetsource.ErrUnavailable, true},
		{"ClusterNotLeader", api(500, 10009), jetsource.ErrUnavailable, true},
		{"ExpectedLastSeqPerSubjectNotReady", api(503, 10163), jetsource.ErrUnavailable, true},
		{"DuplicateMessageIDInProcess", api(409, 10158), jetsource.ErrUnavailable, true},
		{"WrappedClusterNotAvailable", fmt.Errorf("request: %w", api(503, 10008)), jetsource.ErrUnavailable, true},
		{"InsufficientResourcesIsFull", api(503, 10023), jetsource.ErrStorageFull, false},
		{"MaxBytesIsFull", &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum bytes exceeded"}, jetsource.ErrStorageFull, false},
		{"InsufficientResources", api(503, 10023), jetsource.ErrUnavailable, false},
		{"BatchTooManyInFlight", api(429, 10210), jetsource.ErrUnavailable, false},
		{"StreamNotFound", api(404, 10059), jetsource.ErrStreamNotFound, false},
		{"MessageTooLarge", api(400, 10054), jetsource.ErrPayloadTooLarge, false},
		{"WrongLastSequence", api(400, 10071), nil, false},
		{"WrongLastSequenceConstant", api(400, 10164), nil, false},
		{"NoResponders", nats.ErrNoResponders, jetsource.ErrUnavailable, true},
		{"JetStreamNotAnswering", jetstream.ErrJetStreamNotEnabled, jetsource.ErrUnavailable, true},
		{"Timeout", context.DeadlineExceeded, jetsource.ErrUnavailable, false},
		{"ConnectionClosed", nats.ErrConnectionClosed, jetsource.ErrUnavailable, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := jetstore.MapErr(c.err)
			switch {
			case c.want == nil && got != c.err:
				t.Errorf("got %v, want %v unchanged", got, c.err)
			case c.want != nil && !errors.Is(got, c.want):
				t.Errorf("got %v, want it to match %v", got, c.want)
			}
			if !errors.Is(got, c.err) {
				t.Errorf("got %v, which lost the original %v", got, c.err)
			}
			if tr := jetstore.Transient(c.err); tr != c.transient {
				t.Errorf("transient: got %v, want %v", tr, c.transient)
			}
		})
	}
}
