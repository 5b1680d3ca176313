package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

// auditStore opens the EVENTS store of a served test server.
func auditStore(t *testing.T, url string) *jetstore.Store {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(context.Background(), js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// auditAppend appends events first to first+n-1: actors, addresses and
// aggregates cycle with different periods.
func auditAppend(t *testing.T, st jetsource.Store, first, n int) {
	t.Helper()
	actors := []string{"alice", "bob", ""}
	ips := []string{"10.0.0.1", "10.0.0.2:443", "2001:db8::5", ""}
	var batch []jetsource.Event
	for i := first; i < first+n; i++ {
		subj := fmt.Sprintf("users.u%d.added", i%5)
		if i%9 == 4 {
			subj = "groups.g1.added"
		}
		batch = append(batch, jetsource.Event{
			Subject: subjects.MustParse(subj), Data: fmt.Appendf(nil, `{"n":%d}`, i),
			Actor: actors[i%len(actors)], ClientIP: ips[i%len(ips)],
		})
	}
	if _, err := st.AppendBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

// auditWant returns the sequences of the stored events that pass keep.
func auditWant(t *testing.T, st jetsource.Store, keep func(jetsource.Event) bool) []string {
	t.Helper()
	var out []string
	for e, err := range st.Read(context.Background(), jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		if keep(e) {
			out = append(out, strconv.FormatUint(e.Sequence, 10))
		}
	}
	return out
}

// tableSeqs returns the SEQ column of a table, checking its header.
func tableSeqs(t *testing.T, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != "SEQ TIME SUBJECT TYPE ACTOR IP" {
		t.Fatalf("no table header in %q", out)
	}
	var seqs []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 6 {
			t.Fatalf("row %q has %d columns", l, len(f))
		}
		seqs = append(seqs, f[0])
	}
	return seqs
}

// jsonSeqs returns the sequences of CloudEvents JSON lines, checking that
// each carries its data.
func jsonSeqs(t *testing.T, out string) []string {
	t.Helper()
	var seqs []string
	for l := range strings.Lines(out) {
		var ce map[string]any
		if err := json.Unmarshal([]byte(l), &ce); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ce["specversion"] != "1.0" || ce["data"] == nil || ce["id"] == nil {
			t.Fatalf("not a full CloudEvent: %q", l)
		}
		seqs = append(seqs, ce["sequence"].(string))
	}
	return seqs
}

func equalSeqs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: got %d events %v, want %d %v", what, len(got), got, len(want), want)
	}
	if len(want) == 0 {
		t.Fatalf("%s: the case selects nothing", what)
	}
}

var progressDone = regexp.MustCompile(`audit index [^:]+: (\d+) events / (\d+) events \(100%\).*done in`)

