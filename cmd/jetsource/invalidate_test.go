package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestInvalidateCommand(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx := context.Background()
	srv := "--server=" + s.URL()
	for _, a := range [][]string{
		{"append", "users.A.added", `{"name":"Ann"}`, srv},
		{"append", "users.B.added", `{"name":"Bad"}`, "--id", "bad-1", srv},
	} {
		if code, _, errOut := run(t, ctx, "", a...); code != 0 {
			t.Fatalf("%v: %s", a, errOut)
		}
	}
	code, out, errOut := run(t, ctx, "", "invalidate", "--seq", "2", "--reason", "test data", "--actor", "ops", "-o", "json", srv)
	var v struct {
		Transaction string `json:"transaction"`
		Sequence    uint64 `json:"sequence"`
		Duplicate   bool   `json:"duplicate"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Transaction != "bad-1" || v.Sequence != 3 || v.Duplicate {
		t.Fatalf("invalidate: code %d out %q err %q", code, out, errOut)
	}
	code, out, _ = run(t, ctx, "", "invalidate", "bad-1", "--reason", "again", srv)
	if code != 0 || !strings.Contains(out, "already invalidated at sequence 3") {
		t.Errorf("again: code %d out %q", code, out)
	}
	// Audit reads keep everything; --skip-invalidated leaves it out.
	_, out, _ = run(t, ctx, "", "events", srv)
	if !strings.Contains(out, "users.B.added") || !strings.Contains(out, "jetsource.transactions.bad-1.invalidated") {
		t.Errorf("events: %s", out)
	}
	_, out, _ = run(t, ctx, "", "events", "users.>", "--skip-invalidated", srv)
	if strings.Contains(out, "users.B.added") || !strings.Contains(out, "users.A.added") {
		t.Errorf("events --skip-invalidated: %s", out)
	}

	for name, args := range map[string][]string{
		"no reason":     {"invalidate", "bad-1"},
		"both":          {"invalidate", "bad-1", "--seq", "2", "--reason", "x"},
		"neither":       {"invalidate", "--reason", "x"},
		"too many args": {"invalidate", "a", "b", "--reason", "x"},
	} {
		if code, _, _ := run(t, ctx, "", append(args, srv)...); code != exitUsage {
			t.Errorf("%s: exit %d, want %d", name, code, exitUsage)
		}
	}
	if code, _, errOut := run(t, ctx, "", "invalidate", "--seq", "99", "--reason", "x", srv); code != 1 || !strings.Contains(errOut, "no event at sequence 99") {
		t.Errorf("missing sequence: code %d err %q", code, errOut)
	}

	// A transaction no event carries (a typo) is refused; nothing is written.
	code, out, errOut = run(t, ctx, "", "invalidate", "nosuchtx", "--reason", "x", srv)
	if code != exitError || out != "" || !strings.Contains(errOut, `unknown transaction`) || !strings.Contains(errOut, `"nosuchtx"`) || !strings.Contains(errOut, "--force") {
		t.Errorf("unknown transaction: code %d out %q err %q", code, out, errOut)
	}
	if _, out, _ := run(t, ctx, "", "events", "jetsource.transactions.>", srv); strings.Contains(out, "nosuchtx") {
		t.Errorf("the refused invalidation was recorded: %s", out)
	}
	code, out, errOut = run(t, ctx, "", "invalidate", "nosuchtx", "--reason", "imported later", "--force", srv)
	if code != 0 || !strings.Contains(out, "transaction nosuchtx invalidated at sequence 4") {
		t.Errorf("--force: code %d out %q err %q", code, out, errOut)
	}
}

func TestAppendDedup(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx := context.Background()
	srv := "--server=" + s.URL()
	if code, out, errOut := run(t, ctx, "", "append", "users.A.profile", `{"name":"Ann","age":30}`, "--dedup", srv); code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("first: %d %q %q", code, out, errOut)
	}
	// The same content in another key order: nothing written, sequence 1.
	code, out, errOut := run(t, ctx, "", "append", "users.A.profile", `{"age":30, "name":"Ann"}`, "--dedup", srv)
	if code != 0 || strings.TrimSpace(out) != "1" || !strings.Contains(errOut, "same content") {
		t.Fatalf("same content: %d %q %q", code, out, errOut)
	}
	// Without --dedup it is stored again.
	if code, out, _ := run(t, ctx, "", "append", "users.A.profile", `{"age":30,"name":"Ann"}`, srv); code != 0 || strings.TrimSpace(out) != "2" {
		t.Fatalf("without --dedup: %d %q", code, out)
	}
	// A batch: the unchanged profile is left out, the new one stored.
	batch := `{"subject":"users.A.profile","data":{"name":"Ann","age":30}}` + "\n" + `{"subject":"users.B.profile","data":{"name":"Bob"}}` + "\n"
	code, out, errOut = run(t, ctx, batch, "append", "--batch", "-", "--dedup", "-o", "json", srv)
	if code != 0 || !strings.Contains(out, `"duplicate":true`) || !strings.Contains(out, `"sequence":3`) {
		t.Fatalf("batch: %d %q %q", code, out, errOut)
	}
	_, out, _ = run(t, ctx, "", "events", "users.>", "-o", "json", srv)
	if n := strings.Count(out, "\n"); n != 3 {
		t.Fatalf("stored %d events, want 3: %s", n, out)
	}
}
