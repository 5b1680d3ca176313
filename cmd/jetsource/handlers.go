package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/handlers/example"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/state"
)

// CommandSet registers a set of commands (Go deciders) in a registry.
type CommandSet func(*handlers.Registry) error

// CommandSets are the command sets a binary offers to configurations by
// name (commands.sets).
type CommandSets map[string]CommandSet

// builtinCommandSets returns the command sets of this binary. A program
// built on jetsource adds its own here: a name and the function that
// registers its commands.
func builtinCommandSets() CommandSets {
	return CommandSets{
		// The users-and-groups example domain (handlers/example).
		"example": func(r *handlers.Registry) error { return example.Register(r) },
	}
}

// DecisionsBucket is the key-value bucket where "jetsource serve" keeps the
// snapshots of the models its command workers decide on.
const DecisionsBucket = "jetsource_decisions"

// builtinSnapshotCommandSets returns the command sets of this binary whose
// commands load their models from snapshots in snaps: the set of the same
// name in [builtinCommandSets] with another loader.
func builtinSnapshotCommandSets(snaps state.SnapshotStore) CommandSets {
	return CommandSets{
		"example": func(r *handlers.Registry) error { return example.Register(r, example.WithSnapshots(snaps)) },
	}
}

// decisionRegistry returns the registry the command workers serve: that of
// the wiring, or, when the configuration uses only the built-in sets, the
// same commands loading their models from snapshots in the bucket
// [DecisionsBucket] (created when missing). When the bucket cannot be
// opened it logs a warning and serves the wiring's registry, whose
// commands read every event of their boundary.
func decisionRegistry(ctx context.Context, js jetstream.JetStream, cfg Config, w *wiring, log *slog.Logger) (*handlers.Registry, error) {
	if cfg.sets != nil || len(cfg.Commands.Sets) == 0 {
		return w.registry, nil
	}
	snaps, err := state.NewKVSnapshots(ctx, js, DecisionsBucket, state.BucketMaxBytes(int64(cfg.Buckets.MaxBytes)))
	if err != nil {
		log.Warn("decision snapshots unavailable: commands read every event of their boundary", "bucket", DecisionsBucket, "err", err)
		return w.registry, nil
	}
	sets := builtinSnapshotCommandSets(snaps)
	reg := handlers.NewRegistry()
	for _, name := range cfg.Commands.Sets {
		register := sets[name]
		if register == nil {
			register = builtinCommandSets()[name]
		}
		if register == nil {
			return nil, fmt.Errorf("unknown command set %q", name)
		}
		if err := register(reg); err != nil {
			return nil, fmt.Errorf("command set %s: %w", name, err)
		}
	}
	log.Info("decisions load from snapshots", "bucket", DecisionsBucket)
	return reg, nil
}

// builtinReactions returns the Go reactions that rules of this binary may
// name with go: NAME. There are none built in; a program built on
// jetsource registers its own here.
func builtinReactions() (*handlers.Reactions, error) {
	return handlers.NewReactions(), nil
}

// workerParts says which of a configuration's workers to run.
type workerParts struct {
	commands    bool // command workers of commands.sets
	projections bool // the projections section
	handlers    bool // the rules, with their flag watcher
}

// workers are what "jetsource serve" and "jetsource handlers" run next to
// a NATS connection: command workers, projections, the flag watcher and
// the reactor of the rules, started in that order and stopped in reverse.
type workers struct {
	log *slog.Logger

	commands *handlers.Server

	runner *projections.Runner
	projs  *projectionSet

	flags     *flags.Set
	stopFlags context.CancelFunc
	flagsDone chan struct{}
	flagsErr  error // set before flagsDone closes

	reactor *handlers.Reactor

	closeOnce sync.Once
}

// startFlagsTimeout bounds the first load of the flag bucket.
const startFlagsTimeout = 10 * time.Second

