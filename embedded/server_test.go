package embedded_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
)

// TestDeferredListen checks that a server started with WithDeferredListen
// takes in-process connections but no network client until Listen.
func TestDeferredListen(t *testing.T) {
	// A free port, so that a client can try it before the server listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	s := embeddedtest.Run(t, embedded.WithListen(addr), embedded.WithDeferredListen())
	if s.Listening() {
		t.Fatal("Listening before Listen")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("a client connected to %s before Listen", addr)
	}
	nc := embeddedtest.Connect(t, s) // in-process
	if _, err := nc.Request("nobody", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("in-process request: %v, want no responders", err)
	}
	sub, err := nc.Subscribe("ping", func(m *nats.Msg) { _ = m.Respond([]byte("pong")) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	if !s.Listening() || s.ClientURL() != "nats://"+addr {
		t.Fatalf("listening %v at %s, want %s", s.Listening(), s.ClientURL(), addr)
	}
	remote, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	if m, err := remote.Request("ping", nil, 5*time.Second); err != nil || string(m.Data) != "pong" {
		t.Fatalf("request over the network: %v %v", m, err)
	}
}

// TestDeferredListenRandomPort checks that port 0 is resolved by Listen.
func TestDeferredListenRandomPort(t *testing.T) {
	s := embeddedtest.Run(t, embedded.WithDeferredListen())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect to %s: %v", s.ClientURL(), err)
	}
	nc.Close()
}

// TestDeferredListenPortInUse checks that Listen reports a port it
// cannot open instead of hanging or exiting.
func TestDeferredListenPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := embeddedtest.Run(t, embedded.WithListen(l.Addr().String()), embedded.WithDeferredListen())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Listen(ctx); !errors.Is(err, embedded.ErrStart) {
		t.Fatalf("Listen on a port in use: %v, want ErrStart", err)
	}
	if s.Listening() {
		t.Fatal("Listening after a failed Listen")
	}
}
