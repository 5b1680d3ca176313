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
