// Package embeddedtest starts embedded NATS servers for tests: a random
// loopback port, a temporary data directory, and shutdown when the test
// ends.
//
//	func TestOrders(t *testing.T) {
//		srv := embeddedtest.Run(t)
//		nc := embeddedtest.Connect(t, srv)
//		// ... use nc with jetstream.New(nc)
//	}
package embeddedtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource/embedded"
)

// Run starts an embedded server with JetStream on a random loopback port,
// storing files in a temporary directory (tb.TempDir), and shuts it down
// when the test ends. Options are applied after those defaults. By default
// writes are synced lazily (every second) because test data need not
// survive a power loss; pass [embedded.WithSyncInterval] or use
// RunDurable to choose.
func Run(tb testing.TB, opts ...embedded.Option) *embedded.Server {
	tb.Helper()
	base := []embedded.Option{
		embedded.WithListen("127.0.0.1:0"),
		embedded.WithDataDir(tb.TempDir()),
		embedded.WithSyncInterval(time.Second),
	}
	return start(tb, append(base, opts...))
}

// RunDurable is [Run] with the production default: every write synced
// before it is acknowledged.
func RunDurable(tb testing.TB, opts ...embedded.Option) *embedded.Server {
	tb.Helper()
	base := []embedded.Option{
		embedded.WithListen("127.0.0.1:0"),
		embedded.WithDataDir(tb.TempDir()),
	}
	return start(tb, append(base, opts...))
}

// startTimeout bounds how long a server may take to start: a start takes
// milliseconds, but a machine loaded with other work may delay it a lot,
// and a test should fail only when a server never starts.
const startTimeout = time.Minute

func start(tb testing.TB, opts []embedded.Option) *embedded.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := embedded.Start(ctx, opts...)
	if err != nil {
		tb.Fatalf("embedded server: %v", err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// Connect connects to s and closes the connection when the test ends.
func Connect(tb testing.TB, s *embedded.Server, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := s.Connect(opts...)
	if err != nil {
		tb.Fatalf("connect to embedded server: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Restart shuts s down and starts a new server on the same address and
// data directory, as a crash-and-restart test needs. The new server is
// shut down when the test ends. Clients configured to reconnect find it on
// their own.
func Restart(tb testing.TB, s *embedded.Server, opts ...embedded.Option) *embedded.Server {
	tb.Helper()
	addr := s.NATSServer().Addr().String()
	dir := s.DataDir()
	s.Shutdown()
	base := []embedded.Option{embedded.WithListen(addr), embedded.WithDataDir(dir)}
	if !s.SyncAlways() {
		base = append(base, embedded.WithSyncInterval(time.Second))
	}
	return start(tb, append(base, opts...))
}
