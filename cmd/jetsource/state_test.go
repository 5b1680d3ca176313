package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestStateAndSurface(t *testing.T) {
	s := serve(t, DefaultConfig())
	ctx := context.Background()
	srv := "--server=" + s.URL()
	for _, a := range [][]string{
		{"users.A.added", `{"name":"Ann","age":1}`},
		{"users.B.added", `{"name":"Bob"}`},
		{"users.A.renamed", `{"name":"Anne"}`},
		{"users.A.aged", `{"age":null}`},
	} {
		if code, _, errOut := run(t, ctx, "", "append", a[0], a[1], srv); code != 0 {
			t.Fatalf("append: %s", errOut)
		}
	}
	stateJSON := func(t *testing.T, args ...string) (string, uint64) {
		t.Helper()
		code, out, errOut := run(t, ctx, "", append([]string{"state", "-o", "json", srv}, args...)...)
		if code != 0 {
			t.Fatalf("state %v: code %d: %s", args, code, errOut)
		}
		var v struct {
			Aggregate string          `json:"aggregate"`
			Sequence  uint64          `json:"sequence"`
			State     json.RawMessage `json:"state"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		return string(v.State), v.Sequence
	}
	t.Run("Head", func(t *testing.T) {
		got, seq := stateJSON(t, "users.A")
		if got != `{"name":"Anne"}` || seq != 4 {
			t.Fatalf("got %s at %d", got, seq)
		}
		// Again, from the snapshot the first load wrote.
		if got, seq := stateJSON(t, "users.A"); got != `{"name":"Anne"}` || seq != 4 {
			t.Fatalf("second load: got %s at %d", got, seq)
		}
	})
	t.Run("AtSequence", func(t *testing.T) {
		if got, seq := stateJSON(t, "users.A", "--at", "2"); got != `{"age":1,"name":"Ann"}` || seq != 1 {
			t.Fatalf("got %s at %d", got, seq)
		}
	})
	t.Run("AtTimeBeforeEverything", func(t *testing.T) {
		if got, seq := stateJSON(t, "users.A", "--at", "2000-01-01T00:00:00Z"); got != `{}` || seq != 0 {
			t.Fatalf("got %s at %d", got, seq)
		}
	})
	t.Run("UnknownAggregate", func(t *testing.T) {
		if got, seq := stateJSON(t, "users.Nobody", "--snapshot-bucket", ""); got != `{}` || seq != 0 {
			t.Fatalf("got %s at %d", got, seq)
		}
	})
	t.Run("Table", func(t *testing.T) {
		code, out, _ := run(t, ctx, "", "state", "users.B", srv)
		if code != 0 || !strings.Contains(out, "sequence:  2") || !strings.Contains(out, `"name": "Bob"`) {
			t.Fatalf("code %d, out %q", code, out)
		}
	})
	t.Run("BadInput", func(t *testing.T) {
		for _, args := range [][]string{
			{"state", "users.*"},
			{"state", "users..A"},
			{"state", "users.A", "--at", "yesterday"},
			{"state", "users.A", "--at", "-3"},
			{"state", "users.A", "--snapshot-every", "0"},
			{"state"},
			{"surface", "users..>"},
			{"surface"},
		} {
			code, out, errOut := run(t, ctx, "", append(args, srv)...)
			if code != exitUsage || out != "" || errOut == "" {
				t.Errorf("%v: code %d, out %q, err %q", args, code, out, errOut)
			}
		}
		code, _, errOut := run(t, ctx, "", "state", "users.A", "--snapshot-bucket", "bad.name", srv)
		if code != exitError || !strings.Contains(errOut, "snapshot bucket") {
			t.Errorf("bad bucket: code %d, err %q", code, errOut)
		}
	})
	t.Run("Surface", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "surface", "users.*.added", "-o", "json", srv)
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], `"subject":"users.A.added"`) || !strings.Contains(lines[1], `"subject":"users.B.added"`) {
			t.Fatalf("got %q", out)
		}
		code, out, _ = run(t, ctx, "", "surface", "users.A.>", srv)
		if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(out, "users.A.renamed") {
			t.Fatalf("table: code %d, out %q", code, out)
		}
	})
}