func TestAuditCommand(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx := context.Background()
	srv := "--server=" + s.URL()
	st := auditStore(t, s.URL())
	auditAppend(t, st, 0, 300)
	idx := filepath.Join(t.TempDir(), "audit.db")
	audit := func(args ...string) (int, string, string) {
		return run(t, ctx, "", append([]string{"audit", srv}, args...)...)
	}
	t.Run("ActorBuildsTheIndexWithProgress", func(t *testing.T) {
		code, out, errOut := audit("--actor", "alice", "--index", idx)
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		equalSeqs(t, "alice", tableSeqs(t, out), auditWant(t, st, func(e jetsource.Event) bool { return e.Actor == "alice" }))
		m := progressDone.FindStringSubmatch(errOut)
		if m == nil || m[1] != "300" {
			t.Fatalf("progress %q: want all 300 events read", errOut)
		}
		if !strings.Contains(out, "users.u0.added") || !strings.Contains(out, "10.0.0.1") || !strings.Contains(out, "users.added") {
			t.Fatalf("table lacks columns: %q", out)
		}
	})
	t.Run("LaterRunsReadOnlyNewEvents", func(t *testing.T) {
		auditAppend(t, st, 300, 7)
		code, out, errOut := audit("--actor", "bob", "--index", idx)
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		m := progressDone.FindStringSubmatch(errOut)
		if m == nil || m[1] != "7" {
			t.Fatalf("progress %q: want only the 7 new events read", errOut)
		}
		equalSeqs(t, "bob", tableSeqs(t, out), auditWant(t, st, func(e jetsource.Event) bool { return e.Actor == "bob" }))
		code, _, errOut = audit("--actor", "bob", "--index", idx)
		if code != 0 || errOut != "" {
			t.Fatalf("nothing new: code %d, stderr %q", code, errOut)
		}
		db, err := sql.Open("sqlite", idx)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var cp, rows int
		db.QueryRow(`SELECT sequence FROM ` + projections.CheckpointTable + ` WHERE name = 'audit'`).Scan(&cp)
		db.QueryRow(`SELECT count(*) FROM audit`).Scan(&rows)
		if cp != 307 || rows != 307 {
			t.Fatalf("checkpoint %d with %d rows, want 307", cp, rows)
		}
	})
	t.Run("IPAndNetworkJSON", func(t *testing.T) {
		code, out, errOut := audit("--ip", "10.0.0.2", "--index", idx, "-o", "json")
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		equalSeqs(t, "10.0.0.2", jsonSeqs(t, out), auditWant(t, st, func(e jetsource.Event) bool { return e.ClientIP == "10.0.0.2:443" }))
		code, out, _ = audit("--ip", "10.0.0.0/24", "--index", idx, "-o", "json")
		equalSeqs(t, "10.0.0.0/24", jsonSeqs(t, out), auditWant(t, st, func(e jetsource.Event) bool { return strings.HasPrefix(e.ClientIP, "10.0.0.") }))
		code, out, _ = audit("--ip", "2001:db8::/32", "--index", idx)
		equalSeqs(t, "2001:db8::/32", tableSeqs(t, out), auditWant(t, st, func(e jetsource.Event) bool { return e.ClientIP == "2001:db8::5" }))
		// The JSON is what "events -o json" prints for the same event.
		first := strings.SplitN(out, "\n", 3)[1]
		seq := strings.Fields(first)[0]
		_, ev, _ := run(t, ctx, "", "events", "--from", seq, "--limit", "1", "-o", "json", srv)
		_, au, _ := audit("--ip", "2001:db8::5", "--index", idx, "-o", "json", "--limit", "1")
		if ev != au {
			t.Fatalf("audit JSON %q differs from events JSON %q", au, ev)
		}
	})
	t.Run("ActorAndEntityAndLimit", func(t *testing.T) {
		code, out, _ := audit("--actor", "alice", "--entity", "users.u1", "--limit", "5", "--index", idx)
		want := auditWant(t, st, func(e jetsource.Event) bool {
			return e.Actor == "alice" && strings.HasPrefix(e.Subject.String(), "users.u1.")
		})
		equalSeqs(t, "alice on users.u1", tableSeqs(t, out), want[:5])
		if code != 0 {
			t.Fatalf("code %d", code)
		}
	})

	// Stored times to bound the time queries.
	var stored []time.Time
	for e, err := range st.Read(ctx, jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, e.Stored)
	}
	since, until := stored[50], stored[250]
	inRange := func(e jetsource.Event) bool { return !e.Stored.Before(since) && e.Stored.Before(until) }
	rfc := func(t time.Time) string { return t.Format(time.RFC3339Nano) }

	t.Run("EntityReadsTheStreamWithoutIndex", func(t *testing.T) {
		def, err := (&Main{Getenv: func(string) string { return "" }}).defaultAuditIndex(s.URL(), "EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := audit("--entity", "users.u1", "--since", rfc(since), "--until", rfc(until))
		if code != 0 || errOut != "" {
			t.Fatalf("code %d: %s", code, errOut)
		}
		want := auditWant(t, st, func(e jetsource.Event) bool { return e.Subject.Aggregate().String() == "users.u1" && inRange(e) })
		equalSeqs(t, "users.u1 in range", tableSeqs(t, out), want)
		if _, err := os.Stat(def); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("an entity query created %s", def)
		}
		// Through the index (--index given) the answer is the same.
		code, viaIndex, _ := audit("--entity", "users.u1", "--since", rfc(since), "--until", rfc(until), "--index", idx)
		if code != 0 || viaIndex != out {
			t.Fatalf("via the index:\n%s\nfrom the stream:\n%s", viaIndex, out)
		}
		code, out, _ = audit("--entity", "users.u1", "-o", "json")
		equalSeqs(t, "users.u1 json", jsonSeqs(t, out), auditWant(t, st, func(e jetsource.Event) bool { return e.Subject.Aggregate().String() == "users.u1" }))
	})
	t.Run("TimeRangeAlone", func(t *testing.T) {
		code, out, _ := audit("--since", rfc(since), "--until", rfc(until))
		equalSeqs(t, "range", tableSeqs(t, out), auditWant(t, st, inRange))
		_, viaIndex, _ := audit("--since", rfc(since), "--until", rfc(until), "--index", idx)
		if code != 0 || viaIndex != out {
			t.Fatalf("via the index:\n%s\nfrom the stream:\n%s", viaIndex, out)
		}
		code, out, _ = audit("--since", "1h", "--limit", "3")
		equalSeqs(t, "since 1h, limit 3", tableSeqs(t, out), []string{"1", "2", "3"})
		code, out, _ = audit("--until", "1h")
		if code != 0 || len(tableSeqs(t, out)) != 0 {
			t.Fatalf("until an hour ago: code %d, %q", code, out)
		}
	})
	t.Run("NoCatchUpAnswersOffline", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "audit", "--actor", "alice", "--index", idx, "--no-catch-up", "--server", "nats://127.0.0.1:1")
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		equalSeqs(t, "offline alice", tableSeqs(t, out), auditWant(t, st, func(e jetsource.Event) bool { return e.Actor == "alice" }))
		missing := filepath.Join(t.TempDir(), "none.db")
		code, out, errOut = audit("--actor", "alice", "--index", missing, "--no-catch-up")
		if code != exitError || out != "" || !strings.Contains(errOut, "no audit index") {
			t.Fatalf("missing index: code %d, out %q, err %q", code, out, errOut)
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("--no-catch-up created the index")
		}
	})
	t.Run("IndexOfAnotherStreamIsRefused", func(t *testing.T) {
		other := serve(t, DefaultConfig())
		auditAppend(t, auditStore(t, other.URL()), 0, 400)
		code, out, errOut := run(t, ctx, "", "audit", "--actor", "alice", "--index", idx, "--server", other.URL())
		if code != exitError || out != "" || !strings.Contains(errOut, "does not belong to stream EVENTS") {
			t.Fatalf("code %d, out %q, err %q", code, out, errOut)
		}
		small := serve(t, DefaultConfig())
		auditAppend(t, auditStore(t, small.URL()), 0, 10)
		code, _, errOut = run(t, ctx, "", "audit", "--actor", "alice", "--index", idx, "--server", small.URL())
		if code != exitError || !strings.Contains(errOut, "the stream ends at 10") {
			t.Fatalf("code %d, err %q", code, errOut)
		}
	})
}