// startWorkers starts the parts of the wiring the configuration asks for:
// the command workers (a processor over the event store, served on the
// command bus), the projections, the flag watcher (when a rule names a
// flag or the configuration has a flags section; the reactor starts once
// the bucket's values are loaded) and the reactor of the rules, which
// sends its follow-on commands over the bus. When one fails to start,
// those started are stopped and the error is returned.
func startWorkers(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg Config, w *wiring, parts workerParts, log *slog.Logger) (_ *workers, err error) {
	ws := &workers{log: log}
	defer func() {
		if err != nil {
			ws.Close()
		}
	}()
	var store *jetstore.Store
	openStore := func() (*jetstore.Store, error) {
		if store != nil {
			return store, nil
		}
		var err error
		store, err = jetstore.New(ctx, js, cfg.Stream.Name, jetstore.WithReservedPrefixes(cfg.Commands.prefix()))
		return store, err
	}
	if parts.commands && w.registry != nil {
		st, err := openStore()
		if err != nil {
			return nil, fmt.Errorf("commands: %w", err)
		}
		popts := []handlers.Option{handlers.WithLogger(log)}
		if w.schemas != nil {
			popts = append(popts, handlers.WithSchemas(w.schemas))
		}
		reg, err := decisionRegistry(ctx, js, cfg, w, log)
		if err != nil {
			return nil, fmt.Errorf("commands: %w", err)
		}
		p, err := handlers.NewProcessor(st, reg, popts...)
		if err != nil {
			return nil, fmt.Errorf("commands: %w", err)
		}
		bopts := []handlers.BusOption{handlers.WithPrefix(cfg.Commands.prefix()), handlers.WithQueue(cfg.Commands.queue())}
		if cfg.Commands.Concurrency > 0 {
			bopts = append(bopts, handlers.WithConcurrency(cfg.Commands.Concurrency))
		}
		// The workers live until Close, not until ctx ends, so that they
		// stop after the handlers that send them commands.
		srv, err := handlers.Serve(context.WithoutCancel(ctx), nc, p, bopts...)
		if err != nil {
			return nil, fmt.Errorf("commands: %w", err)
		}
		ws.commands = srv
		log.Info("serving commands", "commands", strings.Join(w.registry.Names(), " "),
			"prefix", cfg.Commands.prefix(), "queue", cfg.Commands.queue())
	}
	if parts.projections && len(cfg.Projections) > 0 {
		st, err := openStore()
		if err != nil {
			return nil, fmt.Errorf("projections: %w", err)
		}
		set, err := openProjections(ctx, cfg, js, false)
		if err != nil {
			return nil, fmt.Errorf("projections: %w", err)
		}
		r, err := projections.NewRunner(st, set.projs, projections.WithLogger(log))
		if err != nil {
			set.Close()
			return nil, fmt.Errorf("projections: %w", err)
		}
		ws.runner, ws.projs = r, set
		go func() {
			if err := r.Run(context.Background()); err != nil {
				log.Error("projections stopped", "err", err)
			}
		}()
		log.Info("running projections", "count", len(set.projs))
	}
	if parts.handlers && len(w.rules) > 0 {
		ropts := []handlers.ReactorOption{handlers.WithReactorLogger(log)}
		if w.flagged() || cfg.Flags.present() {
			set, err := ws.watchFlags(ctx, js, cfg, w)
			if err != nil {
				return nil, fmt.Errorf("flags: %w", err)
			}
			ropts = append(ropts, handlers.WithFlags(set))
		}
		client, err := handlers.NewClient(nc, handlers.WithPrefix(cfg.Commands.prefix()))
		if err != nil {
			return nil, fmt.Errorf("handlers: %w", err)
		}
		r, err := handlers.NewReactor(js, cfg.Stream.Name, w.rules, client, ropts...)
		if err != nil {
			return nil, err
		}
		if err := r.Start(ctx); err != nil { // a failed Start stops what it started
			return nil, err
		}
		ws.reactor = r
		log.Info("running handlers", "handlers", strings.Join(r.Rules(), " "), "prefix", cfg.Commands.prefix())
	}
	return ws, nil
}

