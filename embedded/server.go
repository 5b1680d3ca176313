package embedded

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is a NATS server with JetStream running in this process.
type Server struct {
	ns       *server.Server
	dataDir  string
	sync     time.Duration
	stopOnce sync.Once

	// listenMu orders Listen; listening is set once the port is open.
	listenMu  sync.Mutex
	listening atomic.Bool
	host      string
	port      int
	mqttAddr  string
}

// Start starts a server and waits until it accepts connections (with
// [WithDeferredListen]: until it accepts in-process connections; then
// [Server.Listen] opens the client port).
//
// It returns an error matching [ErrInvalidOption] for a bad option and
// [ErrStart] when the server cannot start (port in use, data directory not
// writable, timeout).
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return nil, fmt.Errorf("%w: data directory %q: %v", ErrStart, o.dataDir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: data directory: %v", ErrStart, err)
	}
	sopts := &server.Options{
		ServerName:   o.name,
		Host:         o.host,
		Port:         o.port,
		JetStream:    true,
		StoreDir:     dir,
		SyncAlways:   o.syncInterval == 0,
		SyncInterval: o.syncInterval,
		MaxPayload:   o.maxPayload,
		NoSigs:       true,
		NoLog:        o.logger == nil,
		DontListen:   o.deferListen,
	}
	mqttAddr, err := configureMQTT(sopts, &o)
	if err != nil {
		return nil, err
	}
	for _, f := range o.configure {
		if err := f(sopts); err != nil {
			return nil, fmt.Errorf("%w: server options: %v", ErrInvalidOption, err)
		}
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	if o.logger != nil {
		ns.SetLoggerV2(&slogAdapter{l: o.logger}, false, false, false)
	}
	go ns.Start()
	deadline := o.startTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < deadline {
		deadline = time.Until(d)
	}
	if !ns.ReadyForConnections(deadline) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w: not ready for connections on %s:%d within %v", ErrStart, o.host, o.port, deadline)
	}
	s := &Server{ns: ns, dataDir: dir, sync: o.syncInterval, host: o.host, port: o.port, mqttAddr: mqttAddr}
	s.listening.Store(!o.deferListen)
	return s, nil
}

// Listen opens the client port of a server started with
// [WithDeferredListen] and returns once it accepts connections; on a
// server that listens already it does nothing. It returns an error
// matching [ErrStart] when the port cannot be opened (in use, say): the
// server keeps running without it.
func (s *Server) Listen(ctx context.Context) error {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.listening.Load() {
		return nil
	}
	ready := make(chan struct{})
	go s.ns.AcceptLoop(ready)
	select {
	case <-ready:
	case <-ctx.Done():
		return fmt.Errorf("%w: listen on %s:%d: %w", ErrStart, s.host, s.port, ctx.Err())
	}
	if s.ns.Addr() == nil { // AcceptLoop gave up: it logged why
		return fmt.Errorf("%w: cannot listen on %s:%d (is the port in use?)", ErrStart, s.host, s.port)
	}
	s.listening.Store(true)
	return nil
}

// Listening reports whether the client port is open.
func (s *Server) Listening() bool { return s.listening.Load() }

// ClientURL returns the URL clients connect to, such as
// nats://127.0.0.1:4222 (with [WithDeferredListen], known once
// [Server.Listen] returned).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// MQTTAddr returns the host:port of the MQTT listener ([WithMQTT]), or ""
// when there is none.
func (s *Server) MQTTAddr() string { return s.mqttAddr }

// DataDir returns the absolute path of the data directory.
func (s *Server) DataDir() string { return s.dataDir }

// SyncAlways reports whether every write is synced before it is
// acknowledged.
func (s *Server) SyncAlways() bool { return s.sync == 0 }

// NATSServer returns the underlying nats-server, for what this package does
// not cover.
func (s *Server) NATSServer() *server.Server { return s.ns }

// Connect opens a client connection to the server: over loopback when
// the client port is open, in-process before [Server.Listen] (such a
// connection does not reconnect).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	if !s.listening.Load() {
		return nats.Connect("", append(opts, nats.InProcessServer(s.ns))...)
	}
	return nats.Connect(s.ClientURL(), opts...)
}

// Shutdown stops the server, closing client connections, and waits until
// it has stopped. JetStream state is flushed to the data directory. It is
// safe to call more than once.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// slogAdapter sends nats-server log lines to a slog.Logger.
type slogAdapter struct{ l *slog.Logger }

// Noticef logs at debug level: the server's notices (its start-up banner
// among them) are detail for whoever runs jetsource.
func (a *slogAdapter) Noticef(format string, v ...any) {
	a.l.Debug(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (a *slogAdapter) Warnf(format string, v ...any) {
	a.l.Warn(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (a *slogAdapter) Fatalf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...), "component", "nats-server", "fatal", true)
}
func (a *slogAdapter) Errorf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (a *slogAdapter) Debugf(format string, v ...any) {
	a.l.Debug(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (a *slogAdapter) Tracef(format string, v ...any) {
	a.l.Debug(fmt.Sprintf(format, v...), "component", "nats-server", "trace", true)
}

// Users of a server with an MQTT listener: NATS clients without
// credentials are natsUser (every permission), MQTT clients without
// credentials are mqttUser (subscribe only).
const (
	natsUser = "jetsource"
	mqttUser = "mqtt"
)

// configureMQTT sets the MQTT listener and its users, and returns its
// address ("" without one).
func configureMQTT(so *server.Options, o *options) (string, error) {
	if o.mqttPort == 0 {
		return "", nil
	}
	port := o.mqttPort
	if port == server.RANDOM_PORT {
		// Reserve a free port now so that its address is known.
		l, err := net.Listen("tcp", net.JoinHostPort(o.mqttHost, "0"))
		if err != nil {
			return "", fmt.Errorf("%w: MQTT listener: %v", ErrStart, err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	so.MQTT.Host, so.MQTT.Port = o.mqttHost, port
	// Users with random passwords: nobody can log in as them, clients
	// without credentials become them.
	secret := func() string {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	pub := &server.SubjectPermission{Deny: []string{">"}}
	if len(o.mqttPublish) > 0 {
		pub = &server.SubjectPermission{Allow: append([]string(nil), o.mqttPublish...)}
	}
	so.Users = append(so.Users,
		&server.User{Username: natsUser, Password: secret()},
		&server.User{Username: mqttUser, Password: secret(), Permissions: &server.Permissions{
			Publish:   pub,
			Subscribe: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"_INBOX.>", "$JS.>", "$SYS.>"}},
		}},
	)
	so.NoAuthUser, so.MQTT.NoAuthUser = natsUser, mqttUser
	return net.JoinHostPort(o.mqttHost, strconv.Itoa(port)), nil
}
