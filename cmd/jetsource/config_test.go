package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigErrorsNameFileAndLine checks that a typo or a value of the
// wrong kind is reported as FILE:LINE with the field, in words: no Go
// type names, no "yaml:" internals.
func TestConfigErrorsNameFileAndLine(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"UnknownServerField", "server:\n  listen: 127.0.0.1:4222\n  lisen: 127.0.0.1:4333\n",
			`config.yaml:3: unknown field "lisen" in server (known: listen, data, sync, max_payload); did you mean "listen"?`},
		{"UnknownSection", "# comment\nsever:\n  listen: x\n", `config.yaml:2: unknown field "sever" (known: server, stream,`},
		{"UnknownLogField", "log:\n  levle: debug\n", `config.yaml:2: unknown field "levle" in log (known: level, format); did you mean "level"?`},
		{"UnknownBucketsField", "buckets:\n  max_byte: 1MB\n", `config.yaml:2: unknown field "max_byte" in buckets`},
		{"ReplicasNotANumber", "stream:\n  name: X\n  replicas: three\n", `config.yaml:3: stream.replicas: "three" is not a whole number`},
		{"AllowDeleteNotABool", "stream:\n  allow_delete: maybe\n", `config.yaml:2: stream.allow_delete: "maybe" is not true or false`},
		{"SubjectsNotAList", "stream:\n  subjects: users.>\n", `config.yaml:2: stream.subjects: want a list of strings`},
		{"BadSize", "stream:\n  max_bytes: lots\n", `config.yaml:2: stream.max_bytes: "lots" is not a size`},
		{"NegativeSize", "buckets:\n  max_bytes: -1GB\n", `config.yaml:2: buckets.max_bytes: "-1GB" is negative`},
		{"ProjectionNameNotAString", "projections:\n  - name: [a]\n", `config.yaml:2: projections[0].name: want a string`},
		{"ProjectionFieldTwice", "projections:\n  - name: a\n    name: b\n", `config.yaml:3: projections[0].name: given twice (also line 2)`},
		{"BadLogLevel", "log:\n  format: text\n  level: loud\n", `config.yaml:3: log.level: "loud" is not one of`},
		{"BadSync", "\nserver:\n  sync: sometimes\n", `config.yaml:3: server.sync`},
		{"SystemSubject", "stream:\n  subjects: [\"$JS.>\"]\n", `config.yaml:2: stream.subjects: jetsource: subject not writable: "$JS.>"`},
		{"CommandBusSubject", "stream:\n  subjects: [\"users.>\", \"cmd.>\"]\n", `overlaps the command bus cmd.>`},
		{"NotAMapping", "- a\n- b\n", `config.yaml:1: want a mapping of sections`},
		{"TwoDocuments", "log:\n  level: info\n---\nlog:\n  level: debug\n", `config.yaml:3: a second YAML document`},
		{"SyntaxError", "server:\n  listen: [\n", `config.yaml:2: not valid YAML`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"config.yaml": c.body})
			_, err := LoadConfig(filepath.Join(dir, "config.yaml"))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Fatalf("got %q\nwant it to contain %q", msg, c.want)
			}
			for _, leak := range []string{"main.", "in type", "!!", "yaml: ", "unmarshal"} {
				if strings.Contains(msg, leak) {
					t.Fatalf("the error leaks %q: %q", leak, msg)
				}
			}
		})
	}
	t.Run("EveryProblemOnItsOwnLine", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"config.yaml": "server:\n  sync: sometimes\nlog:\n  level: loud\n"})
		path := filepath.Join(dir, "config.yaml")
		_, err := LoadConfig(path)
		if err == nil {
			t.Fatal("no error")
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], path+":2: server.sync") || !strings.HasPrefix(lines[1], path+":4: log.level") {
			t.Fatalf("got %q", err)
		}
	})
	t.Run("ServeExitsWithTheMessage", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"config.yaml": "server:\n  lisen: x\n"})
		code, _, errOut := run(t, context.Background(), "", "serve", "--config", filepath.Join(dir, "config.yaml"))
		if code != exitError || !strings.Contains(errOut, `config.yaml:2: unknown field "lisen" in server`) {
			t.Fatalf("got %d %q", code, errOut)
		}
	})
}

