package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
)

func (m *Main) newServeCmd(g *globals) *cobra.Command {
	var configFile, listen, data, sync, logFormat string
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--listen HOST:PORT] [--data DIR]",
		Short: "Run the embedded NATS server with the event stream",
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
    duplicates: 2m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := DefaultConfig()
			if configFile != "" {
				var err error
				if cfg, err = LoadConfig(configFile); err != nil {
					return err
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
				return err
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
// event stream provisioned.
type Serve struct {
	srv *embedded.Server
	nc  *nats.Conn
	log *slog.Logger
	// The configured projections, when there are any.
	runner *projections.Runner
	projs  *projectionSet
}

// StartServe starts the embedded server and provisions the stream.
func StartServe(ctx context.Context, cfg Config, log *slog.Logger) (*Serve, error) {
	interval, err := cfg.syncInterval()
	if err != nil {
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
	s := &Serve{srv: srv, nc: nc, log: log}
	if len(cfg.Projections) > 0 {
		if err := s.startProjections(pctx, cfg, js); err != nil {
			nc.Close()
			srv.Shutdown()
			return nil, fmt.Errorf("projections: %w", err)
		}
	}
	return s, nil
}

// startProjections runs the configured projections next to the server.
func (s *Serve) startProjections(ctx context.Context, cfg Config, js jetstream.JetStream) error {
	store, err := jetstore.New(ctx, js, cfg.Stream.Name)
	if err != nil {
		return err
	}
	set, err := openProjections(ctx, cfg, js)
	if err != nil {
		return err
	}
	r, err := projections.NewRunner(store, set.projs, projections.WithLogger(s.log))
	if err != nil {
		set.Close()
		return err
	}
	s.runner, s.projs = r, set
	go r.Run(context.Background())
	s.log.Info("running projections", "count", len(set.projs))
	return nil
}

// Projections returns the runner of the configured projections (nil:
// none configured).
func (s *Serve) Projections() *projections.Runner { return s.runner }

// URL returns the client URL of the server.
func (s *Serve) URL() string { return s.srv.ClientURL() }

// Close drains the connection and shuts the server down.
func (s *Serve) Close() {
	if s.runner != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := s.runner.Close(ctx); err != nil {
			s.log.Warn("projections did not stop in time", "err", err)
		}
		cancel()
		s.projs.Close()
	}
	if err := s.nc.Drain(); err != nil {
		s.log.Warn("drain", "err", err)
	}
	s.srv.Shutdown()
}
