package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// testCommands serves a registry of test commands in-process against the
// server: Note (one event per user, at most max), Busy (always loses the
// race) and Broken (always fails).
func testCommands(t *testing.T, url string) *jetstore.Store {
	t.Helper()
	ctx := context.Background()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	type note struct {
		User string `json:"user"`
		Max  int    `json:"max"`
	}
	noteDecider := handlers.Funcs[note, int]{
		QueryFunc: func(p note) ([]subjects.Filter, error) {
			return []subjects.Filter{subjects.MustParseFilter("users." + subjects.Escape(p.User) + ".>")}, nil
		},
		EvolveFunc: func(n int, _ jetsource.Event) int { return n + 1 },
		DecideFunc: func(n int, p note) ([]jetsource.Event, error) {
			if p.User == "" {
				return nil, handlers.Reject("user is required")
			}
			if p.Max > 0 && n >= p.Max {
				return nil, handlers.Reject("too many notes", "the limit is reached")
			}
			return []jetsource.Event{{Subject: subjects.MustParse("users." + subjects.Escape(p.User) + ".noted"), Data: []byte(`{}`)}}, nil
		},
	}
	reg := handlers.NewRegistry()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(reg.Register("Note", handlers.New(noteDecider)))
	must(reg.Register("Busy", handlers.HandlerFunc(func(ctx context.Context, r handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
		f := subjects.MustParseFilter("users.busy.>")
		// Another writer gets in after every read.
		if _, err := st.Append(ctx, jetsource.Event{Subject: subjects.MustParse("users.busy.other")}); err != nil {
			return handlers.Decision{}, err
		}
		return handlers.Decision{Filters: []subjects.Filter{f}, Position: 0, Events: []jetsource.Event{{Subject: subjects.MustParse("users.busy.mine")}}}, nil
	})))
	must(reg.Register("Broken", handlers.HandlerFunc(func(context.Context, handlers.Reader, handlers.Command) (handlers.Decision, error) {
		return handlers.Decision{}, errors.New("the decider is broken")
	})))
	p, err := handlers.NewProcessor(st, reg, handlers.WithMaxAttempts(3), handlers.WithBackoff(0, 0))
	must(err)
	srv, err := handlers.Serve(ctx, nc, p)
	must(err)
	t.Cleanup(func() { srv.Close() })
	return st
}

func TestCommand(t *testing.T) {
	s := serve(t, DefaultConfig())
	st := testCommands(t, s.URL())
	ctx := context.Background()
	srv := "--server=" + s.URL()

	t.Run("AcceptedExit0", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "command", "Note", `{"user":"ann"}`, "--actor", "alice", "--id", "c-1", srv)
		if code != exitOK || out != "accepted\nsequences: 1\n" {
			t.Fatalf("got code %d, out %q, err %q", code, out, errOut)
		}
		for e, err := range st.Read(ctx, jetsource.Query{}) {
			if err != nil || e.Actor != "alice" || e.CausationID != "c-1" {
				t.Fatalf("stored %+v, %v", e, err)
			}
		}
	})
	t.Run("SameIDIsDuplicate", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "command", "Note", `{"user":"ann"}`, "--id", "c-1", "-o", "json", srv)
		var res handlers.Result
		if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || !res.Duplicate || len(res.Sequences) != 1 || res.Sequences[0] != 1 || !strings.Contains(errOut, "duplicate") {
			t.Fatalf("got code %d, out %q, err %q", code, out, errOut)
		}
	})
	t.Run("StdinPayload", func(t *testing.T) {
		code, out, _ := run(t, ctx, `{"user":"ann"}`, "command", "Note", "-", srv)
		if code != exitOK || out != "accepted\nsequences: 2\n" {
			t.Fatalf("got code %d, out %q", code, out)
		}
	})
	t.Run("RejectedExit4", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "command", "Note", `{"user":"ann","max":2}`, srv)
		if code != exitRejected || out != "rejected\nreason: too many notes\nreason: the limit is reached\n" || !strings.Contains(errOut, "rejected: too many notes") {
			t.Fatalf("got code %d, out %q, err %q", code, out, errOut)
		}
		code, out, _ = run(t, ctx, "", "command", "Note", `{"user":"ann","nope":1}`, "-o", "json", srv)
		var res handlers.Result
		if code != exitRejected || json.Unmarshal([]byte(out), &res) != nil || res.Status != handlers.StatusRejected || !strings.Contains(res.Reasons[0], "unknown field") {
			t.Fatalf("unknown field: got code %d, out %q", code, out)
		}
	})
	t.Run("ConflictExit3", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "command", "Busy", srv)
		if code != exitConflict || out != "conflict\nattempts: 3\n" || !strings.Contains(errOut, "conflict") {
			t.Fatalf("got code %d, out %q, err %q", code, out, errOut)
		}
		code, out, _ = run(t, ctx, "", "command", "Busy", "-o", "json", srv)
		var res handlers.Result
		if code != exitConflict || json.Unmarshal([]byte(out), &res) != nil || res.Status != handlers.StatusConflict || res.Conflict == nil || res.Conflict.Filter != "users.busy.>" {
			t.Fatalf("json: got code %d, out %q", code, out)
		}
	})
	t.Run("ErrorExit1", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "command", "Broken", "{}", srv)
		if code != exitError || out != "error\n" || !strings.Contains(errOut, "the decider is broken") {
			t.Fatalf("got code %d, out %q, err %q", code, out, errOut)
		}
	})
	t.Run("UnknownCommandExit1", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "command", "Nope", "{}", srv)
		if code != exitError || out != "" || !strings.Contains(errOut, "unknown command Nope: no command worker serves cmd.Nope") {
			t.Fatalf("got code %d, out %q, err %q", code, out, errOut)
		}
	})
	t.Run("BadInput", func(t *testing.T) {
		for _, c := range []struct {
			name string
			args []string
			want int
			msg  string
		}{
			{"BadName", []string{"command", "a.b", "{}", srv}, exitUsage, "command name"},
			{"NotJSON", []string{"command", "Note", "{bad", srv}, exitUsage, "not JSON"},
			{"NoName", []string{"command", srv}, exitUsage, "arg"},
			{"BadPrefix", []string{"command", "Note", "{}", "--prefix", "a.*", srv}, exitUsage, "prefix"},
			{"Unreachable", []string{"command", "Note", "{}", "--server", "nats://127.0.0.1:1"}, exitError, "cannot connect"},
		} {
			t.Run(c.name, func(t *testing.T) {
				code, out, errOut := run(t, ctx, "", c.args...)
				if code != c.want || out != "" || !strings.Contains(errOut, c.msg) {
					t.Fatalf("got code %d, out %q, err %q; want %d and %q", code, out, errOut, c.want, c.msg)
				}
			})
		}
	})
	var notes int
	for e, err := range st.Read(ctx, jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "noted" || e.Name() == "mine" {
			notes++
		}
	}
	if notes != 2 {
		t.Fatalf("stored %d events of commands, want 2", notes)
	}
}
