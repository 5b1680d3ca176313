package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestStreamCommand adds a root to the running stream so that an append
// that failed (with a hint naming the way out) succeeds, shows it in
// stream info, keeps it across a serve restart, and removes it again.
func TestStreamCommand(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Stream.MaxBytes = 64 << 20
	s := serve(t, cfg)
	ctx := context.Background()
	srv := "--server=" + s.URL()

	code, out, errOut := run(t, ctx, "", "append", "bookings.b1.created", `{}`, srv)
	if code == 0 || out != "" || !strings.Contains(errOut, "jetsource stream add-subject bookings.>") || !strings.Contains(errOut, "--subjects bookings.>") {
		t.Fatalf("uncaptured subject: %d %q %q", code, out, errOut)
	}

	code, out, errOut = run(t, ctx, "", "stream", "add-subject", "bookings", srv)
	if code != 0 || !strings.Contains(out, "now captures") || !strings.Contains(out, "bookings.>") {
		t.Fatalf("add-subject: %d %q %q", code, out, errOut)
	}
	if code, out, _ := run(t, ctx, "", "stream", "add-subject", "bookings.>", srv); code != 0 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("add-subject again: %d %q", code, out)
	}
	if code, out, errOut := run(t, ctx, "", "append", "bookings.b1.created", `{}`, srv); code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("append after add-subject: %d %q %q", code, out, errOut)
	}

	code, out, _ = run(t, ctx, "", "stream", "info", "-o", "json", srv)
	var info streamInfo
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
		t.Fatalf("info: %d %q", code, out)
	}
	if info.Name != "EVENTS" || info.Messages != 1 || info.MaxBytes != 64<<20 || !strings.Contains(strings.Join(info.Subjects, " "), "bookings.>") {
		t.Fatalf("info: %+v", info)
	}
	if code, out, _ := run(t, ctx, "", "stream", "info", srv); code != 0 || !strings.Contains(out, "max bytes:") || !strings.Contains(out, "64MB") {
		t.Fatalf("info table: %d %q", code, out)
	}

	for name, args := range map[string][]string{
		"SystemSubject":  {"stream", "add-subject", "$JS.>"},
		"Inbox":          {"stream", "add-subject", "_INBOX.>"},
		"CommandBus":     {"stream", "add-subject", "cmd"},
		"Overlap":        {"stream", "add-subject", "users.A.>"},
		"LeadingWild":    {"stream", "add-subject", ">"},
		"NotCaptured":    {"stream", "remove-subject", "orders.>"},
		"NoSubcommand":   {"stream"},
		"NoRoot":         {"stream", "add-subject"},
		"BadSubcommand":  {"stream", "nope"},
		"BadRoot":        {"stream", "add-subject", "a b"},
		"RemoveNoRootTo": {"stream", "remove-subject"},
	} {
		t.Run(name, func(t *testing.T) {
			if code, _, errOut := run(t, ctx, "", append(args, srv)...); code != exitUsage {
				t.Fatalf("exit %d, want %d: %s", code, exitUsage, errOut)
			}
		})
	}

	if code, out, errOut := run(t, ctx, "", "stream", "remove-subject", "bookings.>", srv); code != 0 || strings.Contains(out, "bookings") {
		t.Fatalf("remove-subject: %d %q %q", code, out, errOut)
	}
	if code, _, _ := run(t, ctx, "", "append", "bookings.b2.created", `{}`, srv); code == 0 {
		t.Fatal("append after remove-subject succeeded")
	}
	// The stored event stays readable.
	if code, out, _ := run(t, ctx, "", "events", "bookings.>", srv); code != 0 || !strings.Contains(out, "bookings.b1.created") {
		t.Fatalf("events after remove-subject: %d %q", code, out)
	}
}

// TestServeKeepsAddedSubjects restarts serve on the same data and checks
// that the roots added at run time and with --subjects survive, while the
// size limit follows the flags.
func TestServeKeepsAddedSubjects(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	start := func(extra ...string) *background {
		return startBackground(t, "jetsource serving", append([]string{"serve", "--listen", "127.0.0.1:0", "--data", dir, "--sync", "1s"}, extra...)...)
	}
	url := func(b *background) string {
		l := b.log.String()
		i := strings.Index(l, "url=")
		return strings.Fields(l[i+len("url="):])[0]
	}
	b := start("--subjects", "orders,invoices.>", "--max-bytes", "1GB")
	srv := "--server=" + url(b)
	if !strings.Contains(b.log.String(), "orders.> invoices.>") || !strings.Contains(b.log.String(), "max_bytes=1GB") {
		t.Fatalf("serve log: %s", b.log.String())
	}
	if code, _, errOut := run(t, ctx, "", "stream", "add-subject", "bookings", srv); code != 0 {
		t.Fatal(errOut)
	}
	if code := b.stop(t); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	b = start()
	srv = "--server=" + url(b)
	code, out, _ := run(t, ctx, "", "stream", "info", "-o", "json", srv)
	var info streamInfo
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
		t.Fatalf("info: %d %q", code, out)
	}
	got := strings.Join(info.Subjects, " ")
	// serve never drops a root: removing one is "stream remove-subject".
	if !strings.Contains(got, "bookings.>") || !strings.Contains(got, "orders.>") || info.MaxBytes != 0 {
		t.Fatalf("after restart without --subjects: subjects %q, max bytes %d (want bookings.> and orders.> kept, no limit)", got, info.MaxBytes)
	}
	if code, _, errOut := run(t, ctx, "", "serve", "--subjects", "$SYS.>", "--data", t.TempDir(), "--listen", "127.0.0.1:0"); code != exitUsage || !strings.Contains(errOut, "subject not writable") {
		t.Fatalf("serve --subjects $SYS.>: %d %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, context.Background(), "", "version")
	if code != 0 || !strings.HasPrefix(out, "jetsource ") || !strings.Contains(out, "nats-server v2.") {
		t.Fatalf("version: %d %q", code, out)
	}
	code, flagOut, _ := run(t, context.Background(), "", "--version")
	if code != 0 || flagOut != out {
		t.Fatalf("--version: %d %q, want %q", code, flagOut, out)
	}
	code, out, _ = run(t, context.Background(), "", "version", "-o", "json")
	var v versionInfo
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" || !strings.HasPrefix(v.NATSServer, "2.") || v.Go == "" {
		t.Fatalf("version -o json: %d %q", code, out)
	}
}
