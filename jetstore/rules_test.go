package jetstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// Issue 9, point 1: "append '$JS.API.STREAM.DELETE.EVENTS' '{}'" deleted
// the stream. Every write path refuses, before sending anything, a system
// subject, the command bus prefix and a subject the stream does not
// capture, with a message naming the rule.
func TestForbiddenSubjects(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	cfg := jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>", "groups.>"}}
	st := provision(t, js, cfg, jetstore.WithTimeout(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cases := []struct{ subject, rule string }{
		{"$JS.API.STREAM.DELETE.EVENTS", "system subject"},
		{"$JS.API.STREAM.PURGE.EVENTS", "system subject"},
		{"$KV.flags.x", "system subject"},
		{"$O.bucket.x", "system subject"},
		{"$SYS.REQ.x", "system subject"},
		{"_INBOX.abc.def", "system subject"},
		{"_jetsource.guard.EVENTS", "system subject"},
		{"cmd.AddUser", "reserved prefix cmd.>"},
		{"users2.x", "stream EVENTS does not capture users2.x (it captures users.>, groups.>)"},
	}
	good := event("users.a.added", `{}`)
	for _, c := range cases {
		subj, err := subjects.Parse(c.subject)
		if err != nil {
			t.Fatalf("%s: %v", c.subject, err)
		}
		e := jetsource.Event{Subject: subj, Data: []byte(`{}`)}
		paths := map[string]func() error{
			"Append": func() error { _, err := st.Append(ctx, e); return err },
			"AppendConditioned": func() error {
				_, err := st.Append(ctx, e, jetsource.ExpectNoneAfter(0, subjects.MustParseFilter("users.>"), subjects.MustParseFilter("groups.>")))
				return err
			},
			"AppendBatch": func() error { _, err := st.AppendBatch(ctx, []jetsource.Event{good, e}); return err },
			"AppendPrepared": func() error {
				p, err := jetsource.Prepare(e, "test", time.Now())
				if err != nil {
					return err
				}
				_, err = st.AppendPrepared(ctx, []jetsource.Event{p}, nil)
				return err
			},
		}
		for name, f := range paths {
			t.Run(c.subject+"/"+name, func(t *testing.T) {
				err := f()
				if !errors.Is(err, jetsource.ErrForbiddenSubject) {
					t.Fatalf("got %v, want ErrForbiddenSubject", err)
				}
				if !strings.Contains(err.Error(), c.rule) {
					t.Errorf("the error %q does not name the rule %q", err, c.rule)
				}
			})
		}
	}
	// Nothing was sent: the stream is there, empty.
	if _, err := js.Stream(ctx, "EVENTS"); err != nil {
		t.Fatalf("the stream is gone: %v", err)
	}
	if n := lastSequence(t, st); n != 0 {
		t.Fatalf("%d messages were stored", n)
	}

	t.Run("StreamGainsSubject", func(t *testing.T) {
		// A subject the stream captures since the store was opened.
		cfg := cfg
		cfg.Subjects = append(cfg.Subjects, "users2.>")
		if _, err := jetstore.Provision(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, event("users2.x.added", `{}`)); err != nil {
			t.Fatalf("a subject the stream captures now: %v", err)
		}
	})
	t.Run("WithReservedPrefixes", func(t *testing.T) {
		// Another command prefix: ops.cmd is refused, a stream capturing
		// cmd.> can be written.
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "OPS", Subjects: []string{"ops.>", "cmd.>"}, AllowAtomicPublish: true, AllowDirect: true}); err != nil {
			t.Fatal(err)
		}
		ops, err := jetstore.New(ctx, js, "OPS", jetstore.WithReservedPrefixes("ops.cmd"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ops.Append(ctx, event("ops.cmd.Restart", `{}`)); !errors.Is(err, jetsource.ErrForbiddenSubject) {
			t.Fatalf("ops.cmd.Restart: got %v, want ErrForbiddenSubject", err)
		}
		if _, err := ops.Append(ctx, event("cmd.x.done", `{}`)); err != nil {
			t.Fatalf("cmd.x.done, not reserved here: %v", err)
		}
		if _, err := jetstore.New(ctx, js, "OPS", jetstore.WithReservedPrefixes("ops.*")); !errors.Is(err, jetsource.ErrInvalidOption) {
			t.Fatalf("a wildcard prefix: got %v, want ErrInvalidOption", err)
		}
	})
}