func TestAuditDeletedEvent(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Stream.AllowDelete = true
	s := serve(t, cfg)
	ctx := context.Background()
	st := auditStore(t, s.URL())
	auditAppend(t, st, 0, 9)
	idx := filepath.Join(t.TempDir(), "audit.db")
	srv := "--server=" + s.URL()
	if code, _, errOut := run(t, ctx, "", "audit", srv, "--actor", "alice", "--index", idx); code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	str, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if err := str.DeleteMsg(ctx, 4); err != nil { // alice's second event
		t.Fatal(err)
	}
	code, out, errOut := run(t, ctx, "", "audit", srv, "--actor", "alice", "--index", idx, "-o", "json")
	if code != 0 || !strings.Contains(errOut, "event 4 is no longer in the stream") {
		t.Fatalf("code %d, err %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], `"sequence":"4"`) || strings.Contains(lines[1], `"data"`) || !strings.Contains(lines[1], `"actor":"alice"`) {
		t.Fatalf("got %q", out)
	}
	if !strings.Contains(lines[0], `"data"`) || !strings.Contains(lines[2], `"data"`) {
		t.Fatalf("the events still stored lack their data: %q", out)
	}
}

func TestAuditBadInput(t *testing.T) {
	dir := t.TempDir()
	idx := filepath.Join(dir, "audit.db")
	off := "--server=nats://127.0.0.1:1"
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"NoCriteria", []string{}, "at least one of"},
		{"OnlyLimit", []string{"--limit", "3"}, "at least one of"},
		{"EntityWildcard", []string{"--entity", "users.*"}, "--entity"},
		{"EntityMalformed", []string{"--entity", "users..A"}, "--entity"},
		{"EntityFilter", []string{"--entity", "users.A.>"}, "--entity"},
		{"BadSince", []string{"--actor", "a", "--since", "yesterday"}, "--since"},
		{"NegativeSince", []string{"--actor", "a", "--since", "-1h"}, "--since"},
		{"BadUntil", []string{"--actor", "a", "--until", "2025-13-01"}, "--until"},
		{"RangeBackwards", []string{"--entity", "users.A", "--since", "1h", "--until", "2h"}, "--until"},
		{"IPNotAnAddress", []string{"--ip", "host.example"}, "--ip"},
		{"IPOutOfRange", []string{"--ip", "10.0.0.300"}, "--ip"},
		{"IPWithPort", []string{"--ip", "10.0.0.1:80"}, "--ip"},
		{"NetworkTooLong", []string{"--ip", "10.0.0.0/33"}, "--ip"},
		{"NegativeLimit", []string{"--actor", "a", "--limit", "-1"}, "--limit"},
		{"NoCatchUpWithoutIndex", []string{"--entity", "users.A", "--no-catch-up", "--stream", "AUDITTEST"}, "--no-catch-up"},
		{"EmptyIndex", []string{"--actor", "a", "--index="}, "--index"},
		{"Argument", []string{"--actor", "a", "alice"}, "unknown command"},
		{"BadOutput", []string{"--actor", "a", "-o", "xml"}, "--output"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"audit", off}, c.args...)
			if a := strings.Join(c.args, " "); !strings.Contains(a, "--index") && !strings.Contains(a, "--no-catch-up") {
				args = append(args, "--index", idx)
			}
			code, out, errOut := run(t, context.Background(), "", args...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, c.msg) {
				t.Fatalf("code %d, out %q, err %q (want %q)", code, out, errOut, c.msg)
			}
			def, err := (&Main{Getenv: func(string) string { return "" }}).defaultAuditIndex(strings.TrimPrefix(off, "--server="), "AUDITTEST")
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{idx, def} {
				if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("bad input created the index file %s", f)
				}
			}
		})
	}
	t.Run("UnreachableServerWritesNothing", func(t *testing.T) {
		code, out, errOut := run(t, context.Background(), "", "audit", off, "--actor", "a", "--index", idx)
		if code != exitError || out != "" || !strings.Contains(errOut, "cannot connect") {
			t.Fatalf("code %d, out %q, err %q", code, out, errOut)
		}
		if _, err := os.Stat(idx); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("created the index file without a server")
		}
	})
}

