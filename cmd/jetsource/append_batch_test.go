package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// batchLine is one event line for append --batch tests.
func batchLine(subject, id string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/test","type":"t","subject":%q,"data":{"id":%q}}`, id, subject, id)
}

// stored returns how many events the server holds.
func stored(t *testing.T, srv string) int { t.Helper(); return len(importExported(t, srv)) }

func TestAppendBatch(t *testing.T) {
	ctx := context.Background()
	srv := importServer(t)

	t.Run("OneTransaction", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "append", "--batch", importFixture("good.ndjson"), srv)
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		want := "LINE  SEQ  SUBJECT           ID\n1     1    users.A.added     imp-1\n2     2    users.A.renamed   imp-2\n4     3    users.B.added     imp-3\n5     4    users.B.avatar    imp-4\n6     5    groups.G.created  imp-5\n"
		if out != want {
			t.Fatalf("got\n%s\nwant\n%s", out, want)
		}
		tx := map[string]bool{}
		for _, l := range importExported(t, srv) {
			var v struct{ TransactionID string }
			json.Unmarshal([]byte(l), &v)
			tx[v.TransactionID] = true
		}
		if len(tx) != 1 || tx[""] {
			t.Fatalf("want one transaction id on all events, got %v", tx)
		}
	})
	t.Run("ResentIsDuplicate", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "append", "--batch", importFixture("good.ndjson"), "-o", "json", srv)
		if code != 0 || !strings.Contains(errOut, "duplicate") {
			t.Fatalf("code %d, stderr %q", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 5 {
			t.Fatalf("want 5 acks, got %q", out)
		}
		var a batchAck
		if err := json.Unmarshal([]byte(lines[4]), &a); err != nil {
			t.Fatal(err)
		}
		if a.Line != 6 || a.Sequence != 5 || !a.Duplicate || a.ID != "imp-5" || a.Subject != "groups.G.created" || a.Stream != "EVENTS" || a.TransactionID == "" {
			t.Fatalf("ack %+v", a)
		}
		if n := stored(t, srv); n != 5 {
			t.Fatalf("resending stored again: %d events", n)
		}
	})
	t.Run("StdinAndJSON", func(t *testing.T) {
		in := batchLine("users.S.added", "s-1") + "\n" + batchLine("users.S.renamed", "s-2") + "\n"
		code, out, errOut := run(t, ctx, in, "append", "--batch", "-", "--output", "json", srv)
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		var acks []batchAck
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var a batchAck
			if err := json.Unmarshal([]byte(l), &a); err != nil {
				t.Fatal(err)
			}
			acks = append(acks, a)
		}
		if len(acks) != 2 || acks[0].Sequence+1 != acks[1].Sequence || acks[0].TransactionID != acks[1].TransactionID || acks[0].Duplicate {
			t.Fatalf("acks %+v", acks)
		}
	})

	// Every refusal below must leave the stream as it was.
	before := stored(t, srv)
	refused := []struct {
		name  string
		stdin string
		args  []string
		code  int
		msgs  []string
	}{
		{"BadLines", "", []string{"--batch", importFixture("bad.ndjson")}, exitUsage, // line 6 names a subject the stream does not capture
			[]string{"line 2: ", "line 4: ", "line 5: ", "line 6: ", "line 7: ", "line 8: ", "line 9: ", "line 11: ", "8 bad line(s)", "nothing written"}},
		{"NotCaptured", batchLine("users.N.added", "n-1") + "\n" + batchLine("orders.O.placed", "n-2"), []string{"--batch", "-"}, exitUsage,
			[]string{"line 2: ", "does not capture orders.O.placed", "nothing written"}},
		{"RepeatedID", batchLine("users.N.added", "n-1") + "\n\n" + batchLine("users.N.renamed", "n-1"), []string{"--batch", "-"}, exitError,
			[]string{"line 3: ", `"n-1" repeats line 1`}},
		{"TwoTransactions", `{"subject":"users.N.added","transactionid":"tx-a"}` + "\n" + `{"subject":"users.N.renamed","transactionid":"tx-b"}`, []string{"--batch", "-"}, exitError,
			[]string{"line 2: ", `"tx-b" differs from "tx-a" of line 1`}},
		{"Empty", "\n\n", []string{"--batch", "-"}, exitError, []string{"no events"}},
		{"TooMany", strings.Repeat(`{"subject":"users.M.added"}`+"\n", 1001), []string{"--batch", "-"}, exitError,
			[]string{"more than 1000 events", "nothing written"}},
		{"ConflictExits3", batchLine("users.A.left", "c-1"), []string{"--batch", "-", "--expect", "1"}, exitConflict,
			[]string{"conflict", "expected last sequence 1, current 2"}},
		{"ConflictOnFilter", batchLine("users.Q.added", "c-2"), []string{"--batch", "-", "--expect", "3", "--expect-filter", "users.>"}, exitConflict,
			[]string{"conflict", "after the read position 3"}},
		{"ExpectNeedsOneAggregate", batchLine("users.X.added", "x-1") + "\n" + batchLine("users.Y.added", "y-1"), []string{"--batch", "-", "--expect", "0"}, exitUsage,
			[]string{"one aggregate", "--expect-filter"}},
		{"NoSubjectArgs", "", []string{"users.A.added", "--batch", "-"}, exitUsage, []string{"takes no SUBJECT"}},
		{"NoSingleEventFlags", "", []string{"--batch", "-", "--type", "x"}, exitUsage, []string{"--type cannot be used with --batch"}},
		{"FilterNeedsExpect", "", []string{"--batch", "-", "--expect-filter", "users.>"}, exitUsage, []string{"needs --expect"}},
		{"MissingFile", "", []string{"--batch", importFixture("nope.ndjson")}, exitError, []string{"no such file"}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, ctx, c.stdin, append(append([]string{"append"}, c.args...), srv)...)
			if code != c.code {
				t.Fatalf("code %d, want %d; stderr %q", code, c.code, errOut)
			}
			for _, msg := range c.msgs {
				if !strings.Contains(errOut, msg) {
					t.Errorf("stderr %q lacks %q", errOut, msg)
				}
			}
			if c.code == exitConflict {
				if strings.TrimSpace(out) == "" {
					t.Errorf("a conflict prints the current sequence, got nothing")
				}
			} else if out != "" {
				t.Errorf("a refused batch printed %q", out)
			}
			if n := stored(t, srv); n != before {
				t.Fatalf("a refused batch wrote %d events", n-before)
			}
		})
	}

	t.Run("ExpectHolds", func(t *testing.T) {
		in := batchLine("users.A.left", "e-1") + "\n" + batchLine("users.A.back", "e-2")
		code, out, errOut := run(t, ctx, in, "append", "--batch", "-", "--expect", "2", srv)
		if code != 0 || !strings.Contains(out, "users.A.back") {
			t.Fatalf("code %d, out %q, err %q", code, out, errOut)
		}
		in = batchLine("users.Q.added", "e-3")
		code, _, errOut = run(t, ctx, in, "append", "--batch", "-", "--expect", fmt.Sprint(before+2), "--expect-filter", "users.>", srv)
		if code != 0 {
			t.Fatalf("filter at the head: code %d: %s", code, errOut)
		}
	})
	t.Run("ThousandFit", func(t *testing.T) {
		var b strings.Builder
		for i := range 1000 {
			b.WriteString(batchLine("groups.K.joined", fmt.Sprintf("k-%d", i)) + "\n")
		}
		f, err := os.CreateTemp(t.TempDir(), "*.ndjson")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(b.String())
		f.Close()
		code, out, errOut := run(t, ctx, "", "append", "--batch", f.Name(), "-o", "json", srv)
		if code != 0 || strings.Count(out, "\n") != 1000 {
			t.Fatalf("code %d, %d lines, err %q", code, strings.Count(out, "\n"), errOut)
		}
	})
}
