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

	"github.com/jetsource/jetsource/flags"
)

var flagFile = filepath.Join("..", "..", "testdata", "flags", "flags.yaml")

// flagsServe starts serve with a stream capturing users.> and the flag
// change events.
func flagsServe(t *testing.T, subjects ...string) *Serve {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Stream.Subjects = subjects
	return serve(t, cfg)
}

// flagEvents returns the flag change events in the stream.
func flagEvents(t *testing.T, srv string) []map[string]any {
	t.Helper()
	code, out, errOut := run(t, context.Background(), "", "events", "flags.>", "-o", "json", srv)
	if code != 0 {
		t.Fatalf("events: code %d: %s", code, errOut)
	}
	var evs []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// flagList runs flags list -o json.
func flagList(t *testing.T, args ...string) map[string]flags.Flag {
	t.Helper()
	code, out, errOut := run(t, context.Background(), "", append([]string{"flags", "list", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("flags list: code %d: %s", code, errOut)
	}
	got := map[string]flags.Flag{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var f flags.Flag
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got[f.Name] = f
	}
	return got
}

func TestFlagsCommands(t *testing.T) {
	s := flagsServe(t, "users.>", "flags.>")
	ctx := context.Background()
	srv := "--server=" + s.URL()
	file := "--file=" + flagFile

	t.Run("ListBeforeAnySet", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "flags", "list", file, srv)
		if code != 0 || !strings.Contains(errOut, "no bucket jetsource_flags") {
			t.Fatalf("code %d, err %q", code, errOut)
		}
		for _, want := range []string{"NAME", "new-checkout  on     file", "beta-banner   off    default", "the banner on top of every page"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
	})

	// A process watching the bucket sees the CLI's toggles within a second.
	kv := flagsBucket(t, s.URL())
	watcher, err := flags.New(flags.WithBucket(kv))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- watcher.Watch(wctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-watcher.Ready()

	t.Run("Set", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "flags", "set", "billing.v2", "on", "--actor", "alice", file, srv)
		if code != 0 || !strings.Contains(out, "billing.v2: off (file) -> on (kv); recorded as event 1") {
			t.Fatalf("code %d, out %q, err %q", code, out, errOut)
		}
		waitFlag(t, watcher, "billing.v2", true)
		f := flagList(t, file, srv)["billing.v2"]
		if !f.Enabled || f.Source != flags.SourceKV || f.Actor != "alice" || f.Default != flags.Off || f.Revision == 0 || f.ChangeID == "" {
			t.Fatalf("listed %+v", f)
		}
		evs := flagEvents(t, srv)
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1", len(evs))
		}
		ev := evs[0]
		data, _ := ev["data"].(map[string]any)
		if ev["subject"] != "flags.billing=2Ev2.changed" || ev["type"] != "flags.set" || ev["actor"] != "alice" || ev["id"] != f.ChangeID ||
			data["name"] != "billing.v2" || data["value"] != true || data["previous"] != false || data["op"] != "set" || data["source"] != "kv" || data["previous_source"] != "file" {
			t.Fatalf("event %v", ev)
		}
	})
	t.Run("SetSameValueChangesNothing", func(t *testing.T) {
		code, out, _ := run(t, ctx, "", "flags", "set", "billing.v2", "true", srv)
		if code != 0 || !strings.Contains(out, "already on") {
			t.Fatalf("code %d, out %q", code, out)
		}
		if n := len(flagEvents(t, srv)); n != 1 {
			t.Fatalf("%d events, want 1", n)
		}
	})
	t.Run("SetJSON", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "flags", "set", "kv-only", "off", "-o", "json", srv, "--actor", "bob")
		var got struct {
			flags.Change
			Bucket string `json:"bucket"`
			Event  uint64 `json:"event"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("code %d, out %q, err %q", code, out, errOut)
		}
		if got.Name != "kv-only" || got.Op != flags.OpSet || got.Value || got.Source != flags.SourceKV || got.PreviousSource != flags.SourceDefault ||
			got.Actor != "bob" || got.ID == "" || got.Revision == 0 || got.Bucket != flags.DefaultBucket || got.Event != 2 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("DefaultActorIsUser", func(t *testing.T) {
		var out strings.Builder
		m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Getenv: func(k string) string {
			if k == "USER" {
				return "carol"
			}
			return ""
		}}
		if code := m.Run(ctx, []string{"flags", "set", "by-user", "on", srv}); code != 0 {
			t.Fatalf("code %d: %s", code, out.String())
		}
		if f := flagList(t, srv)["by-user"]; f.Actor != "carol" {
			t.Fatalf("actor %q", f.Actor)
		}
	})
	t.Run("Unset", func(t *testing.T) {
		before := len(flagEvents(t, srv))
		code, out, errOut := run(t, ctx, "", "flags", "unset", "billing.v2", "--actor", "alice", file, srv)
		if code != 0 || !strings.Contains(out, "billing.v2: on (kv) -> off (file)") {
			t.Fatalf("code %d, out %q, err %q", code, out, errOut)
		}
		waitFlag(t, watcher, "billing.v2", false)
		f := flagList(t, file, srv)["billing.v2"]
		if f.Enabled || f.Source != flags.SourceFile || f.Override != flags.Unset {
			t.Fatalf("listed %+v", f)
		}
		evs := flagEvents(t, srv)
		if len(evs) != before+1 {
			t.Fatalf("%d events, want %d", len(evs), before+1)
		}
		ev := evs[len(evs)-1]
		data, _ := ev["data"].(map[string]any)
		if ev["type"] != "flags.unset" || ev["actor"] != "alice" || data["previous"] != true || data["value"] != false || data["source"] != "file" {
			t.Fatalf("event %v", ev)
		}
		code, out, _ = run(t, ctx, "", "flags", "unset", "billing.v2", srv)
		if code != 0 || !strings.Contains(out, "not set") {
			t.Fatalf("second unset: code %d, out %q", code, out)
		}
		if n := len(flagEvents(t, srv)); n != before+1 {
			t.Fatalf("second unset recorded an event")
		}
	})
	t.Run("ListJSONSources", func(t *testing.T) {
		got := flagList(t, file, srv)
		for name, want := range map[string]flags.Source{"new-checkout": flags.SourceFile, "beta-banner": flags.SourceDefault, "kv-only": flags.SourceKV, "billing.v2": flags.SourceFile} {
			if got[name].Source != want {
				t.Errorf("%s: source %q, want %q", name, got[name].Source, want)
			}
		}
		if got["search.fuzzy"].Description != "fuzzy matching in the search box" {
			t.Errorf("description %q", got["search.fuzzy"].Description)
		}
	})

	t.Run("BadInputWritesNothing", func(t *testing.T) {
		badFile := "--file=" + filepath.Join("..", "..", "testdata", "flags", "bad-value.yaml")
		cases := []struct {
			name string
			args []string
			code int
			msg  string
		}{
			{"UnknownValue", []string{"flags", "set", "fresh", "maybe"}, exitUsage, "want on or off"},
			{"UnsetAsValue", []string{"flags", "set", "fresh", "unset"}, exitUsage, "jetsource flags unset fresh"},
			{"NameWithSpace", []string{"flags", "set", "a b", "on"}, exitUsage, "invalid flag name"},
			{"NameWithWildcard", []string{"flags", "set", "a.>", "on"}, exitUsage, "invalid flag name"},
			{"NameWithTwoDots", []string{"flags", "unset", "a..b"}, exitUsage, "two dots"},
			{"NameLeadingDot", []string{"flags", "set", ".a", "on"}, exitUsage, "starts or ends with a dot"},
			{"NameWithSlash", []string{"flags", "set", "a/b", "on"}, exitUsage, "A-Z a-z 0-9 _ . -"},
			{"EmptyName", []string{"flags", "set", "", "on"}, exitUsage, "empty"},
			{"BadActor", []string{"flags", "set", "fresh", "on", "--actor", "a\tb"}, exitUsage, "control character"},
			{"MissingValue", []string{"flags", "set", "fresh"}, exitUsage, "accepts 2 arg"},
			{"ExtraArg", []string{"flags", "unset", "a", "b"}, exitUsage, "accepts 1 arg"},
			{"NoSubcommand", []string{"flags"}, exitUsage, "list, set or unset"},
			{"UnknownSubcommand", []string{"flags", "toggle"}, exitUsage, `"toggle"`},
			{"BadOutput", []string{"flags", "list", "-o", "xml"}, exitUsage, "--output"},
			{"BadFile", []string{"flags", "set", "fresh", "on", badFile}, exitError, "bad-value.yaml:4:14: flags.billing.v2.enabled"},
			{"MissingFile", []string{"flags", "list", "--file=nope.yaml"}, exitError, "nope.yaml"},
			{"MissingStream", []string{"flags", "set", "fresh", "on", "--stream", "NOPE"}, exitError, "stream not found"},
		}
		before := len(flagEvents(t, srv))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				code, _, errOut := run(t, ctx, "", append(c.args, srv)...)
				if code != c.code || !strings.Contains(errOut, c.msg) {
					t.Fatalf("got code %d, err %q; want %d containing %q", code, errOut, c.code, c.msg)
				}
			})
		}
		if n := len(flagEvents(t, srv)); n != before {
			t.Fatalf("bad input recorded %d events", n-before)
		}
		if f, ok := flagList(t, srv)["fresh"]; ok {
			t.Fatalf("bad input wrote a flag: %+v", f)
		}
		code, _, errOut := run(t, ctx, "", "flags", "list", "--server", "nats://127.0.0.1:1")
		if code != exitError || !strings.Contains(errOut, "cannot connect") {
			t.Fatalf("unreachable: code %d, err %q", code, errOut)
		}
	})
}

// TestFlagsStreamWithoutFlagSubjects: when the event stream does not
// capture flags.>, a change cannot be recorded, so nothing is written, not
// even the bucket.
func TestFlagsStreamWithoutFlagSubjects(t *testing.T) {
	s := flagsServe(t, "users.>")
	ctx := context.Background()
	code, _, errOut := run(t, ctx, "", "flags", "set", "billing.v2", "on", "--server="+s.URL())
	if code != exitError || !strings.Contains(errOut, `does not capture flags.billing=2Ev2.changed`) || !strings.Contains(errOut, `"flags.>"`) || !strings.Contains(errOut, "nothing was written") {
		t.Fatalf("code %d, err %q", code, errOut)
	}
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := flags.OpenBucket(ctx, js, flags.DefaultBucket); !errors.Is(err, flags.ErrNoBucket) {
		t.Fatalf("bucket: %v, want none", err)
	}
}

// flagsBucket opens the flag bucket of the server at url, creating it.
func flagsBucket(t *testing.T, url string) jetstream.KeyValue {
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
	kv, err := flags.EnsureBucket(context.Background(), js, jetstream.KeyValueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// waitFlag waits up to a second for the watching Set to see the value.
func waitFlag(t *testing.T, s *flags.Set, name string, want bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for s.Enabled(context.Background(), name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s not %v within a second", name, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFlagsSetRefusesUndeclared: with a flag file (given or configured) a
// typo is refused with exit 2 and the closest name, nothing recorded or
// written; --force creates the flag.
func TestFlagsSetRefusesUndeclared(t *testing.T) {
	s := flagsServe(t, "users.>", "flags.>")
	ctx := context.Background()
	srv := "--server=" + s.URL()
	dir := writeFiles(t, map[string]string{
		"conf/config.yaml": "stream:\n  subjects: [\"users.>\", \"flags.>\"]\nflags:\n  file: flags.yaml\n  bucket: conf_flags\nbuckets:\n  max_bytes: 1MB\n",
		"conf/flags.yaml":  "flags:\n  join-default-group: off\n",
	})
	config := filepath.Join(dir, "conf", "config.yaml")

	for _, args := range [][]string{
		{"flags", "set", "join-default-grop", "on", "--config", config, srv},
		{"flags", "set", "join-default-grop", "on", "--file", filepath.Join(dir, "conf", "flags.yaml"), srv},
	} {
		code, out, errOut := run(t, ctx, "", args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, `"join-default-grop" is not declared`) || !strings.Contains(errOut, `did you mean "join-default-group"?`) || !strings.Contains(errOut, "--force") {
			t.Fatalf("%v: code %d out %q err %q", args, code, out, errOut)
		}
	}
	if evs := flagEvents(t, srv); len(evs) != 0 {
		t.Fatalf("a refused change was recorded: %v", evs)
	}

	// The configured file, bucket and bucket limit apply.
	if code, _, errOut := run(t, ctx, "", "flags", "set", "join-default-group", "on", "--config", config, srv); code != 0 {
		t.Fatalf("declared flag: %d %s", code, errOut)
	}
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "conf_flags")
	if err != nil {
		t.Fatalf("the configured bucket: %v", err)
	}
	st, err := kv.Status(ctx)
	if err != nil || st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.MaxBytes != 1<<20 {
		t.Fatalf("bucket limit: %+v %v", st, err)
	}

	if code, out, errOut := run(t, ctx, "", "flags", "set", "join-default-grop", "on", "--config", config, "--force", srv); code != 0 || !strings.Contains(out, "recorded as event") {
		t.Fatalf("--force: %d %q %q", code, out, errOut)
	}
	// Without a flag file any valid name is set, as before.
	if code, _, errOut := run(t, ctx, "", "flags", "set", "anything-goes", "on", srv); code != 0 {
		t.Fatalf("without a file: %d %s", code, errOut)
	}
}