// watchFlags opens the flag bucket (creating it when missing), watches it
// and returns the flag set once the bucket's values are loaded.
func (ws *workers) watchFlags(ctx context.Context, js jetstream.JetStream, cfg Config, w *wiring) (*flags.Set, error) {
	bucket := cfg.Flags.bucket()
	kv, err := flags.EnsureBucket(ctx, js, cfg.bucketConfig(bucket))
	if err != nil {
		return nil, err
	}
	set, err := flags.New(flags.WithBucket(kv), flags.WithDefinitions(w.flagDefs), flags.WithLogger(ws.log))
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	ws.flags, ws.stopFlags, ws.flagsDone = set, cancel, make(chan struct{})
	go func() {
		defer close(ws.flagsDone)
		ws.flagsErr = set.Watch(wctx)
		if ws.flagsErr != nil && wctx.Err() == nil {
			ws.log.Error("the flag watch stopped: flags keep their last values", "bucket", bucket, "err", ws.flagsErr)
		}
	}()
	timer := time.NewTimer(startFlagsTimeout)
	defer timer.Stop()
	select {
	case <-set.Ready():
	case <-ws.flagsDone:
		return nil, ws.flagsErr
	case <-timer.C:
		return nil, fmt.Errorf("%w: bucket %s: its values did not load within %v", jetsource.ErrUnavailable, bucket, startFlagsTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	file := cfg.Flags.File
	ws.log.Info("watching flags", "bucket", bucket, "file", file)
	for _, r := range w.rules {
		if r.Flag == "" {
			continue
		}
		if f, ok := set.Flag(r.Flag); ok {
			ws.log.Info("handler gated by a flag", "handler", r.Name, "flag", r.Flag, "value", flags.ValueOf(f.Enabled), "source", f.Source)
		} else {
			ws.log.Warn("handler gated by a flag that neither the flag file nor the bucket sets: it is off until set", "handler", r.Name, "flag", r.Flag)
		}
	}
	return set, nil
}

// Close stops the workers in the reverse order of their start: the
// handlers first (they finish the event in hand, whose follow-on command
// the command workers still serve), then the flag watcher, the
// projections (each finishes its transaction) and the command workers
// (each finishes the commands received). It is idempotent.
func (ws *workers) Close() {
	ws.closeOnce.Do(func() {
		if ws.reactor != nil {
			if err := ws.reactor.Close(); err != nil {
				ws.log.Warn("handlers did not stop cleanly", "err", err)
			}
			ws.log.Info("stopped handlers")
		}
		if ws.stopFlags != nil {
			ws.stopFlags()
			<-ws.flagsDone
			ws.log.Info("stopped flag watcher")
		}
		if ws.runner != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := ws.runner.Close(ctx); err != nil {
				ws.log.Warn("projections did not stop in time", "err", err)
			}
			cancel()
			ws.projs.Close()
			ws.log.Info("stopped projections")
		}
		if ws.commands != nil {
			if err := ws.commands.Close(); err != nil {
				ws.log.Warn("command workers did not stop cleanly", "err", err)
			}
			ws.log.Info("stopped command workers")
		}
	})
}

func (m *Main) newHandlersCmd(g *globals) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "handlers --config FILE [--server URL]",
		Short: "Run the configured handlers against a NATS server",
		Long: `handlers runs the rules of the configuration file's handlers section against
a running NATS server (--server or NATS_URL): one durable worker per rule
(the consumer handler-<name>) reacts to the events it names and sends its
follow-on commands over the command bus, where command workers serve them
(a "jetsource serve" with the command sets, or your own program). Rules
gated by a feature flag follow the flag bucket live: "jetsource flags set"
takes effect at once, without a restart. It runs until interrupted (SIGINT
or SIGTERM), then lets each worker finish the event in hand.

"jetsource serve --config FILE" runs the same handlers next to the server,
together with the command workers and projections; this command runs only
the handlers, so that they can run and scale apart from the server.

  commands:
    sets: [example]           # the commands rules may send: those of these sets...
    remote: [NotifyUser]      # ...and commands served by other programs
    prefix: cmd               # command subjects cmd.<name> (the default)
  handlers:
    file: handlers.yaml       # the rules (relative to the config file), or
    # rules: [...]            # the rules inline
  flags:
    file: flags.yaml          # flag defaults (relative to the config file)
    bucket: jetsource_flags   # flag values set at run time (the default)

The configuration is checked before anything connects: an unknown command
set, a rule naming a command that is neither in the sets nor remote, or an
expression that does not compile stops it with the file, line and field.`,
		Example: `  jetsource handlers --config testdata/example/config.yaml --server nats://127.0.0.1:4222`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				return usagef("--config FILE is required: the handlers are configured there")
			}
			cfg, err := LoadConfig(configFile)
			if err != nil {
				// Exit 1, also when the message names an unknown command.
				return exitCodeError{code: exitError, err: err}
			}
			if !cfg.Handlers.configured() {
				return fmt.Errorf("config %s: no handlers configured (add a handlers: section)", configFile)
			}
			w, err := cfg.wire()
			if err != nil {
				return exitCodeError{code: exitError, err: configError(configFile, err)}
			}
			if cmd.Flags().Changed("stream") {
				cfg.Stream.Name = g.stream
			}
			level := cfg.Log.Level
			if cmd.Flags().Changed("log-level") {
				level = g.logLvl
			}
			log := m.logger(level, cfg.Log.Format)
			ctx := cmd.Context()
			nc, js, err := m.handlersClient(g, log)
			if err != nil {
				return err
			}
			defer nc.Close()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second+startFlagsTimeout)
			ws, err := startWorkers(sctx, nc, js, cfg, w, workerParts{handlers: true}, log)
			cancel()
			if err != nil {
				return exitCodeError{code: exitError, err: err}
			}
			log.Info("handlers running", "server", g.server, "stream", cfg.Stream.Name, "count", len(w.rules))
			<-ctx.Done()
			log.Info("shutting down")
			ws.Close()
			if err := nc.Drain(); err != nil {
				log.Warn("drain", "err", err)
			}
			log.Info("stopped")
			return nil
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "YAML configuration file with a handlers section (required)")
	return cmd
}

// handlersClient connects for "jetsource handlers": like the projection
// runner it reconnects for ever.
func (m *Main) handlersClient(g *globals, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(g.server, nats.Name("jetsource-handlers"), nats.Timeout(g.timeout),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("reconnected") }))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: cannot connect to %s: %w", jetsource.ErrUnavailable, g.server, err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(g.timeout))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