// TestConfigSizes checks the size limits of the stream and the buckets.
func TestConfigSizes(t *testing.T) {
	dir := writeFiles(t, map[string]string{"config.yaml": "stream:\n  max_bytes: 10GB\n  max_msg_size: 512K\nbuckets:\n  max_bytes: 1.5MiB\nserver:\n  max_payload: 2MB\n"})
	cfg, err := LoadConfig(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stream.MaxBytes != 10<<30 || cfg.Stream.MaxMsgSize != 512<<10 || cfg.Buckets.MaxBytes != 3<<19 || cfg.Server.MaxPayload != 2<<20 {
		t.Fatalf("got stream %d/%d, buckets %d, payload %d", cfg.Stream.MaxBytes, cfg.Stream.MaxMsgSize, cfg.Buckets.MaxBytes, cfg.Server.MaxPayload)
	}
	if sc := cfg.streamConfig(); sc.MaxBytes != 10<<30 {
		t.Fatalf("stream config max bytes %d", sc.MaxBytes)
	}
	if kc := cfg.bucketConfig("b"); kc.MaxBytes != 3<<19 {
		t.Fatalf("bucket config max bytes %d", kc.MaxBytes)
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"512K", 512 << 10, true},
		{"512kb", 512 << 10, true},
		{"100MB", 100 << 20, true},
		{"100 MiB", 100 << 20, true},
		{"10GB", 10 << 30, true},
		{"1.5G", 3 << 29, true},
		{"2T", 2 << 40, true},
		{"12B", 12, true},
		{"1_000", 1000, true},
		{"", 0, false},
		{"GB", 0, false},
		{"ten", 0, false},
		{"-5", 0, false},
		{"1e30TB", 0, false},
		{"NaN", 0, false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseSize(c.in)
			if (err == nil) != c.ok || got != c.want {
				t.Fatalf("parseSize(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
			}
		})
	}
	for in, want := range map[int64]string{10 << 30: "10GB", 3 << 19: "1.5MB", 999: "999B", 1 << 10: "1KB"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestConfigPathsRelativeToFile checks that every path a configuration
// file gives is relative to its directory, and that a default data
// directory stays in the working directory.
func TestConfigPathsRelativeToFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"conf/config.yaml": "server:\n  data: ./data\nprojections:\n  - name: a\n    filters: [\"users.>\"]\n    read_model: sqlite\n    database: read.db\n" +
			"  - name: b\n    filters: [\"groups.>\"]\n    read_model: sqlite\nflags:\n  file: flags.yaml\ncommands:\n  sets: [example]\n  schemas: schemas\nhandlers:\n  file: /abs/handlers.yaml\n",
	})
	conf := filepath.Join(dir, "conf")
	cfg, err := parseConfig(filepath.Join(conf, "config.yaml"), mustRead(t, filepath.Join(conf, "config.yaml")), nil)
	if err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string][2]string{
		"server.data":             {cfg.Server.Data, filepath.Join(conf, "data")},
		"projections[0].database": {cfg.Projections[0].Database, filepath.Join(conf, "read.db")},
		"projections[1].database": {cfg.Projections[1].Database, filepath.Join(conf, "projections.db")},
		"flags.file":              {cfg.Flags.File, filepath.Join(conf, "flags.yaml")},
		"commands.schemas":        {cfg.Commands.Schemas, filepath.Join(conf, "schemas")},
		"handlers.file":           {cfg.Handlers.File, "/abs/handlers.yaml"},
	} {
		if got[0] != got[1] {
			t.Errorf("%s = %q, want %q", what, got[0], got[1])
		}
	}
	cfg, err = parseConfig(filepath.Join(conf, "other.yaml"), []byte("log:\n  level: info\n"), nil)
	if err != nil || cfg.Server.Data != "jetsource-data" {
		t.Fatalf("default data directory %q, %v; want jetsource-data (the working directory's)", cfg.Server.Data, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProjectionsStatusUsesTheConfigDirectory runs a projection through
// serve with a relative database path and checks that status and rebuild
// find the database next to the configuration file, whatever the working
// directory, and refuse a database that does not exist instead of
// creating an empty one.
func TestProjectionsStatusUsesTheConfigDirectory(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"conf/config.yaml": "projections:\n  - name: users\n    filters: [\"users.>\"]\n    read_model: sqlite\n    database: read.db\n",
		"conf/other.yaml":  "projections:\n  - name: users\n    filters: [\"users.>\"]\n    read_model: sqlite\n    database: missing.db\n",
	})
	conf := filepath.Join(dir, "conf")
	cfgPath := filepath.Join(conf, "config.yaml")
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, cfg)
	srv := "--server=" + s.URL()
	ctx := context.Background()
	if code, _, errOut := run(t, ctx, "", "append", "users.A.added", `{"name":"Ann"}`, srv); code != 0 {
		t.Fatal(errOut)
	}
	eventually(t, 10*time.Second, "the projection did not catch up", func() bool {
		code, out, _ := run(t, ctx, "", "projections", "status", "--config", cfgPath, "-o", "json", srv)
		return code == 0 && strings.Contains(out, `"checkpoint":1,`)
	})
	if _, err := os.Stat(filepath.Join(conf, "read.db")); err != nil {
		t.Fatalf("the database is not next to the config file: %v", err)
	}
	if _, err := os.Stat("read.db"); err == nil {
		t.Fatal("a read.db was created in the working directory")
	}

	other := filepath.Join(conf, "other.yaml")
	for _, args := range [][]string{{"projections", "status"}, {"projections", "rebuild", "users"}} {
		code, out, errOut := run(t, ctx, "", append(args, "--config", other, srv)...)
		if code != exitError || out != "" || !strings.Contains(errOut, filepath.Join(conf, "missing.db")+" does not exist") {
			t.Fatalf("%v: got %d %q %q", args, code, out, errOut)
		}
	}
	for _, p := range []string{filepath.Join(conf, "missing.db"), "missing.db"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s was created: %v", p, err)
		}
	}
}
