package main

import (
	"context"
	"strings"
	"testing"
)

// Issue 9, point 1: "append '$JS.API.STREAM.DELETE.EVENTS' '{}'" deleted
// the event stream. Every write command refuses a forbidden subject with
// exit 2 and a message naming the rule, and writes nothing.
func TestWriteCommandsRefuseForbiddenSubjects(t *testing.T) {
	ctx := context.Background()
	srv := importServer(t)
	if code, _, errOut := run(t, ctx, "", "append", "users.A.added", `{}`, srv); code != 0 {
		t.Fatalf("a good append: code %d: %s", code, errOut)
	}
	cases := []struct{ subject, rule string }{
		{"$JS.API.STREAM.DELETE.EVENTS", "system subject"},
		{"$JS.API.STREAM.PURGE.EVENTS", "system subject"},
		{"$KV.flags.x", "system subject"},
		{"_INBOX.a.b", "system subject"},
		{"cmd.AddUser", "reserved prefix cmd.>"},
		{"users2.x", "stream EVENTS does not capture users2.x (it captures users.>, groups.>)"},
	}
	for _, c := range cases {
		t.Run("append/"+c.subject, func(t *testing.T) {
			code, _, errOut := run(t, ctx, "", "append", c.subject, `{}`, srv)
			if code != exitUsage || !strings.Contains(errOut, c.rule) {
				t.Fatalf("code %d, stderr %q; want %d naming %q", code, errOut, exitUsage, c.rule)
			}
		})
		line := batchLine(c.subject, "forbidden-1") + "\n" + batchLine("users.B.added", "forbidden-2") + "\n"
		t.Run("append--batch/"+c.subject, func(t *testing.T) {
			code, _, errOut := run(t, ctx, line, "append", "--batch", "-", srv)
			if code != exitUsage || !strings.Contains(errOut, c.rule) || !strings.Contains(errOut, "line 1") {
				t.Fatalf("code %d, stderr %q; want %d naming line 1 and %q", code, errOut, exitUsage, c.rule)
			}
		})
		t.Run("import/"+c.subject, func(t *testing.T) {
			code, _, errOut := run(t, ctx, line, "import", "-", "--no-progress", srv)
			if code != exitUsage || !strings.Contains(errOut, c.rule) {
				t.Fatalf("code %d, stderr %q; want %d naming %q", code, errOut, exitUsage, c.rule)
			}
		})
	}
	// The stream is still there, with its one event.
	if n := stored(t, srv); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
}

// Issue 9, point 6: "append --id X" with content different from the stored
// X answered exit 0 "duplicate" and dropped the new content. It is a
// conflict (exit 3) naming the stored sequence; the same content stays a
// duplicate (exit 0).
func TestAppendReusedID(t *testing.T) {
	ctx := context.Background()
	srv := importServer(t)
	if code, out, errOut := run(t, ctx, "", "append", "users.A.added", `{"name":"Ann"}`, "--id", "X", srv); code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("first: code %d, out %q, stderr %q", code, out, errOut)
	}
	code, out, errOut := run(t, ctx, "", "append", "users.A.added", `{"name":"Ann"}`, "--id", "X", srv)
	if code != 0 || strings.TrimSpace(out) != "1" || !strings.Contains(errOut, "duplicate") {
		t.Fatalf("same content: code %d, out %q, stderr %q; want 0, the original sequence and duplicate", code, out, errOut)
	}
	code, out, errOut = run(t, ctx, "", "append", "users.A.added", `{"name":"Bob"}`, "--id", "X", srv)
	if code != exitConflict || strings.TrimSpace(out) != "1" || !strings.Contains(errOut, "sequence 1") || !strings.Contains(errOut, "data") {
		t.Fatalf("other content: code %d, out %q, stderr %q; want %d naming sequence 1 and the data", code, out, errOut, exitConflict)
	}
	batch := batchLine("users.B.added", "Y") + "\n" + `{"specversion":"1.0","id":"X","source":"/test","type":"t","subject":"users.A.added","data":{"name":"Carl"}}` + "\n"
	code, _, errOut = run(t, ctx, batch, "append", "--batch", "-", srv)
	if code == 0 {
		t.Fatalf("a batch reusing X: code 0, stderr %q", errOut)
	}
	if n := stored(t, srv); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
}
