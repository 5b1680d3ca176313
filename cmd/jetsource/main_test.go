package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// run runs the CLI in-process and returns its exit code and output.
func run(t *testing.T, ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code = m.Run(ctx, args)
	return code, out.String(), errb.String()
}

// serve starts "jetsource serve" in-process on a random port.
func serve(t *testing.T, cfg Config) *Serve {
	t.Helper()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Data = t.TempDir()
	cfg.Server.Sync = "1s"
	s, err := StartServe(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestAppendAndEvents(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx := context.Background()
	srv := "--server=" + s.URL()

	code, out, errOut := run(t, ctx, "", "append", "users.A.added", `{"name":"Ann"}`, "--expect", "0", "--actor", "alice", srv)
	if code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("append: code %d, out %q, err %q", code, out, errOut)
	}
	code, out, _ = run(t, ctx, `{"name":"Anne"}`, "append", "users.A.renamed", "-", "--id", "evt-2", "--type", "com.example.renamed", srv)
	if code != 0 || strings.TrimSpace(out) != "2" {
		t.Fatalf("append from stdin: code %d, out %q", code, out)
	}
	t.Run("DuplicateIDPrintsOriginal", func(t *testing.T) {
		code, out, errOut := run(t, ctx, `{"name":"Anne"}`, "append", "users.A.renamed", "-", "--id", "evt-2", "--type", "com.example.renamed", srv)
		if code != 0 || strings.TrimSpace(out) != "2" || !strings.Contains(errOut, "duplicate") {
			t.Fatalf("got code %d, out %q, err %q", code, out, errOut)
		}
	})
	t.Run("ReusedIDWithOtherContentExits3", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "append", "users.A.renamed", `{"name":"Other"}`, "--id", "evt-2", srv)
		if code != exitConflict || strings.TrimSpace(out) != "2" || !strings.Contains(errOut, "sequence 2") {
			t.Fatalf("got code %d, out %q, err %q", code, out, errOut)
		}
	})
	t.Run("ConflictExits3WithCurrentSequence", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "append", "users.A.renamed", `{}`, "--expect", "1", srv)
		if code != exitConflict || strings.TrimSpace(out) != "2" || !strings.Contains(errOut, "current 2") {
			t.Fatalf("got code %d, out %q, err %q", code, out, errOut)
		}
		code, out, _ = run(t, ctx, "", "append", "users.A.renamed", `{}`, "--expect", "1", "-o", "json", srv)
		var v struct {
			Error   string `json:"error"`
			Current uint64 `json:"current"`
		}
		if code != exitConflict || json.Unmarshal([]byte(out), &v) != nil || v.Error != "conflict" || v.Current != 2 {
			t.Fatalf("json: got code %d, out %q", code, out)
		}
	})
	t.Run("EventsJSONIsCloudEvents", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "events", "users.A.>", "--output", "json", srv)
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("want 2 lines, got %q", out)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(lines[1]), &ev); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]any{"specversion": "1.0", "id": "evt-2", "type": "com.example.renamed", "subject": "users.A.renamed", "sequence": "2"} {
			if ev[k] != want {
				t.Errorf("%s: got %v, want %v", k, ev[k], want)
			}
		}
	})
	t.Run("EventsTableFromAndLimit", func(t *testing.T) {
		code, out, _ := run(t, ctx, "", "events", "--from", "2", "--limit", "1", srv)
		if code != 0 || !strings.Contains(out, "users.A.renamed") || strings.Contains(out, "users.A.added") {
			t.Fatalf("got code %d, out %q", code, out)
		}
	})
	t.Run("EventsSince", func(t *testing.T) {
		code, out, _ := run(t, ctx, "", "events", "--since", time.Now().Add(time.Hour).Format(time.RFC3339), "-o", "json", srv)
		if code != 0 || out != "" {
			t.Fatalf("future since: got code %d, out %q", code, out)
		}
		code, out, _ = run(t, ctx, "", "events", "--since", "1h", "-o", "json", srv)
		if code != 0 || strings.Count(out, "\n") != 2 {
			t.Fatalf("since 1h: got code %d, out %q", code, out)
		}
	})
	t.Run("ExpectFilterIsABoundary", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "append", "users.B.added", `{}`, "--expect", "2", "--expect-filter", "users.B.>", "--expect-filter", "users.C.>", srv)
		if code != 0 || strings.TrimSpace(out) != "3" {
			t.Fatalf("nothing matching after 2: got code %d, out %q, err %q", code, out, errOut)
		}
		code, out, errOut = run(t, ctx, "", "append", "users.C.added", `{}`, "--expect", "2", "--expect-filter", "users.*.added", srv)
		if code != exitConflict || strings.TrimSpace(out) != "3" || !strings.Contains(errOut, "after the read position 2") {
			t.Fatalf("users.B.added after 2: got code %d, out %q, err %q", code, out, errOut)
		}
		code, _, _ = run(t, ctx, "", "append", "users.C.added", `{}`, "--expect-filter", "users.>", srv)
		if code != exitUsage {
			t.Fatalf("--expect-filter without --expect: got code %d", code)
		}
	})
}

