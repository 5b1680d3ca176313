package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitConflict = 3
)

// Main is the program: its streams and environment, so tests can run it
// in-process.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// globals are the flags every client command shares.
type globals struct {
	server  string
	output  string
	stream  string
	timeout time.Duration
	logLvl  string
}

// usageError marks a bad invocation (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// exitCodeError carries an exit code for an error already reported.
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

// Run runs the command line args and returns the exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	root := m.newRootCmd()
	root.SetArgs(args)
	root.SetIn(m.Stdin)
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := m.report(err)
	if hint := uncapturedHint(cmd, err); hint != "" {
		fmt.Fprintln(m.Stderr, hint)
	}
	return code
}

// report prints err and returns its exit code.
func (m *Main) report(err error) int {
	var ue usageError
	var ce exitCodeError
	switch {
	case errors.As(err, &ce):
		if ce.err != nil && ce.code != exitConflict {
			fmt.Fprintln(m.Stderr, "error:", ce.err)
		}
		return ce.code
	case errors.As(err, &ue), isCobraUsage(err), errors.Is(err, jetsource.ErrForbiddenSubject):
		fmt.Fprintln(m.Stderr, "usage error:", err)
		fmt.Fprintln(m.Stderr, "Run 'jetsource --help' for usage.")
		return exitUsage
	case errors.Is(err, jetsource.ErrConflict), errors.Is(err, jetsource.ErrIDReused):
		fmt.Fprintln(m.Stderr, "conflict:", err)
		return exitConflict
	default:
		fmt.Fprintln(m.Stderr, "error:", err)
		return exitError
	}
}

// uncapturedHint tells how to make the stream capture the subject of an
// append that failed because no stream captures it ("" for other errors,
// and for subjects that must never be stored).
func uncapturedHint(cmd *cobra.Command, err error) string {
	if cmd == nil || !(errors.Is(err, jetsource.ErrForbiddenSubject) ||
		errors.Is(err, jetsource.ErrStreamNotFound) && errors.Is(err, jetstream.ErrNoStreamResponse)) {
		return ""
	}
	stream := jetstore.DefaultStreamName
	if f := cmd.Flags().Lookup("stream"); f != nil {
		stream = f.Value.String()
	}
	root := "ROOT"
	if cmd.Name() == "append" && cmd.Flags().NArg() > 0 {
		s, perr := subjects.Parse(cmd.Flags().Arg(0))
		if perr != nil {
			return ""
		}
		root = strings.SplitN(s.String(), ".", 2)[0]
	}
	if checkRoot(root+".>", "") != nil {
		return "" // never stored: no root to add
	}
	return fmt.Sprintf("hint: the stream %s stores only the subjects it captures (jetsource stream info lists them); "+
		"add this root with \"jetsource stream add-subject %s.>\" on the running server (kept across restarts), "+
		"start serve with --subjects %s.>, or list it in stream.subjects of the config file", stream, root, root)
}

// isCobraUsage recognises cobra's own argument and flag errors, which
// begin with these words (errors of jetsource's own that merely contain
// them, such as a rule naming an unknown command, are not usage errors).
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "requires at most", "bad flag syntax"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func (m *Main) newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "jetsource",
		Short: "Event sourcing on NATS JetStream",
		Long: `jetsource stores events on NATS JetStream subjects such as users.A.added:
the aggregate is users.A, the event name is added, and users.A.> selects the
aggregate's events. Events are CloudEvents: attributes travel as ce-* headers,
the data as the message body, so "nats pub users.A.added '{...}'" is an event too.

Start an embedded server with "jetsource serve", then append and read events
with the other commands against it (or against any NATS server with JetStream,
via --server or NATS_URL).

Exit codes: 0 success, 1 error, 2 usage error, 3 concurrency conflict,
4 command rejected (jetsource command).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       buildVersion().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	env := m.Getenv("NATS_URL")
	if env == "" {
		env = nats.DefaultURL
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", env, "NATS server URL (env NATS_URL)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&g.stream, "stream", jetstore.DefaultStreamName, "name of the event stream")
	pf.DurationVar(&g.timeout, "timeout", 5*time.Second, "time limit of each server request")
	pf.StringVar(&g.logLvl, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if g.output != "table" && g.output != "json" {
			return usagef("--output must be table or json, not %q", g.output)
		}
		if g.timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		return nil
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		m.newServeCmd(g),
		m.newAppendCmd(g),
		m.newEventsCmd(g),
		m.newTailCmd(g),
		m.newBenchCmd(g),
		m.newImportCmd(g),
		m.newInvalidateCmd(g),
		m.newProjectCmd(g),
		m.newProjectionsCmd(g),
		m.newStateCmd(g),
		m.newSurfaceCmd(g),
		m.newAuditCmd(g),
		m.newCommandCmd(g),
		m.newHandlersCmd(g),
		m.newFlagsCmd(g),
		m.newMigrateCmd(g),
		m.newSyncCmd(g),
		m.newStreamCmd(g),
		m.newVersionCmd(g),
	)
	return root
}

func (m *Main) logger(level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(m.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(m.Stderr, opts))
}

// client is a connection and store for a client command.
type client struct {
	nc    *nats.Conn
	store *jetstore.Store
}

func (c *client) Close() { c.nc.Close() }

// connect opens the store of a client command. A client gives up on a
// lost server at once unless opts say otherwise (they come after the
// defaults).
func (m *Main) connect(ctx context.Context, g *globals, opts ...nats.Option) (*client, error) {
	nc, err := nats.Connect(g.server, append([]nats.Option{nats.Name("jetsource-cli"), nats.Timeout(g.timeout), nats.MaxReconnects(0)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot connect to %s: %w", jetsource.ErrUnavailable, g.server, err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(g.timeout))
	if err != nil {
		nc.Close()
		return nil, err
	}
	st, err := jetstore.New(ctx, js, g.stream, jetstore.WithTimeout(g.timeout))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &client{nc: nc, store: st}, nil
}
