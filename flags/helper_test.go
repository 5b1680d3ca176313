package flags_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/flags"
)

// toggleWithin is how soon a toggle must reach a watching Set.
const toggleWithin = time.Second

// env is an embedded server with a flag bucket.
type env struct {
	srv *embedded.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := flags.EnsureBucket(context.Background(), js, jetstream.KeyValueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, nc: nc, js: js, kv: kv}
}

// bucket opens the flag bucket on a connection of its own, as another
// process would.
func (e *env) bucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	_, kv := e.bucketConn(t)
	return kv
}

// bucketConn is bucket with its connection.
func (e *env) bucketConn(t *testing.T) (*nats.Conn, jetstream.KeyValue) {
	t.Helper()
	nc := embeddedtest.Connect(t, e.srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := flags.OpenBucket(context.Background(), js, flags.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	return nc, kv
}

// restart restarts the server on the same address and data.
func (e *env) restart(t *testing.T) {
	t.Helper()
	e.srv = embeddedtest.Restart(t, e.srv)
}

func newSet(t *testing.T, opts ...flags.Option) *flags.Set {
	t.Helper()
	s, err := flags.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// watch runs s.Watch until the test ends and waits until s is ready.
func watch(t *testing.T, s *flags.Set) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			t.Errorf("Watch did not return after cancel\n%s", buf[:runtime.Stack(buf, true)])
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Watch ended before ready: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Set not ready after 5s")
	}
}

// checkFor polls f until it returns nil or d passes, and fails the test
// with f's last error then. It returns how long it took.
func checkFor(t *testing.T, d time.Duration, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// enabledWithin checks that s reports want for name within toggleWithin.
func enabledWithin(t *testing.T, s flags.Enabler, name string, want bool) time.Duration {
	t.Helper()
	return checkFor(t, toggleWithin, func() error {
		if got := s.Enabled(context.Background(), name); got != want {
			return errors.New(name + ": not yet " + flags.ValueOf(want).String())
		}
		return nil
	})
}