func TestBadInputExitCodes(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx := context.Background()
	srv := "--server=" + s.URL()
	cases := []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"WildcardSubject", []string{"append", "users.*.added", "{}", srv}, exitUsage, "wildcard"},
		{"MalformedSubject", []string{"append", "users..added", "{}", srv}, exitUsage, "invalid subject"},
		{"BadExpect", []string{"append", "users.A.added", "{}", "--expect", "x", srv}, exitUsage, "--expect"},
		{"UnknownCommand", []string{"nope"}, exitUsage, "unknown command"},
		{"UnknownFlag", []string{"events", "--nope"}, exitUsage, "unknown flag"},
		{"BadOutput", []string{"events", "-o", "xml", srv}, exitUsage, "--output"},
		{"BadFilter", []string{"events", "users.>.x", srv}, exitUsage, "invalid filter"},
		{"BadSince", []string{"events", "--since", "yesterday", srv}, exitUsage, "--since"},
		{"NotJSON", []string{"append", "users.A.added", "{bad", srv}, exitError, "not valid JSON"},
		{"OneToken", []string{"append", "users", "{}", srv}, exitError, "at least two tokens"},
		{"NoStream", []string{"append", "orders.A.placed", "{}", srv}, exitUsage, "does not capture orders.A.placed"},
		{"MissingStream", []string{"events", "--stream", "NOPE", srv}, exitError, "stream not found"},
		{"Unreachable", []string{"events", "--server", "nats://127.0.0.1:1"}, exitError, "cannot connect"},
		{"TooLarge", []string{"append", "users.A.added", `"` + strings.Repeat("x", 2<<20) + `"`, srv}, exitError, "too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, ctx, "", c.args...)
			if code != c.want || !strings.Contains(errOut, c.msg) {
				t.Fatalf("got code %d, stderr %q; want %d and %q", code, errOut, c.want, c.msg)
			}
			if c.want != exitOK && out != "" && c.name != "Conflict" {
				t.Fatalf("a failing command printed %q on stdout", out)
			}
		})
	}
	code, out, _ := run(t, ctx, "", "events", "-o", "json", srv)
	if code != 0 || out != "" {
		t.Fatalf("bad input wrote something: %q", out)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("OK", func(t *testing.T) {
		cfg, err := LoadConfig(write("ok.yaml", "stream:\n  name: ORDERS\n  subjects: [\"orders.>\"]\n  duplicates: 5m\nserver:\n  sync: 2s\n"))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Stream.Name != "ORDERS" || cfg.Stream.Subjects[0] != "orders.>" || time.Duration(cfg.Stream.Duplicates) != 5*time.Minute || cfg.Server.Listen != "127.0.0.1:4222" {
			t.Fatalf("got %+v", cfg)
		}
	})
	t.Run("EmptyFileIsDefault", func(t *testing.T) {
		cfg, err := LoadConfig(write("empty.yaml", ""))
		if err != nil || cfg.Stream.Name != "EVENTS" {
			t.Fatalf("got %+v, %v", cfg, err)
		}
	})
	bad := []struct{ name, body, msg string }{
		{"UnknownField", "stream:\n  nmae: X\n", `UnknownField.yaml:2: unknown field "nmae" in stream (known: name, subjects,`},
		{"BadDuration", "stream:\n  duplicates: forever\n", `BadDuration.yaml:2: stream.duplicates: "forever" is not a duration`},
		{"BadSync", "server:\n  sync: sometimes\n", "server.sync"},
		{"LeadingWildcard", "stream:\n  subjects: [\">\"]\n", "literal token"},
		{"Overlap", "stream:\n  subjects: [\"a.>\", \"a.b\"]\n", "overlap"},
		{"BadLogLevel", "log:\n  level: loud\n", "log.level"},
		{"NotYAML", "stream: [\n", "NotYAML.yaml:1: not valid YAML"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadConfig(write(c.name+".yaml", c.body))
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want an error containing %q", err, c.msg)
			}
		})
	}
	t.Run("ServeRefusesBadConfig", func(t *testing.T) {
		code, _, errOut := run(t, context.Background(), "", "serve", "--config", filepath.Join(dir, "BadSync.yaml"))
		if code == 0 || !strings.Contains(errOut, "server.sync") {
			t.Fatalf("got code %d, %q", code, errOut)
		}
		code, _, errOut = run(t, context.Background(), "", "serve", "--config", filepath.Join(dir, "missing.yaml"))
		if code == 0 || !strings.Contains(errOut, "no such file") {
			t.Fatalf("got code %d, %q", code, errOut)
		}
	})
}

func TestServeRunsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	errb := &syncWriter{w: &bytes.Buffer{}}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: errb, Getenv: func(string) string { return "" }}
	go func() {
		done <- m.Run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--sync", "1s"})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(errb.String(), "jetsource serving") {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestTailFollows(t *testing.T) {
	s := serve(t, DefaultConfig())
	srv := "--server=" + s.URL()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run(t, ctx, "", "append", "users.A.added", `{}`, srv)
	var out syncWriter
	out.w = &bytes.Buffer{}
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	done := make(chan int)
	go func() { done <- m.Run(ctx, []string{"tail", "users.B.>", "-o", "json", srv}) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "users.B.added") {
		run(t, context.Background(), "", "append", "users.B.added", `{}`, srv)
		if time.Now().After(deadline) {
			t.Fatal("tail printed nothing")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("tail exited %d", code)
	}
	if strings.Contains(out.String(), "users.A.added") {
		t.Fatalf("tail printed an old event: %s", out.String())
	}
}

// syncWriter is a buffer safe for a writer and a reader goroutine.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
