package embedded

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
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
	mqttHost     string
	mqttPort     int // 0: no MQTT listener
	mqttPublish  []string
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

// WithMQTT opens an MQTT listener (MQTT 3.1.1, nats-server's built-in
// support) on hostport; port 0 picks a free port ([Server.MQTTAddr] tells
// which). MQTT clients then subscribe to events: the MQTT topic
// users/A/added is the subject users.A.added, the wildcards + and # are
// * and >. An MQTT client receives the event's data as the payload (MQTT
// 3.1.1 has no headers: the ce-* attributes are not carried). QoS 0 and 1
// subscriptions are served; a QoS 1 subscription with a persistent
// session keeps its messages in JetStream streams the server creates
// ($MQTT_msgs, $MQTT_sess, ...).
//
// MQTT clients are read-only: they connect as their own user, which may
// subscribe to any subject but publish to none (their PUBLISH packets
// are refused), so nothing written over MQTT lands in the event stream
// unchecked; [WithMQTTPublish] allows chosen subjects. NATS clients keep
// connecting without credentials as before (as the no-auth user of a
// user list the server then has, with every permission).
func WithMQTT(hostport string) Option {
	return func(o *options) error {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return fmt.Errorf("%w: MQTT address %q: %v", ErrInvalidOption, hostport, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("%w: MQTT address %q: bad port", ErrInvalidOption, hostport)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		o.mqttHost, o.mqttPort = host, p
		if p == 0 {
			o.mqttPort = server.RANDOM_PORT
		}
		return nil
	}
}

// WithMQTTPublish lets MQTT clients publish to subjects matching the
// given filters (default: none). A subject the event stream captures
// becomes an event with no CloudEvents attributes but those derived from
// the subject: allow only what is meant to be written that way.
func WithMQTTPublish(filters ...string) Option {
	return func(o *options) error {
		for _, f := range filters {
			if f == "" || strings.ContainsAny(f, " \t\r\n") {
				return fmt.Errorf("%w: MQTT publish filter %q", ErrInvalidOption, f)
			}
		}
		o.mqttPublish = append(o.mqttPublish, filters...)
		return nil
	}
}
