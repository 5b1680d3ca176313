package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// exampleConfig is the configuration of the example domain.
const exampleConfig = "../../testdata/example/config.yaml"

// background is a command running in-process until its context ends.
type background struct {
	log    *syncWriter
	cancel context.CancelFunc
	done   chan int
}

// startBackground runs the CLI with args in a goroutine and waits until
// its log contains ready.
func startBackground(t *testing.T, ready string, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{log: &syncWriter{w: &bytes.Buffer{}}, cancel: cancel, done: make(chan int, 1)}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: b.log, Getenv: func(string) string { return "" }}
	go func() { b.done <- m.Run(ctx, args) }()
	t.Cleanup(func() { b.stop(t) })
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.log.String(), ready) {
		select {
		case code := <-b.done:
			b.done <- code
			t.Fatalf("%v exited %d before it was ready: %s", args, code, b.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not start: %s", args, b.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return b
}

// stop cancels the command (as SIGINT does) and returns its exit code.
func (b *background) stop(t *testing.T) int {
	t.Helper()
	b.cancel()
	select {
	case code := <-b.done:
		b.done <- code
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("the command did not stop: %s", b.log.String())
		return -1
	}
}

// eventually polls f every 20ms until it returns true or the time is up.
func eventually(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExample runs the walkthrough of the example domain in-process, the
// same steps as .ci/example.sh with the binary: serve with the example
// configuration, commands, a flag toggled at run time (off, on, off, on)
// taking effect without a restart, a raw publish, state, events, the
// projection's status and read model, and a graceful stop in reverse
// order.
func TestExample(t *testing.T) {
	ctx := context.Background()
	cfg, err := LoadConfig(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen, cfg.Server.Data, cfg.Server.Sync = "127.0.0.1:0", t.TempDir(), "1s"
	logb := &syncWriter{w: &bytes.Buffer{}}
	s, err := StartServe(ctx, cfg, slog.New(slog.NewTextHandler(logb, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	srv := "--server=" + s.URL()
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cli := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := run(t, ctx, "", append(args, srv)...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d: %s%s", args, code, want, out, errOut)
		}
		return out
	}
	// insert inserts a user and returns the sequence of its inserted event.
	insert := func(id string) uint64 {
		t.Helper()
		out := cli(exitOK, "command", "InsertUser", `{"company":"acme","id":"`+id+`","name":"`+id+`","username":"`+id+`"}`)
		var seq, claimed uint64
		if n, _ := fmt.Sscanf(out, "accepted\nsequences: %d %d\n", &seq, &claimed); n != 2 {
			t.Fatalf("InsertUser %s: %q", id, out)
		}
		return seq
	}
	member := func(id string) bool {
		return strings.Count(cli(exitOK, "events", "groups.acme.default.members."+id+".>", "-o", "json"), "\n") == 1
	}
	// lastSeq is the stream's last sequence.
	lastSeq := func() uint64 {
		st, err := js.Stream(ctx, "EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	// handed waits until the handler's worker holds the event at seq:
	// delivered, and (paused) not acknowledged.
	handed := func(seq uint64) {
		t.Helper()
		eventually(t, 5*time.Second, "the handler did not receive the event", func() bool {
			c, err := js.Consumer(ctx, "EVENTS", "handler-join-default-group")
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			return err == nil && info.Delivered.Stream >= seq && info.NumAckPending >= 1
		})
	}
	setFlag := func(v string) string {
		t.Helper()
		return cli(exitOK, "flags", "set", "join-default-group", v, "--file", "../../testdata/example/flags.yaml", "--actor", "alice")
	}

	// The flag is off by default (the flag file): the handler pauses.
	if out := cli(exitOK, "flags", "list", "--file", "../../testdata/example/flags.yaml"); !regexp.MustCompile(`join-default-group\s+off\s+file`).MatchString(out) {
		t.Fatalf("flags list: %q", out)
	}
	handed(insert("ann"))
	if member("ann") {
		t.Fatal("ann joined the default group while the flag is off")
	}

	// Turning it on lets the paused handler go on, without a restart.
	if out := setFlag("on"); !strings.Contains(out, "join-default-group: off (file) -> on (kv)") {
		t.Fatalf("flags set: %q", out)
	}
	eventually(t, 5*time.Second, "ann did not join the default group once the flag was on", func() bool { return member("ann") })
	var joined struct {
		Actor       string `json:"actor"`
		CausationID string `json:"causationid"`
		Command     string `json:"command"`
	}
	if err := json.Unmarshal([]byte(cli(exitOK, "events", "groups.acme.default.members.ann.>", "-o", "json")), &joined); err != nil {
		t.Fatal(err)
	}
	if joined.Actor != "handler:join-default-group" || joined.Command != "AddUserToGroup" || !strings.HasPrefix(joined.CausationID, "join-default-group:") {
		t.Fatalf("the follow-on event: %+v", joined)
	}

	// A plain publish (nats pub) is an event too, and the handler reacts.
	if err := nc.Publish("users.acme.bob.inserted", []byte(`{"name":"Bob","username":"bob"}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "bob did not join", func() bool { return member("bob") })

	// Off again: the next user waits; on: it joins.
	if out := setFlag("off"); !strings.Contains(out, "on (kv) -> off (kv)") {
		t.Fatalf("flags set off: %q", out)
	}
	eventually(t, 5*time.Second, "the handlers' flag set did not see the flag turn off", func() bool {
		return !s.Flags().Enabled(ctx, "join-default-group")
	})
	handed(insert("carl"))
	if member("carl") {
		t.Fatal("carl joined while the flag is off")
	}
	setFlag("on")
	eventually(t, 5*time.Second, "carl did not join once the flag was on again", func() bool { return member("carl") })

	// State folds an aggregate's events; events lists them all.
	if out := cli(exitOK, "state", "users.acme.ann", "-o", "json"); !strings.Contains(out, `"state":{"name":"ann","username":"ann"}`) {
		t.Fatalf("state: %q", out)
	}
	if out := cli(exitOK, "events"); strings.Count(out, "groups.acme.default.members.") != 3 || strings.Count(out, "flags.join-default-group.changed") != 3 {
		t.Fatalf("events: %s", out)
	}

	// The group-members projection: caught up, one key per membership.
	head := lastSeq()
	eventually(t, 5*time.Second, "the projection did not catch up", func() bool {
		var st struct {
			Name       string `json:"name"`
			Checkpoint uint64 `json:"checkpoint"`
			Lag        uint64 `json:"lag"`
		}
		out := cli(exitOK, "projections", "status", "--config", exampleConfig, "-o", "json")
		return json.Unmarshal([]byte(out), &st) == nil && st.Name == "group-members" && st.Lag == 0 && st.Checkpoint >= head-2
	})
	members := func() []string {
		kv, err := js.KeyValue(ctx, "group-members")
		if err != nil {
			t.Fatal(err)
		}
		keys, err := kv.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		keys = slices.DeleteFunc(keys, func(k string) bool { return strings.HasPrefix(k, "_jetsource") })
		slices.Sort(keys)
		return keys
	}
	if got := members(); !slices.Equal(got, []string{"groups.acme.default.members.ann", "groups.acme.default.members.bob", "groups.acme.default.members.carl"}) {
		t.Fatalf("group-members: %v", got)
	}

	// The domain's rules hold: a member cannot be deleted until removed.
	if out := cli(exitRejected, "command", "DeleteUser", `{"company":"acme","id":"ann"}`); !strings.Contains(out, "member of the groups default") {
		t.Fatalf("DeleteUser of a member: %q", out)
	}
	cli(exitOK, "command", "RemoveUserFromGroup", `{"company":"acme","group":"default","user":"ann"}`)
	cli(exitOK, "command", "DeleteUser", `{"company":"acme","id":"ann"}`)
	eventually(t, 5*time.Second, "the projection did not drop ann's membership", func() bool {
		return slices.Equal(members(), []string{"groups.acme.default.members.bob", "groups.acme.default.members.carl"})
	})

	// Close (SIGINT for the command): every part stops, in the reverse
	// order of its start.
	s.Close()
	log := logb.String()
	last := -1
	for _, step := range []string{"serving commands", "running projections", "watching flags", "running handlers",
		"stopped handlers", "stopped flag watcher", "stopped projections", "stopped command workers"} {
		i := strings.Index(log, step)
		if i <= last {
			t.Fatalf("%q is missing or out of order in the log:\n%s", step, log)
		}
		last = i
	}
}
