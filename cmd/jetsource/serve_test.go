package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource/handlers"
)

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeAnswersNoCommandUnknownWhileStarting starts clients that
// connect as soon as the port accepts connections and send a command at
// once, then starts serve: every command must be served (no "unknown
// command" from a server whose command workers are not subscribed yet).
func TestServeAnswersNoCommandUnknownWhileStarting(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Commands.Sets = []string{"example"}
	cfg.Server.Listen, cfg.Server.Data, cfg.Server.Sync = freeAddr(t), t.TempDir(), "1s"
	url := "nats://" + cfg.Server.Listen

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const clients = 4
	type result struct {
		res handlers.Result
		err error
	}
	results := make(chan result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			retry := time.NewTicker(time.Millisecond)
			defer retry.Stop()
			for {
				nc, err := nats.Connect(url, nats.MaxReconnects(0), nats.Timeout(time.Second))
				if err == nil {
					defer nc.Close()
					c, err := handlers.NewClient(nc, handlers.WithRequestTimeout(10*time.Second))
					if err != nil {
						results <- result{err: err}
						return
					}
					payload := fmt.Sprintf(`{"company":"acme","id":"u%d","name":"U","username":"u%d"}`, i, i)
					res, err := c.Send(ctx, "InsertUser", []byte(payload))
					results <- result{res, err}
					return
				}
				select {
				case <-retry.C:
				case <-ctx.Done():
					results <- result{err: ctx.Err()}
					return
				}
			}
		})
	}
	s, err := StartServe(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	wg.Wait()
	close(results)
	for r := range results {
		if errors.Is(r.err, handlers.ErrUnknownCommand) {
			t.Fatalf("a command sent while serve started was answered unknown: %v", r.err)
		}
		if r.err != nil || r.res.Status != handlers.StatusAccepted {
			t.Fatalf("command: %+v, %v", r.res, r.err)
		}
	}
}

// TestServeLogsServingLast checks that the ready line comes after every
// worker started, with the URL clients connect to.
func TestServeLogsServingLast(t *testing.T) {
	b := startBackground(t, "jetsource serving", "serve", "--config", exampleConfig,
		"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--sync", "1s")
	log := b.log.String()
	if code := b.stop(t); code != 0 {
		t.Fatalf("serve exited %d: %s", code, log)
	}
	for _, step := range []string{"serving commands", "running projections", "watching flags", "running handlers"} {
		if !containsBefore(log, step, "jetsource serving") {
			t.Fatalf("%q is not logged before the ready line:\n%s", step, log)
		}
	}
}

// containsBefore reports whether a occurs in s before b does.
func containsBefore(s, a, b string) bool {
	i, j := strings.Index(s, a), strings.Index(s, b)
	return i >= 0 && j > i
}
