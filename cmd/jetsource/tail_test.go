package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
)

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tail reconnects after a server restart and goes on where it was: every
// event stored after it started is printed once, those stored after the
// restart included.
func TestTailReconnectsAfterRestart(t *testing.T) {
	srv := embeddedtest.Run(t)
	{
		js, err := jetstream.New(embeddedtest.Connect(t, srv))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jetstore.Provision(context.Background(), js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}); err != nil {
			t.Fatal(err)
		}
	}
	url := "--server=" + srv.ClientURL()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncWriter{w: &bytes.Buffer{}}
	errOut := &syncWriter{w: &bytes.Buffer{}}
	m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: errOut, Getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, []string{"tail", "users.>", "-o", "json", url}) }()

	// appendEvent appends one event, retrying while the server is away,
	// and returns its sequence.
	n := 0
	appendEvent := func() uint64 {
		t.Helper()
		n++
		var seq uint64
		waitFor(t, 20*time.Second, "an append to succeed", func() bool {
			code, stdout, _ := run(t, context.Background(), "", "append", fmt.Sprintf("users.A.e%d", n), `{}`, "--id", fmt.Sprintf("e%d", n), url)
			if code != 0 {
				return false
			}
			_, err := fmt.Sscan(stdout, &seq)
			return err == nil
		})
		return seq
	}
	printed := func() map[uint64]int {
		got := map[uint64]int{}
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var v struct {
				Sequence string `json:"sequence"`
			}
			if line == "" || json.Unmarshal([]byte(line), &v) != nil {
				continue
			}
			var s uint64
			fmt.Sscan(v.Sequence, &s)
			got[s]++
		}
		return got
	}
	// Append until tail shows it is following.
	appendEvent()
	waitFor(t, 10*time.Second, "tail to print", func() bool {
		if len(printed()) > 0 {
			return true
		}
		appendEvent()
		return false
	})
	from := ^uint64(0)
	for s := range printed() {
		from = min(from, s)
	}
	before := appendEvent()
	waitFor(t, 10*time.Second, "the event before the restart", func() bool { return printed()[before] > 0 })

	srv = embeddedtest.Restart(t, srv)
	var after []uint64
	for range 5 {
		after = append(after, appendEvent())
	}
	last := after[len(after)-1]
	waitFor(t, 20*time.Second, "the events after the restart", func() bool { return printed()[last] > 0 })
	select {
	case code := <-done:
		t.Fatalf("tail exited %d: %s", code, errOut.String())
	default:
	}
	got := printed()
	for s := from; s <= last; s++ {
		if got[s] != 1 {
			t.Errorf("event %d printed %d times", s, got[s])
		}
	}
	if !strings.Contains(errOut.String(), "reconnected") {
		t.Errorf("tail did not say it reconnected: %q", errOut.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("tail exited %d: %s", code, errOut.String())
	}
}
