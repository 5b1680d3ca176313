package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/subscriber"
)

// The catalogue of malformed messages, published by a plain NATS client
// between good events: events, events -o json, surface, state and audit
// all go on past them, show the malformed ones marked and the good events
// after them.
func TestReadCommandsGoOnPastMalformedMessages(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx := context.Background()
	srv := "--server=" + s.URL()
	appendGood := func(subject, data string) {
		t.Helper()
		if code, _, errOut := run(t, ctx, "", "append", subject, data, "--actor", "alice", srv); code != 0 {
			t.Fatalf("append %s: %s", subject, errOut)
		}
	}
	appendGood("users.A.added", `{"name":"Ann"}`)
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	shapes, seqs := embeddedtest.PublishMalformed(t, nc, "users")
	appendGood("users.A.renamed", `{"name":"Anne"}`)
	appendGood("users.m3.renamed", `{"name":"M3"}`)
	const malformed = 9 // the shapes that cannot be read as events
	total := len(shapes) + 3

	t.Run("Events", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "events", srv)
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		if n := strings.Count(out, "MALFORMED"); n != malformed {
			t.Errorf("%d rows marked MALFORMED, want %d:\n%s", n, malformed, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != total+1 || !strings.Contains(lines[len(lines)-1], "users.m3.renamed") {
			t.Fatalf("want %d rows ending with the good event after the catalogue:\n%s", total, out)
		}
		if !strings.Contains(out, "users.*.added") || !strings.Contains(out, "unsupported spec version") {
			t.Errorf("raw subject or reason missing:\n%s", out)
		}
	})
	t.Run("EventsJSON", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "events", "-o", "json", srv)
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != total {
			t.Fatalf("%d lines, want %d", len(lines), total)
		}
		n := 0
		for i, l := range lines {
			var v struct {
				Subject    string          `json:"subject"`
				Sequence   string          `json:"sequence"`
				Data       json.RawMessage `json:"data"`
				DataBase64 string          `json:"data_base64"`
				Malformed  *struct {
					Subject string              `json:"subject"`
					Reason  string              `json:"reason"`
					Headers map[string][]string `json:"headers"`
				} `json:"malformed"`
			}
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatalf("line %d is not JSON: %v: %s", i, err, l)
			}
			if v.Malformed != nil {
				n++
				if v.Malformed.Subject == "" || v.Malformed.Reason == "" || v.Malformed.Headers == nil {
					t.Errorf("line %d: malformed member incomplete: %s", i, l)
				}
			}
		}
		if n != malformed {
			t.Errorf("%d malformed lines, want %d", n, malformed)
		}
		if !strings.Contains(lines[len(lines)-1], `"subject":"users.m3.renamed"`) {
			t.Errorf("last line is not the good event after the catalogue: %s", lines[len(lines)-1])
		}
		// Not JSON under a JSON content type: the raw text as a string.
		m3 := lines[seqs[2]-1]
		if !strings.Contains(m3, `"data":"{\"name\":"`) {
			t.Errorf("raw data of the non-JSON body not kept as a string: %s", m3)
		}
	})
	t.Run("EventsFiltered", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "events", "users.*.added", "users.A.>", srv)
		if code != 0 || !strings.Contains(out, "users.*.added") || !strings.Contains(out, "users.A.renamed") {
			t.Fatalf("code %d: %s\n%s", code, errOut, out)
		}
	})
	t.Run("Surface", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "surface", "users.>", srv)
		if code != 0 || !strings.Contains(out, "MALFORMED") || !strings.Contains(out, "users.m3.renamed") {
			t.Fatalf("code %d: %s\n%s", code, errOut, out)
		}
		code, out, errOut = run(t, ctx, "", "surface", "users.>", "-o", "json", srv)
		if code != 0 || strings.Count(out, "\n") != len(shapes)+3 {
			t.Fatalf("json: code %d, %d lines: %s", code, strings.Count(out, "\n"), errOut)
		}
	})
	t.Run("State", func(t *testing.T) {
		for _, c := range []struct{ agg, want, warn string }{
			{"users.m3", `{"name":"M3"}`, "skipped 1 malformed events and 0"},
			{"users.m4", `{}`, "and 1 events whose data is not JSON"},
			{"users.m2", `{}`, "skipped 1 malformed"},
			{"users.A", `{"name":"Anne"}`, ""},
			{"users.m14", `[1,2,3]`, ""},
		} {
			code, out, errOut := run(t, ctx, "", "state", c.agg, "-o", "json", srv)
			if code != 0 || !strings.Contains(out, `"state":`+c.want) || c.warn != "" && !strings.Contains(errOut, c.warn) {
				t.Errorf("state %s: code %d, out %q, err %q", c.agg, code, out, errOut)
			}
		}
	})
	t.Run("Audit", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "audit", "--entity", "users.m3", srv)
		if code != 0 || !strings.Contains(out, "MALFORMED") || !strings.Contains(out, "users.m3.renamed") {
			t.Fatalf("entity from the stream: code %d: %s\n%s", code, errOut, out)
		}
		idx := filepath.Join(t.TempDir(), "audit.db")
		code, out, errOut = run(t, ctx, "", "audit", "--since", "1h", "--index", idx, "--no-progress", srv)
		if code != 0 || len(strings.Split(strings.TrimSpace(out), "\n")) != total+1 || !strings.Contains(out, "users.*.added") {
			t.Fatalf("index of everything: code %d: %s\n%s", code, errOut, out)
		}
		code, out, errOut = run(t, ctx, "", "audit", "--actor", "alice", "--index", idx, srv)
		if code != 0 || len(strings.Split(strings.TrimSpace(out), "\n")) != 4 {
			t.Fatalf("actor: code %d: %s\n%s", code, errOut, out)
		}
		code, out, errOut = run(t, ctx, "", "audit", "--entity", "users.m3", "--index", idx, "-o", "json", srv)
		if code != 0 || strings.Count(out, `"malformed":`) != 1 || strings.Count(out, "\n") != 2 {
			t.Fatalf("entity from the index as JSON: code %d: %s\n%s", code, errOut, out)
		}
	})
}

