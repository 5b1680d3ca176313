package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
)

func (m *Main) newServeCmd(g *globals) *cobra.Command {
	var configFile, listen, data, sync, logFormat, mqttListen string
	var roots []string
	var maxBytes ByteSize
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--subjects ROOT,...] [--max-bytes SIZE]",
		Short: "Run the embedded NATS server with the event stream and the configured workers",
		Long: `serve starts a NATS server with JetStream inside this process, stores its
files in the data directory, provisions the event stream and runs until
interrupted (SIGINT or SIGTERM), then drains and exits.

Every write is synced to disk before it is acknowledged. A config file may
trade that for speed with server.sync: 1s.

Without a config file the stream EVENTS captures users.>, groups.> and
companies.> (the example domain), flags.> (flag changes) and
jetsource.transactions.> (invalidations), so "nats pub users.A.added
'{\"name\":\"Ann\"}'" lands in it. An event on any other subject is
refused until its root is added: --subjects bookings.>,orders.> (added to
the configured ones), "jetsource stream add-subject bookings.>" on a
running server, or stream.subjects in a config file. serve only adds roots
to an existing stream, never removes one (that is "jetsource stream
remove-subject"), so a root added at run time survives a restart:

  server:
    listen: 127.0.0.1:4222
    data: ./jetsource-data
    sync: always
  stream:
    name: EVENTS
    subjects: ["orders.>", "customers.>"]
    duplicates: 2m
    max_bytes: 10GB           # refuse new events beyond this size (default: no limit)
  buckets:
    max_bytes: 100MB          # size limit of the buckets serve creates

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

Paths in the config file are relative to its directory (paths given as
flags, to the working directory). The whole file is checked before the
server starts: an unknown command set, a rule naming an unknown command or a
bad expression stops serve with the file, line and field. Without a config
file serve runs no command workers and no handlers.

MQTT clients subscribe to events when the config has mqtt.listen (or
with --mqtt 127.0.0.1:1883): nats-server's built-in MQTT 3.1.1 listener.
The topic users/A/added is the subject users.A.added, + and # are * and
>, and a subscriber receives the event's data as the payload (MQTT 3.1.1
has no headers, so no ce-* attributes); QoS 0 and 1 subscriptions are
served, QoS 1 sessions kept in JetStream ($MQTT_* streams). MQTT clients
can publish nothing (their PUBLISH is refused), so nothing enters the event
stream from MQTT unchecked, unless mqtt.publish lists subjects:

  mqtt:
    listen: 127.0.0.1:1883
    publish: ["sensors.>"]    # default: none

The MQTT listener opens as the server starts (it only serves readers).

Clients can connect only once everything runs: the client port opens after
the stream is provisioned and the command workers, projections, flag
watcher and handlers have started, and the log line "jetsource serving"
(with the URL) says so. Until then a client cannot connect, so no command is
answered "unknown" while serve starts.

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
			if fl.Changed("subjects") {
				subjs, err := addRoots(cfg.Stream.Subjects, roots)
				if err != nil {
					return usageError{fmt.Errorf("--subjects: %w", err)}
				}
				cfg.Stream.Subjects = subjs
			}
			if fl.Changed("max-bytes") {
				cfg.Stream.MaxBytes = maxBytes
			}
			if fl.Changed("mqtt") {
				cfg.MQTT.Listen = mqttListen
			}
			if err := cfg.Validate(); err != nil {
				if cfg.file != "" {
					err = configError(cfg.file, err)
				}
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
	f.StringSliceVar(&roots, "subjects", nil, "subject roots the stream captures besides the configured ones, comma-separated (bookings or bookings.>)")
	f.StringVar(&mqttListen, "mqtt", "", "open an MQTT listener on host:port for MQTT subscribers of events (topic users/A/added is subject users.A.added)")
	f.Var(&maxBytes, "max-bytes", "size limit of the stream, such as 10GB: a full stream refuses new events (0: none)")
	return cmd
}

// Serve is a running "jetsource serve": the embedded server with the
// event stream provisioned, and the workers the configuration asks for.
type Serve struct {
	srv      *embedded.Server
	nc       *nats.Conn
	ncClosed chan struct{} // closed with nc
	log      *slog.Logger
	work     *workers
	close    sync.Once
}

// drainTimeout bounds the drain of serve's own connection at Close.
const drainTimeout = 5 * time.Second

// StartServe checks the configuration's commands, handlers and flags
// sections (a bad one starts nothing), starts the embedded server with
// its client port closed, provisions the stream, and then starts, in this
// order: the command workers of commands.sets, the projections, the flag
// watcher and the handlers (see startWorkers). Only then does it open the
// client port and log "jetsource serving": a client connects to a server
// whose commands are served, never to one still starting (which would
// answer a command with no responders: "unknown command"). [Serve.Close]
// stops them in reverse.
func StartServe(ctx context.Context, cfg Config, log *slog.Logger) (_ *Serve, err error) {
	interval, err := cfg.syncInterval()
	if err != nil {
		return nil, err
	}
	w, err := cfg.wire()
	if err != nil {
		if cfg.file != "" {
			return nil, configError(cfg.file, err)
		}
		return nil, err
	}
	opts := []embedded.Option{
		embedded.WithListen(cfg.Server.Listen), embedded.WithDataDir(cfg.Server.Data),
		embedded.WithLogger(log), embedded.WithDeferredListen(),
	}
	if interval > 0 {
		opts = append(opts, embedded.WithSyncInterval(interval))
	}
	if cfg.Server.MaxPayload > 0 {
		opts = append(opts, embedded.WithMaxPayload(cfg.Server.MaxPayload))
	}
	if cfg.MQTT.Listen != "" {
		opts = append(opts, embedded.WithMQTT(cfg.MQTT.Listen))
		if len(cfg.MQTT.Publish) > 0 {
			opts = append(opts, embedded.WithMQTTPublish(cfg.MQTT.Publish...))
		}
	}
	srv, err := embedded.Start(ctx, opts...)
	if err != nil {
		return nil, err
	}
	s := &Serve{srv: srv, log: log, work: &workers{log: log}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// In-process until the port opens: the workers start unseen.
	s.ncClosed = make(chan struct{})
	s.nc, err = srv.Connect(nats.Name("jetsource-serve"),
		nats.ClosedHandler(func(*nats.Conn) { close(s.ncClosed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("connection error", "subject", sub.Subject, "err", err)
				return
			}
			log.Warn("connection error", "err", err)
		}))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	scfg, kept, err := streamConfigKeeping(pctx, js, cfg.streamConfig())
	if err != nil {
		return nil, err
	}
	st, err := jetstore.Provision(pctx, js, scfg)
	if err != nil {
		return nil, err
	}
	if len(kept) > 0 {
		log.Info("the stream keeps subjects added at run time", "stream", scfg.Name, "subjects", strings.Join(kept, " "),
			"hint", "jetsource stream remove-subject ROOT removes one")
	}
	info := st.CachedInfo()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second+startFlagsTimeout)
	defer wcancel()
	work, err := startWorkers(wctx, s.nc, js, cfg, w, workerParts{commands: true, projections: true, handlers: true}, log)
	if err != nil {
		return nil, err
	}
	s.work = work
	if err := srv.Listen(ctx); err != nil {
		return nil, err
	}
	sync := "always"
	if interval > 0 {
		sync = interval.String()
	}
	limit := "none"
	if info.Config.MaxBytes > 0 {
		limit = formatSize(info.Config.MaxBytes)
	}
	log.Info("jetsource serving", "url", srv.ClientURL(), "data", srv.DataDir(), "fsync", sync,
		"stream", info.Config.Name, "subjects", strings.Join(info.Config.Subjects, " "), "events", info.State.Msgs,
		"max_bytes", limit)
	if a := srv.MQTTAddr(); a != "" {
		log.Info("MQTT subscribers", "mqtt", "mqtt://"+a, "publish", strings.Join(cfg.MQTT.Publish, " "))
	}
	if interval > 0 {
		log.Warn("fsync is lazy: a machine crash can lose acknowledged events", "interval", interval)
	}
	return s, nil
}

// streamConfigKeeping returns cfg with the subjects the existing stream
// captures beyond cfg's (added with "jetsource stream add-subject"), so
// that a restart does not drop them, and those kept subjects.
func streamConfigKeeping(ctx context.Context, js jetstream.JetStream, cfg jetstore.StreamConfig) (jetstore.StreamConfig, []string, error) {
	name := cfg.Name
	if name == "" {
		name = jetstore.DefaultStreamName
	}
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return cfg, nil, nil
	}
	if err != nil {
		return cfg, nil, fmt.Errorf("stream %s: %w", name, err)
	}
	var kept []string
	subjectsOut := slices.Clone(cfg.Subjects)
	for _, have := range st.CachedInfo().Config.Subjects {
		if slices.Contains(cfg.Subjects, have) || jetsource.InternalSubject(have) {
			continue
		}
		next := cfg
		next.Subjects = append(slices.Clone(subjectsOut), have)
		if next.Validate() != nil { // overlaps a configured subject: the configuration wins
			continue
		}
		subjectsOut = next.Subjects
		kept = append(kept, have)
	}
	cfg.Subjects = subjectsOut
	return cfg, kept, nil
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

// MQTTAddr returns the host:port of the MQTT listener ("" without one).
func (s *Serve) MQTTAddr() string { return s.srv.MQTTAddr() }

// Close stops the workers in the reverse order of their start (handlers,
// flag watcher, projections, command workers), drains the connection and
// shuts the server down. It is idempotent.
func (s *Serve) Close() { s.close.Do(s.stop) }

func (s *Serve) stop() {
	s.work.Close()
	if s.nc != nil {
		if err := s.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			s.log.Warn("drain", "err", err)
		}
		// Drain returns at once: let it finish before the server goes.
		timer := time.NewTimer(drainTimeout)
		select {
		case <-s.ncClosed:
		case <-timer.C:
			s.nc.Close()
		}
		timer.Stop()
	}
	s.srv.Shutdown()
}
