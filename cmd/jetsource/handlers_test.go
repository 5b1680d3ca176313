package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/handlers"
)

// writeFiles writes files (names may hold directories) into a new
// temporary directory and returns it.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// exampleRules is the example domain's rule file, by absolute path.
func exampleRules(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "example", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const unknownCommandRules = `handlers:
  - name: join
    on: users.*.*.inserted
    do:
      command: AddToGroup
      payload: {group: default}
`

const badExpressionRules = `handlers:
  - name: join
    on: users.*.*.inserted
    when: event.data.name ==
    do:
      command: AddUserToGroup
`

// TestHandlersConfigErrors checks that every bad commands, handlers or
// flags section is refused at load with its file, line and field, and
// that serve and handlers then start nothing.
func TestHandlersConfigErrors(t *testing.T) {
	cases := []struct {
		name   string
		config string
		files  map[string]string
		want   []string // besides the config's path, unless inFile
		inFile string   // the file the error must name, when not the config
		is     error
	}{
		{name: "UnknownCommandSet", config: "commands:\n  sets: [example, exampel]\n",
			want: []string{"config.yaml:2: ", "commands.sets[1]", `unknown command set "exampel"`, "this binary has: example"}},
		{name: "CommandSetTwice", config: "commands:\n  sets:\n    - example\n    - example\n",
			want: []string{"config.yaml:4: ", "commands.sets[1]", "named twice"}},
		{name: "UnknownCommandsField", config: "commands:\n  sets: [example]\n  prefx: app\n",
			want: []string{"config.yaml:3: ", "commands", `unknown field "prefx" in commands`}},
		{name: "BadPrefix", config: "commands:\n  sets: [example]\n  prefix: cmd.>\n",
			want: []string{"config.yaml:3: ", "commands.prefix", "literal subject tokens"}},
		{name: "BadRemoteName", config: "commands:\n  remote: [\"Notify User\"]\n",
			want: []string{"config.yaml:2: ", "commands.remote[0]"}},
		{name: "NoSets", config: "commands:\n  prefix: cmd\n",
			want: []string{"commands.sets", "missing"}},
		{name: "RulesFileUnknownCommand", config: "commands:\n  sets: [example]\nhandlers:\n  file: rules.yaml\n",
			files: map[string]string{"rules.yaml": unknownCommandRules}, inFile: "rules.yaml",
			want: []string{"config.yaml:4: ", "handlers.file", ":5:16", "handlers[0].do.command", `"AddToGroup"`, "AddUserToGroup"}, is: handlers.ErrUnknownCommand},
		{name: "RulesFileBadExpression", config: "commands:\n  sets: [example]\nhandlers:\n  file: rules.yaml\n",
			files: map[string]string{"rules.yaml": badExpressionRules}, inFile: "rules.yaml",
			want: []string{":4:11", "handlers[0].when"}, is: handlers.ErrInvalidExpression},
		{name: "RulesCommandServedNowhere", config: "handlers:\n  file: rules.yaml\n",
			files: map[string]string{"rules.yaml": strings.ReplaceAll(unknownCommandRules, "AddToGroup", "AddUserToGroup")}, inFile: "rules.yaml",
			want: []string{":5:16", "handlers[0].do.command", "known: none"}, is: handlers.ErrUnknownCommand},
		{name: "InlineUnknownCommand", config: "commands:\n  sets: [example]\n\nhandlers:\n  rules:\n    - name: join\n      on: users.*.*.inserted\n      do:\n        command: AddToGroup\nflags:\n  bucket: f\n",
			want: []string{":9:18", "handlers.rules[0].do.command", "AddToGroup"}, is: handlers.ErrUnknownCommand},
		{name: "InlineBadExpression", config: "commands:\n  remote: [Notify]\nhandlers:\n  rules:\n  - name: join\n    on: users.>\n    when: event.nope\n    do: {command: Notify}\n",
			want: []string{":7:11", "handlers.rules[0].when", "nope"}, is: handlers.ErrInvalidExpression},
		{name: "InlineUnknownRuleField", config: "handlers:\n  rules:\n    - name: join\n      on: users.>\n      go: audit\n      colour: red\n",
			want: []string{":6:7", "handlers.rules[0].colour", "unknown field"}},
		{name: "FileAndInline", config: "handlers:\n  file: rules.yaml\n  rules: []\n",
			want: []string{"config.yaml:3: ", "handlers.rules", "not both"}},
		{name: "EmptyHandlers", config: "handlers:\n  {}\n",
			want: []string{"config.yaml:2: ", "handlers", "missing"}},
		{name: "FlowInline", config: "handlers: {rules: [{name: a, on: users.>, go: x}]}\n",
			want: []string{"config.yaml:1: ", "block style"}},
		{name: "MissingRulesFile", config: "handlers:\n  file: nope.yaml\n",
			want: []string{"config.yaml:2: ", "handlers.file", "nope.yaml"}, is: handlers.ErrInvalidRules},
		{name: "BadFlagsFile", config: "flags:\n  file: flags.yaml\n",
			files: map[string]string{"flags.yaml": "flags:\n  ok: on\n  \"bad name\": on\n"}, inFile: "flags.yaml",
			want: []string{"config.yaml:2: ", "flags.file", ":3"}, is: flags.ErrInvalidFile},
		{name: "BadFlagsBucket", config: "flags:\n  bucket: my.flags\n",
			want: []string{"config.yaml:2: ", "flags.bucket", `"my.flags"`}},
		{name: "UnknownFlagsField", config: "flags:\n  fille: x\n",
			want: []string{"config.yaml:2: ", "flags", `unknown field "fille" in flags`, `did you mean "file"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"config.yaml": c.config}
			for k, v := range c.files {
				files[k] = v
			}
			dir := writeFiles(t, files)
			path := filepath.Join(dir, "config.yaml")
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatal("no error")
			}
			want := append([]string{path}, c.want...)
			if c.inFile != "" {
				want = append(want, filepath.Join(dir, c.inFile))
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %q does not match %v", err, c.is)
			}
			// serve starts nothing: no data directory, no server.
			data := filepath.Join(dir, "data")
			code, out, errOut := run(t, context.Background(), "", "serve", "--config", path, "--listen", "127.0.0.1:0", "--data", data)
			if code != exitError || out != "" || !strings.Contains(errOut, c.want[len(c.want)-1]) {
				t.Fatalf("serve: code %d, out %q, err %q", code, out, errOut)
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("serve created its data directory: %v", err)
			}
			// handlers refuses before connecting.
			code, out, errOut = run(t, context.Background(), "", "handlers", "--config", path, "--server", "nats://127.0.0.1:1")
			if code != exitError || out != "" || !strings.Contains(errOut, c.want[len(c.want)-1]) || strings.Contains(errOut, "cannot connect") {
				t.Fatalf("handlers: code %d, out %q, err %q", code, out, errOut)
			}
		})
	}
}

func TestHandlersConfig(t *testing.T) {
	t.Run("InlineRules", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"config.yaml": `# inline rules keep their lines
commands:
  sets: [example]
  remote: [NotifyUser]
handlers:
  rules:
  # a comment among the rules
  - name: join
    on: users.*.*.inserted
    do:
      command: AddUserToGroup
      payload: {company: "${ unescape(event.tokens[1]) }", group: default, user: "${ unescape(event.tokens[2]) }"}

  - name: notify
    on: groups.*.*.members.*.added
    do: {command: NotifyUser}
flags:
  bucket: other_flags
`})
		path := filepath.Join(dir, "config.yaml")
		cfg, err := LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		w, err := cfg.wire()
		if err != nil {
			t.Fatal(err)
		}
		if len(w.rules) != 2 || w.rules[0].Name != "join" || w.rules[0].File != path || w.rules[0].Line != 8 ||
			w.rules[1].Command != "NotifyUser" || w.rules[1].Line != 14 {
			t.Fatalf("rules: %+v %+v", w.rules[0], w.rules[1])
		}
		if cfg.Flags.bucket() != "other_flags" || cfg.Commands.prefix() != "cmd" || cfg.Commands.queue() != handlers.DefaultQueue {
			t.Fatalf("defaults: %+v", cfg)
		}
	})
	t.Run("ExampleRelativePaths", func(t *testing.T) {
		cfg, err := LoadConfig(exampleConfig)
		if err != nil {
			t.Fatal(err)
		}
		w, err := cfg.wire()
		if err != nil {
			t.Fatal(err)
		}
		if len(w.rules) != 1 || w.rules[0].Flag != "join-default-group" || w.rules[0].File != filepath.Join("..", "..", "testdata", "example", "handlers.yaml") {
			t.Fatalf("rules: %+v", w.rules)
		}
		if d, ok := w.flagDefs["join-default-group"]; !ok || d.Default != flags.Off {
			t.Fatalf("flag definitions: %+v", w.flagDefs)
		}
		if len(w.registry.Names()) != 5 {
			t.Fatalf("commands: %v", w.registry.Names())
		}
	})
	t.Run("CustomCommandSet", func(t *testing.T) {
		// A binary built on jetsource offers its own sets by name.
		sets := CommandSets{"notes": func(r *handlers.Registry) error {
			return r.Register("Note", handlers.HandlerFunc(func(context.Context, handlers.Reader, handlers.Command) (handlers.Decision, error) {
				return handlers.Decision{}, nil
			}))
		}}
		cfg, err := parseConfig("custom.yaml", []byte("commands:\n  sets: [notes]\nhandlers:\n  rules:\n    - {name: n, on: users.>, do: {command: Note}}\n"), sets)
		if err != nil {
			t.Fatal(err)
		}
		w, err := cfg.wire()
		if err != nil || !slices.Equal(w.registry.Names(), []string{"Note"}) || len(w.rules) != 1 {
			t.Fatalf("wiring %+v, %v", w, err)
		}
		if _, err := parseConfig("custom.yaml", []byte("commands:\n  sets: [example]\n"), sets); err == nil || !strings.Contains(err.Error(), "this binary has: notes") {
			t.Fatalf("a set the binary lacks: %v", err)
		}
	})
	t.Run("DefaultServesNoCommands", func(t *testing.T) {
		w, err := DefaultConfig().wire()
		if err != nil || w.registry != nil || len(w.rules) != 0 {
			t.Fatalf("default wiring: %+v, %v", w, err)
		}
		s := serve(t, DefaultConfig())
		code, _, errOut := run(t, context.Background(), "", "command", "InsertUser", "{}", "--server", s.URL())
		if code != exitError || !strings.Contains(errOut, "no command worker serves cmd.InsertUser") {
			t.Fatalf("code %d, %q", code, errOut)
		}
		if s.Reactor() != nil || s.Flags() != nil || s.Projections() != nil {
			t.Fatal("the default serve runs workers")
		}
	})
	t.Run("HandlersNeedsConfig", func(t *testing.T) {
		code, _, errOut := run(t, context.Background(), "", "handlers")
		if code != exitUsage || !strings.Contains(errOut, "--config") {
			t.Fatalf("code %d, %q", code, errOut)
		}
		dir := writeFiles(t, map[string]string{"config.yaml": "commands:\n  sets: [example]\n"})
		code, _, errOut = run(t, context.Background(), "", "handlers", "--config", filepath.Join(dir, "config.yaml"), "--server", "nats://127.0.0.1:1")
		if code != exitError || !strings.Contains(errOut, "no handlers configured") {
			t.Fatalf("code %d, %q", code, errOut)
		}
	})
}

// TestServeCommandSchemas checks commands.schemas: payloads breaking the
// schema of their command are rejected before anything is read.
func TestServeCommandSchemas(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"config.yaml": "commands:\n  sets: [example]\n  prefix: app.cmd\n  queue: workers\n  concurrency: 4\n  schemas: schemas\n",
	})
	if err := os.Mkdir(filepath.Join(dir, "schemas"), 0o700); err != nil {
		t.Fatal(err)
	}
	schema := `{"type":"object","required":["company","id","username"],"properties":{"company":{"type":"string","minLength":3}}}`
	if err := os.WriteFile(filepath.Join(dir, "schemas", "InsertUser.json"), []byte(schema), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, cfg)
	srv := "--server=" + s.URL()
	code, out, _ := run(t, context.Background(), "", "command", "InsertUser", `{"company":"ab","id":"u","username":"u"}`, "--prefix", "app.cmd", srv)
	if code != exitRejected || !strings.Contains(out, "reason:") {
		t.Fatalf("schema violation: code %d, out %q", code, out)
	}
	code, out, _ = run(t, context.Background(), "", "command", "InsertUser", `{"company":"abc","id":"u","username":"u"}`, "--prefix", "app.cmd", srv)
	if code != exitOK || out != "accepted\nsequences: 1 2\n" {
		t.Fatalf("valid payload: code %d, out %q", code, out)
	}
	if code, _, errOut := run(t, context.Background(), "", "command", "InsertUser", "{}", srv); code != exitError || !strings.Contains(errOut, "no command worker serves cmd.InsertUser") {
		t.Fatalf("default prefix: code %d, %q", code, errOut)
	}
	t.Run("BadSchemaDir", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "schemas", "SetAPIKey.json"), []byte(`{"type": 7`), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(filepath.Join(dir, "config.yaml"))
		if err == nil || !strings.Contains(err.Error(), "config.yaml:6: commands.schemas") || !strings.Contains(err.Error(), "SetAPIKey.json") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestHandlersCommand runs "jetsource handlers" against a server that
// serves the example commands but runs no handlers: the handler reacts
// to inserted users once its flag is on, and stops on SIGINT.
func TestHandlersCommand(t *testing.T) {
	ctx := context.Background()
	serveDir := writeFiles(t, map[string]string{"config.yaml": "commands:\n  sets: [example]\n"})
	cfg, err := LoadConfig(filepath.Join(serveDir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, cfg)
	srv := "--server=" + s.URL()
	// The handlers' own configuration: the example rules, sending the
	// commands of the example set (served by the server above).
	dir := writeFiles(t, map[string]string{"handlers.yaml": "commands:\n  sets: [example]\nhandlers:\n  file: " + exampleRules(t, "handlers.yaml") +
		"\nflags:\n  file: " + exampleRules(t, "flags.yaml") + "\n  bucket: example_flags\n"})
	h := startBackground(t, "handlers running", "handlers", "--config", filepath.Join(dir, "handlers.yaml"), srv)
	if strings.Contains(h.log.String(), "serving commands") {
		t.Fatalf("handlers served commands: %s", h.log.String())
	}
	if code, out, errOut := run(t, ctx, "", "flags", "set", "join-default-group", "on", "--bucket", "example_flags", "--actor", "ops", srv); code != 0 {
		t.Fatalf("flags set: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := run(t, ctx, "", "command", "InsertUser", `{"company":"acme","id":"dan","name":"Dan","username":"dan"}`, srv); code != 0 {
		t.Fatalf("InsertUser: %d %s %s", code, out, errOut)
	}
	eventually(t, 10*time.Second, "dan did not join the default group", func() bool {
		_, out, _ := run(t, ctx, "", "events", "groups.acme.default.members.dan.>", "-o", "json", srv)
		return strings.Contains(out, `"actor":"handler:join-default-group"`)
	})
	if code := h.stop(t); code != 0 {
		t.Fatalf("handlers exited %d: %s", code, h.log.String())
	}
	log := h.log.String()
	if i, j := strings.Index(log, "stopped handlers"), strings.Index(log, "stopped flag watcher"); i < 0 || j < i || !strings.Contains(log, "msg=stopped") {
		t.Fatalf("handlers did not stop cleanly:\n%s", log)
	}
}

// TestServeCommandExample starts "jetsource serve --config" with the
// example configuration as the binary does and stops it as SIGINT does.
func TestServeCommandExample(t *testing.T) {
	b := startBackground(t, "jetsource serving", "serve", "--config", exampleConfig,
		"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--sync", "1s")
	if code := b.stop(t); code != 0 {
		t.Fatalf("serve exited %d: %s", code, b.log.String())
	}
	log := b.log.String()
	last := -1
	for _, step := range []string{"serving commands", "running projections", "watching flags", "running handlers", "jetsource serving",
		"shutting down", "stopped handlers", "stopped flag watcher", "stopped projections", "stopped command workers", "msg=stopped"} {
		i := strings.Index(log, step)
		if i <= last {
			t.Fatalf("%q is missing or out of order in the log:\n%s", step, log)
		}
		last = i
	}
}

// FuzzConfig checks that no configuration text panics the parser or the
// wiring of inline rules, and that an accepted one wires.
func FuzzConfig(f *testing.F) {
	// The example configuration (files are not read by the fuzz target).
	if b, err := os.ReadFile(exampleConfig); err == nil {
		f.Add(b)
	}
	// Inline rules, list items at the key's indentation, a comment inside.
	f.Add([]byte("commands:\n  sets: [example]\nhandlers:\n  rules:\n  # c\n  - name: a\n    on: users.>\n    do: {command: InsertUser}\n"))
	// Inline rules followed by another section.
	f.Add([]byte("handlers:\n  rules:\n    - name: a\n      on: users.>\n      go: x\nflags:\n  bucket: b\n"))
	// The rules key on the first line of a nested mapping, flow list.
	f.Add([]byte("handlers:\n rules: [{name: a, on: users.>, do: {command: X}}]\ncommands: {remote: [X]}\n"))
	// Flow style section, empty rules, null rules.
	f.Add([]byte("handlers: {rules: []}\n"))
	f.Add([]byte("handlers:\n  rules:\n"))
	// Bad sections.
	f.Add([]byte("commands: [example]\nflags: 3\n"))
	f.Add([]byte("commands:\n  sets: [nope]\n  concurrency: -1\n  queue: a b\n"))
	// CRLF line ends and tabs.
	f.Add([]byte("handlers:\r\n  rules:\r\n  - name: a\r\n    on: users.>\r\n    do:\r\n\tcommand: X\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig("fuzz.yaml", data, nil)
		if err != nil {
			return
		}
		if cfg.Handlers.File != "" || cfg.Flags.File != "" || cfg.Commands.Schemas != "" {
			return // reads files: not for fuzzing
		}
		w, err := cfg.wire()
		if err != nil {
			return
		}
		for _, r := range w.rules {
			if r.File != "fuzz.yaml" || r.Line < 1 {
				t.Fatalf("rule %s at %s:%d", r.Name, r.File, r.Line)
			}
		}
	})
}

// TestServeCloseLeavesNoGoroutines checks that Close waits for every
// worker the example configuration starts.
func TestServeCloseLeavesNoGoroutines(t *testing.T) {
	cfg, err := LoadConfig(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen, cfg.Server.Data, cfg.Server.Sync = "127.0.0.1:0", t.TempDir(), "1s"
	before := runtime.NumGoroutine()
	s, err := StartServe(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // idempotent
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
