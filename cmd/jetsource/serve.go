package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
)

func (m *Main) newServeCmd(g *globals) *cobra.Command {
	var configFile, listen, data, sync, logFormat string
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--listen HOST:PORT] [--data DIR]",
		Short: "Run the embedded NATS server with the event stream and the configured workers",
		Long: `serve starts a NATS server with JetStream inside this process, stores its
files in the data directory, provisions the event stream and runs until
interrupted (SIGINT or SIGTERM), then drains and exits.

Every write is synced to disk before it is acknowledged. A config file may
trade that for speed with server.sync: 1s.

Without a config file the stream EVENTS captures users.>, groups.> and
companies.>, so "nats pub users.A.added '{\"name\":\"Ann\"}'" lands in it.
A config file names the subject roots explicitly:

  server:
    listen: 127.0.0.1:4222
    data: ./jetsource-data
    sync: always
  stream:
    name: EVENTS
    subjects: ["orders.>", "customers.>"]
    duplicates: 2m

The same file may run workers next to the server, started in this order
once the stream is provisioned, and stopped in reverse on SIGINT or SIGTERM:

  commands:                   # command workers on the bus (cmd.<name>)
    sets: [example]           # command sets built into this binary
  projections: [...]          # read models (see "jetsource project --help")
  handlers:
    file: handlers.yaml       # rules: events in, follow-on commands out
  flags:
    file: flags.yaml          # flag defaults; values set at run time live in
    bucket: jetsource_flags   # this bucket and take effect without a restart

Paths are relative to the config file. The whole file is checked before the
server starts: an unknown command set, a rule naming an unknown command or a
bad expression stops serve with the file, line and field. Without a config
file serve runs no command workers and no handlers.

  jetsource serve --config testdata/example/config.yaml   # the example domain`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := DefaultConfig()
			if configFile != "" {
				var err error
				if cfg, err = LoadConfig(configFile); err != nil {
					// Exit 1, also when the message names an unknown command.
					return exitCodeError{code: exitError, err: err}
				}
			}
			fl := cmd.Flags()
			if fl.Changed("listen") {
				cfg.Server.Listen = listen
			}
			if fl.Changed("data") {
				cfg.Server.Data = data
			}
			if fl.Changed("sync") {
				cfg.Server.Sync = sync
			}
			if fl.Changed("log-level") || configFile == "" {
				cfg.Log.Level = g.logLvl
			}
			if fl.Changed("log-format") {
				cfg.Log.Format = logFormat
			}
			if fl.Changed("stream") {
				cfg.Stream.Name = g.stream
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			log := m.logger(cfg.Log.Level, cfg.Log.Format)
			s, err := StartServe(cmd.Context(), cfg, log)
			if err != nil {
				return exitCodeError{code: exitError, err: err}
			}
			<-cmd.Context().Done()
			log.Info("shutting down")
			s.Close()
			log.Info("stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configFile, "config", "c", "", "YAML configuration file")
	f.StringVar(&listen, "listen", "127.0.0.1:4222", "client address host:port (port 0: any free port)")
	f.StringVar(&data, "data", "jetsource-data", "data directory")
	f.StringVar(&sync, "sync", "always", `"always" (fsync every write) or an interval such as 1s`)
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// Serve is a running "jetsource serve": the embedded server with the
// event stream provisioned, and the workers the configuration asks for.
type Serve struct {
	srv  *embedded.Server
	nc   *nats.Conn
	log  *slog.Logger
	work *workers
}

// StartServe checks the configuration's commands, handlers and flags
// sections (a bad one starts nothing), starts the embedded server,
// provisions the stream, and then starts, in this order: the command
// workers of commands.sets, the projections, the flag watcher and the
// handlers (see startWorkers). [Serve.Close] stops them in reverse.
func StartServe(ctx context.Context, cfg Config, log *slog.Logger) (*Serve, error) {
	interval, err := cfg.syncInterval()
	if err != nil {
		return nil, err
	}
	w, err := cfg.wire()
	if err != nil {
		if cfg.file != "" {
			return nil, fmt.Errorf("config %s: %w", cfg.file, err)
		}
		return nil, err
	}
	opts := []embedded.Option{
		embedded.WithListen(cfg.Server.Listen), embedded.WithDataDir(cfg.Server.Data),
		embedded.WithLogger(log),
	}
	if interval > 0 {
		opts = append(opts, embedded.WithSyncInterval(interval))
	}
	if cfg.Server.MaxPayload > 0 {
		opts = append(opts, embedded.WithMaxPayload(cfg.Server.MaxPayload))
	}
	srv, err := embedded.Start(ctx, opts...)
	if err != nil {
		return nil, err
	}
	nc, err := srv.Connect(nats.Name("jetsource-serve"))
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := jetstore.Provision(pctx, js, cfg.streamConfig())
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, err
	}
	info := st.CachedInfo()
	sync := "always"
	if interval > 0 {
		sync = interval.String()
	}
	log.Info("jetsource serving", "url", srv.ClientURL(), "data", srv.DataDir(), "fsync", sync,
		"stream", info.Config.Name, "subjects", strings.Join(info.Config.Subjects, " "), "events", info.State.Msgs)
	if interval > 0 {
		log.Warn("fsync is lazy: a machine crash can lose acknowledged events", "interval", interval)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second+startFlagsTimeout)
	defer wcancel()
	work, err := startWorkers(wctx, nc, js, cfg, w, workerParts{commands: true, projections: true, handlers: true}, log)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, err
	}
	return &Serve{srv: srv, nc: nc, log: log, work: work}, nil
}

// Projections returns the runner of the configured projections (nil:
// none configured).
func (s *Serve) Projections() *projections.Runner { return s.work.runner }

// Reactor returns the reactor of the configured handlers (nil: none
// configured).
func (s *Serve) Reactor() *handlers.Reactor { return s.work.reactor }

// Flags returns the flag set the handlers read (nil: no handler needs
// flags).
func (s *Serve) Flags() *flags.Set { return s.work.flags }

// URL returns the client URL of the server.
func (s *Serve) URL() string { return s.srv.ClientURL() }

// Close stops the workers in the reverse order of their start (handlers,
// flag watcher, projections, command workers), drains the connection and
// shuts the server down. It is idempotent.
func (s *Serve) Close() {
	s.work.Close()
	if err := s.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		s.log.Warn("drain", "err", err)
	}
	s.srv.Shutdown()
}