// events --stream DEADLETTER prints dead letters with where they came
// from and why they were given up.
func TestEventsReadsDeadLetters(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: subscriber.DefaultDeadLetterStream, Subjects: []string{"deadletter.>"}}); err != nil {
		t.Fatal(err)
	}
	// As the subscriber writes them: the event's headers plus the
	// dead-letter ones; one of a valid event, one of a malformed one.
	for _, d := range []struct {
		subject string
		h       nats.Header
	}{
		{"users.A.added", nats.Header{"ce-id": {"e1"}, "ce-specversion": {"1.0"}, "Content-Type": {"application/json"}}},
		{"users.B.added", nats.Header{"ce-specversion": {"9.9"}}},
	} {
		h := d.h
		h.Set(subscriber.HeaderError, "handler failed: boom")
		h.Set(subscriber.HeaderDeliveries, "5")
		h.Set(subscriber.HeaderStream, "EVENTS")
		h.Set(subscriber.HeaderSequence, "42")
		h.Set(subscriber.HeaderSubject, d.subject)
		h.Set(subscriber.HeaderConsumer, "worker")
		h.Set(subscriber.HeaderTime, "2026-01-02T03:04:05Z")
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "deadletter.worker." + d.subject, Header: h, Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	srv := "--server=" + s.URL()
	code, out, errOut := run(t, ctx, "", "events", "--stream", "DEADLETTER", srv)
	if code != 0 || strings.Count(out, "handler failed: boom") != 2 || !strings.Contains(out, "users.B.added") || !strings.Contains(out, "ERROR") {
		t.Fatalf("table: code %d: %s\n%s", code, errOut, out)
	}
	code, out, errOut = run(t, ctx, "", "events", "--stream", "DEADLETTER", "-o", "json", srv)
	if code != 0 {
		t.Fatalf("json: code %d: %s", code, errOut)
	}
	for l := range strings.Lines(out) {
		var v struct {
			Deadletter map[string]string `json:"deadletter"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Deadletter["error"] != "handler failed: boom" || v.Deadletter["sequence"] != "42" {
			t.Fatalf("line %q: %v", l, err)
		}
	}
}

// state reads without creating a snapshot bucket; one named with
// --snapshot-bucket is created, and said so.
func TestStateCreatesNoBucketUnlessAsked(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := "--server=" + s.URL()
	if code, _, errOut := run(t, ctx, "", "append", "users.A.added", `{"a":1}`, srv); code != 0 {
		t.Fatal(errOut)
	}
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, ctx, "", "state", "users.A", "-o", "json", srv)
	if code != 0 || !strings.Contains(out, `{"a":1}`) || errOut != "" {
		t.Fatalf("code %d, out %q, err %q", code, out, errOut)
	}
	if _, err := js.KeyValue(ctx, "STATE_EVENTS"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("state created its default bucket: %v", err)
	}
	code, _, errOut = run(t, ctx, "", "state", "users.A", "--snapshot-bucket", "SNAPX", srv)
	if code != 0 || !strings.Contains(errOut, "created snapshot bucket SNAPX") {
		t.Fatalf("code %d, err %q", code, errOut)
	}
	if _, err := js.KeyValue(ctx, "SNAPX"); err != nil {
		t.Fatal(err)
	}
	// Once it exists, it is used without a word.
	if code, _, errOut = run(t, ctx, "", "state", "users.A", "--snapshot-bucket", "SNAPX", srv); code != 0 || errOut != "" {
		t.Fatalf("code %d, err %q", code, errOut)
	}
}

// audit keeps its default index in the user's cache directory, never in
// the working directory, and says where when it creates it.
func TestAuditDefaultIndexInCacheDir(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx := context.Background()
	srv := "--server=" + s.URL()
	if code, _, errOut := run(t, ctx, "", "append", "users.A.added", `{}`, "--actor", "bob", srv); code != 0 {
		t.Fatal(errOut)
	}
	cache := t.TempDir()
	wd := t.TempDir()
	t.Chdir(wd)
	m := func() (*Main, *strings.Builder, *strings.Builder) {
		var out, errb strings.Builder
		return &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
			if k == "XDG_CACHE_HOME" {
				return cache
			}
			return ""
		}}, &out, &errb
	}
	mm, out, errb := m()
	if code := mm.Run(ctx, []string{"audit", "--actor", "bob", "--no-progress", srv}); code != 0 || !strings.Contains(out.String(), "users.A.added") {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	want, err := mm.defaultAuditIndex(s.URL(), "EVENTS")
	if err != nil || !strings.HasPrefix(want, filepath.Join(cache, "jetsource")+string(filepath.Separator)) {
		t.Fatalf("default index %q, %v", want, err)
	}
	if !strings.Contains(errb.String(), "created audit index "+want) {
		t.Fatalf("creation not reported: %q", errb.String())
	}
	if entries, _ := filepath.Glob(filepath.Join(wd, "*")); len(entries) != 0 {
		t.Fatalf("audit wrote into the working directory: %v", entries)
	}
	mm, _, errb = m()
	if code := mm.Run(ctx, []string{"audit", "--actor", "bob", "--no-progress", srv}); code != 0 || strings.Contains(errb.String(), "created") {
		t.Fatalf("second run: code %d: %q", code, errb.String())
	}
}
