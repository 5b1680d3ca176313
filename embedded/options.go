package embedded

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Option configures a [Server]. Options are applied in order.
type Option func(*options) error

type options struct {
	host         string
	port         int
	dataDir      string
	name         string
	syncInterval time.Duration // 0: sync always
	maxPayload   int32
	logger       *slog.Logger
	startTimeout time.Duration
	deferListen  bool
	configure    []func(*server.Options) error
}

func defaultOptions() options {
	return options{host: "127.0.0.1", port: 4222, dataDir: "jetsource-data", name: "jetsource", startTimeout: 10 * time.Second}
}

// WithListen sets the client address as host:port. Port 0 picks a free
// port. The default is 127.0.0.1:4222.
func WithListen(hostport string) Option {
	return func(o *options) error {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return fmt.Errorf("%w: listen address %q: %v", ErrInvalidOption, hostport, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("%w: listen address %q: bad port", ErrInvalidOption, hostport)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		o.host = host
		o.port = p
		if p == 0 {
			o.port = server.RANDOM_PORT
		}
		return nil
	}
}

// WithDataDir sets the directory that holds the JetStream files (default
// ./jetsource-data). It is created if missing.
func WithDataDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return fmt.Errorf("%w: empty data directory", ErrInvalidOption)
		}
		o.dataDir = dir
		return nil
	}
}

// WithName sets the server name (default "jetsource").
func WithName(name string) Option {
	return func(o *options) error {
		if name == "" {
			return fmt.Errorf("%w: empty server name", ErrInvalidOption)
		}
		o.name = name
		return nil
	}
}

// WithSyncInterval trades durability for speed: writes are synced to disk
// every d instead of before each acknowledgement, so a crash of the machine
// can lose up to d of acknowledged writes. Without this option every write
// is synced (the default).
func WithSyncInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: sync interval %v must be positive", ErrInvalidOption, d)
		}
		o.syncInterval = d
		return nil
	}
}

// WithMaxPayload sets the largest message the server accepts (default
// 1 MiB).
func WithMaxPayload(n int) Option {
	return func(o *options) error {
		if n <= 0 || n > 64<<20 {
			return fmt.Errorf("%w: max payload %d must be between 1 and 64 MiB", ErrInvalidOption, n)
		}
		o.maxPayload = int32(n)
		return nil
	}
}

// WithLogger sends the server's log to l (default: discarded).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.logger = l
		return nil
	}
}

// WithStartTimeout sets how long [Start] waits for the server to accept
// connections (default 10s).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: start timeout %v must be positive", ErrInvalidOption, d)
		}
		o.startTimeout = d
		return nil
	}
}

// WithDeferredListen starts the server without its client port: it
// runs JetStream and takes in-process connections ([Server.Connect]), but
// no network client can connect until [Server.Listen] opens the port. A
// program uses it to provision streams and start the workers that serve
// requests before any client can send one, so that no client is answered
// by a half-started service.
func WithDeferredListen() Option {
	return func(o *options) error {
		o.deferListen = true
		return nil
	}
}

// WithServerOptions lets f adjust the nats-server options after the others
// are applied: accounts, users and permissions, TLS, clustering. Use it
// with care: it can undo the durability defaults.
func WithServerOptions(f func(*server.Options) error) Option {
	return func(o *options) error {
		if f == nil {
			return fmt.Errorf("%w: nil server options function", ErrInvalidOption)
		}
		o.configure = append(o.configure, f)
		return nil
	}
}