// FuzzAuditFlags checks the audit command's flag parser: it never panics,
// refuses with usage errors only, and what it accepts is a valid query
// that keeps what was given.
func FuzzAuditFlags(f *testing.F) {
	f.Add("alice", "", "", "", "", 0)                                    // actor alone
	f.Add("", "10.0.0.1", "", "", "", 5)                                 // address
	f.Add("", "10.0.0.77/8", "", "", "", 0)                              // network, unmasked
	f.Add("", "fe80::1%eth0", "", "", "", 0)                             // zone
	f.Add("", "10.0.0.1:80", "", "", "", 0)                              // port: refused
	f.Add("", "", "users.A", "1h", "30m", 0)                             // entity and range
	f.Add("", "", "users.A", "30m", "1h", 0)                             // range backwards
	f.Add("", "", "users.*", "", "", 0)                                  // wildcard entity
	f.Add("", "", "", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", 0) // RFC 3339
	f.Add("", "", "", "", "", 0)                                         // nothing
	f.Add("a", "", "", "", "", -1)                                       // negative limit
	f.Add("", "", "", "-5s", "", 0)                                      // negative duration
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, actor, ip, entity, since, until string, limit int) {
		r, err := parseAuditFlags(auditFlags{actor: actor, ip: ip, entity: entity, since: since, until: until, limit: limit}, now)
		if err != nil {
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("not a usage error: %v", err)
			}
			return
		}
		if err := r.q.Validate(); err != nil {
			t.Fatalf("accepted an invalid query: %v", err)
		}
		if r.q.Actor != actor || r.q.Limit != limit || (ip != "") != r.q.ClientIP.IsValid() {
			t.Fatalf("query %+v from %q %q %d", r.q, actor, ip, limit)
		}
		if entity != "" && r.q.Entity.String() != entity {
			t.Fatalf("entity %q became %q", entity, r.q.Entity)
		}
		if since != "" && r.q.Since.IsZero() || until != "" && r.q.Until.IsZero() {
			t.Fatalf("since %q or until %q lost", since, until)
		}
		if r.useIndex != (actor != "" || ip != "") {
			t.Fatalf("useIndex %v for actor %q ip %q", r.useIndex, actor, ip)
		}
	})
}
