// Command killworker runs the counting projection of package projectiontest
// against a NATS server, for tests that kill it with SIGKILL:
//
//	killworker serve DIR                # embedded server (fsync every 1s) with stream EVENTS on users.>; prints its URL
//	killworker append URL N ENTITIES    # append N events users.u<i%ENTITIES>.added {"n":i} in transactions of 1000
//	killworker run URL STREAM DB        # run the projection until SIGTERM (or killed)
//	killworker rebuild URL STREAM DB    # rebuild DB from the whole stream
//
// Every part runs without the race detector even when the tests do, so
// that the test measures the projection, not instrumented servers.
//
// The projection is "counter" over users.>.
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/projections/projectiontest"
	"github.com/jetsource/jetsource/subjects"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	// Tell a test that signals are handled from now on.
	fmt.Fprintln(os.Stderr, "killworker: ready")
	var err error
	switch a := os.Args[1:]; {
	case len(a) == 2 && a[0] == "serve":
		err = serve(ctx, a[1])
	case len(a) == 4 && a[0] == "append":
		err = appendEvents(ctx, a[1], a[2], a[3])
	case len(a) == 4 && (a[0] == "run" || a[0] == "rebuild"):
		err = work(ctx, a[0], a[1], a[2], a[3])
	default:
		fmt.Fprintln(os.Stderr, "usage: killworker serve DIR | append URL N ENTITIES | run|rebuild URL STREAM DB")
		os.Exit(2)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "killworker:", err)
		os.Exit(1)
	}
}

func work(ctx context.Context, mode, url, stream, dbPath string) error {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	st, err := jetstore.New(ctx, js, stream, jetstore.WithTimeout(30*time.Second))
	if err != nil {
		return err
	}
	db, err := projections.OpenSQLite(dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := projections.NewSQL(ctx, db, projectiontest.Counting("counter", "users.>"))
	if err != nil {
		return err
	}
	if mode == "rebuild" {
		_, err := projections.Rebuild(ctx, st, p)
		return err
	}
	// A random batch size moves the transaction boundaries between runs.
	r, err := projections.NewRunner(st, []projections.Projection{p}, projections.WithBatchSize(100+rand.IntN(900)))
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

func serve(ctx context.Context, dir string) error {
	srv, err := embedded.Start(ctx, embedded.WithListen("127.0.0.1:0"), embedded.WithDataDir(dir), embedded.WithSyncInterval(time.Second))
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		return err
	}
	js, _ := jetstream.New(nc)
	_, err = jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}})
	nc.Close()
	if err != nil {
		return err
	}
	fmt.Println(srv.ClientURL())
	<-ctx.Done()
	return nil
}

func appendEvents(ctx context.Context, url, count, ents string) error {
	n, err1 := strconv.Atoi(count)
	entities, err2 := strconv.Atoi(ents)
	if err := errors.Join(err1, err2); err != nil || n <= 0 || entities <= 0 {
		return fmt.Errorf("bad N or ENTITIES: %v", err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := jetstore.New(ctx, js, "EVENTS", jetstore.WithTimeout(30*time.Second))
	if err != nil {
		return err
	}
	batch := make([]jetsource.Event, 0, jetsource.MaxBatch)
	for i := range n {
		batch = append(batch, jetsource.Event{Subject: subjects.MustParse(fmt.Sprintf("users.u%d.added", i%entities)), Data: fmt.Appendf(nil, `{"n":%d}`, i)})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := st.AppendBatch(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
			// Paced, so that a test's kills land while events keep coming.
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}
