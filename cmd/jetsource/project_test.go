package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetsource/jetsource/projections"
)

// projectionConfigFile writes testdata/projections/ok.yaml with its SQLite
// database in a temporary directory and returns its path and the
// database's.
func projectionConfigFile(t *testing.T) (cfgPath, dbPath string) {
	t.Helper()
	b, err := os.ReadFile("../../testdata/projections/ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dbPath = filepath.Join(dir, "read.db")
	cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, bytes.ReplaceAll(b, []byte("PLACEHOLDER_DB"), []byte(dbPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dbPath
}

func TestProjectionConfigErrors(t *testing.T) {
	cases := []struct{ file, line, field, msg string }{
		{"unknown-read-model.yaml", ".yaml:4: ", "projections[0].read_model", `unknown read model "postgres"`},
		{"bad-filter.yaml", ".yaml:3: ", "projections[0].filters[0]", "invalid filter"},
		{"missing-name.yaml", ".yaml:2: ", "projections[0].name", "missing"},
		{"duplicate-names.yaml", ".yaml:5: ", "projections[1].name", `duplicate name "users"`},
		{"unknown-field.yaml", ".yaml:5: ", "projections[0]", `unknown field "tabel" in projections[0]`},
		{"table-on-kv.yaml", ".yaml:5: ", "projections[0].table", "only for read_model sqlite"},
		{"bad-name.yaml", ".yaml:2: ", "projections[0].name", `"1 users"`},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.file, ".yaml"), func(t *testing.T) {
			path := filepath.Join("..", "..", "testdata", "projections", c.file)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range []string{path, c.line, c.field, c.msg} {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not name %q", err, want)
				}
			}
			// The commands refuse it before connecting or writing anything.
			for _, args := range [][]string{{"project"}, {"projections", "status"}, {"projections", "rebuild", "users"}} {
				code, out, errOut := run(t, context.Background(), "", append(args, "--config", path, "--server", "nats://127.0.0.1:1")...)
				if code == 0 || out != "" || !strings.Contains(errOut, c.field) {
					t.Fatalf("%v: code %d, out %q, err %q", args, code, out, errOut)
				}
			}
		})
	}
	t.Run("ConfigRequired", func(t *testing.T) {
		code, _, errOut := run(t, context.Background(), "", "project")
		if code != exitUsage || !strings.Contains(errOut, "--config") {
			t.Fatalf("code %d, %q", code, errOut)
		}
	})
}

func TestProjectStatusRebuild(t *testing.T) {
	cfgPath, dbPath := projectionConfigFile(t)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, cfg) // serve runs the projections too
	srv := "--server=" + s.URL()
	ctx := context.Background()
	for _, a := range [][]string{
		{"users.A.added", `{"name":"Ann","age":30}`},
		{"users.B.added", `{"name":"Bob"}`},
		{"users.A.renamed", `{"name":"Anne","age":null}`},
		{"groups.G.added", `{"title":"G"}`},
		{"users.B.deleted", `{}`},
	} {
		if code, _, errOut := run(t, ctx, "", "append", a[0], a[1], srv); code != 0 {
			t.Fatal(errOut)
		}
	}
	status := func() map[string]projections.Status {
		code, out, errOut := run(t, ctx, "", "projections", "status", "--config", cfgPath, "-o", "json", srv)
		if code != 0 {
			t.Fatalf("status: %d %s", code, errOut)
		}
		sts := map[string]projections.Status{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var st projections.Status
			if err := json.Unmarshal([]byte(line), &st); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			sts[st.Name] = st
		}
		return sts
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		sts := status()
		if sts["users"].Checkpoint == 5 && sts["groups"].Checkpoint == 4 && sts["users"].Lag == 0 && sts["groups"].Lag == 0 {
			if sts["groups"].Location != "kv:groups" || !strings.Contains(sts["users"].Location, "read.db") {
				t.Fatalf("locations %+v", sts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not project: %+v", sts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkUsers := func() {
		t.Helper()
		db, err := projections.OpenSQLite(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var entity, doc string
		var n int
		if err := db.QueryRow(`SELECT count(*), min(entity), min(document) FROM users`).Scan(&n, &entity, &doc); err != nil {
			t.Fatal(err)
		}
		if n != 1 || entity != "users.A" || doc != `{"name":"Anne"}` {
			t.Fatalf("users table: %d rows, %s %s", n, entity, doc)
		}
	}
	checkUsers()
	code, out, _ := run(t, ctx, "", "projections", "status", "--config", cfgPath, srv)
	if code != 0 || !strings.Contains(out, "CHECKPOINT") || !strings.Contains(out, "kv:groups") {
		t.Fatalf("table status: %d %q", code, out)
	}

	for _, name := range []string{"users", "groups"} {
		t.Run("Rebuild"+name, func(t *testing.T) {
			code, out, errOut := run(t, ctx, "", "projections", "rebuild", name, "--config", cfgPath, "-o", "json", srv)
			if code != 0 {
				t.Fatalf("rebuild: %d %s", code, errOut)
			}
			var res rebuildResult
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.Generation != 1 || res.Events == 0 {
				t.Fatalf("%q: %+v %v", out, res, err)
			}
			if !strings.Contains(errOut, "rebuild "+name) {
				t.Fatalf("no progress report: %q", errOut)
			}
		})
	}
	checkUsers()
	if st := status(); st["groups"].Location != "kv:groups_g1" || st["users"].Generation != 1 {
		t.Fatalf("after rebuild: %+v", st)
	}
	code, _, errOut := run(t, ctx, "", "projections", "rebuild", "nope", "--config", cfgPath, srv)
	if code != exitUsage || !strings.Contains(errOut, "no such projection") {
		t.Fatalf("unknown projection: %d %q", code, errOut)
	}
}

func TestProjectRunsUntilInterrupted(t *testing.T) {
	cfgPath, dbPath := projectionConfigFile(t)
	s := serve(t, DefaultConfig())
	srv := "--server=" + s.URL()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run(t, context.Background(), "", "append", "users.A.added", `{"x":1}`, srv)
	errb := &syncWriter{w: &bytes.Buffer{}}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: errb, Getenv: func(string) string { return "" }}
	done := make(chan int)
	go func() { done <- m.Run(ctx, []string{"project", "--config", cfgPath, srv}) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out, _ := run(t, context.Background(), "", "projections", "status", "--config", cfgPath, "-o", "json", srv)
		if code == 0 && strings.Contains(out, `"name":"users"`) && strings.Contains(out, `"checkpoint":1,`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("project did not apply: %s / %s", out, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(errb.String(), "projections stopped") {
			t.Fatalf("project exited %d: %s", code, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("project did not stop")
	}
	if _, err := os.Stat(dbPath); err != nil {
		t.Fatal(err)
	}
}
