package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/projections/projectiontest"
)

// buildKillWorker builds projections/projectiontest/killworker, without
// the race detector even when the tests run with it: the worker is a
// separate process, and instrumented SQLite would make it dozens of times
// slower.
func buildKillWorker(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the worker process")
	}
	bin := filepath.Join(t.TempDir(), "killworker")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/jetsource/jetsource/projections/projectiontest/killworker").CombinedOutput()
	if err != nil {
		t.Fatalf("build the worker: %v\n%s", err, out)
	}
	return bin
}

// killProgressTimeout bounds how long TestProjectionSurvivesSIGKILL
// waits for a worker to commit progress: only a stuck worker takes that
// long, even on a loaded machine.
const killProgressTimeout = 3 * time.Minute

// TestProjectionSurvivesSIGKILL kills a projection worker process with
// SIGKILL at random moments while 100,000 events are appended, each time
// once it committed progress, restarting it each time, and checks that the
// read model equals a clean rebuild, and that every event was applied
// exactly once (each entity's count and sum).
func TestProjectionSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	const events, entities, kills = 100_000, 100, 12
	worker := buildKillWorker(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "read.db")
	ctx := context.Background()

	// The server runs in a worker process too (fsync every second).
	server := exec.Command(worker, "serve", filepath.Join(dir, "server"))
	server.Stderr = os.Stderr
	stdout, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Signal(syscall.SIGTERM); server.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	url := strings.TrimSpace(line)

	// Append in transactions of 1000, paced so that the kills land while
	// events keep coming.
	appender := exec.Command(worker, "append", url, strconv.Itoa(events), strconv.Itoa(entities))
	appender.Stderr = os.Stderr
	if err := appender.Start(); err != nil {
		t.Fatal(err)
	}
	appended := make(chan error, 1)
	go func() { appended <- appender.Wait() }()

	start := func(mode, db string) *exec.Cmd {
		cmd := exec.Command(worker, mode, url, "EVENTS", db)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A test that fails leaves no worker behind.
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	// The checkpoint as the worker last committed it, read through one
	// connection pool opened once the worker created the database.
	var reader *sql.DB
	t.Cleanup(func() {
		if reader != nil {
			reader.Close()
		}
	})
	checkpoint := func() uint64 {
		if reader == nil {
			if _, err := os.Stat(dbPath); err != nil {
				return 0
			}
			db, err := projections.OpenSQLite(dbPath)
			if err != nil {
				return 0
			}
			reader = db
		}
		var cp uint64
		reader.QueryRow(`SELECT sequence FROM ` + projections.CheckpointTable + ` WHERE name = 'counter'`).Scan(&cp)
		return cp
	}
	var appendErr error
	appending := true
	appenderDone := func() bool {
		if appending {
			select {
			case appendErr = <-appended:
				appending = false
				if appendErr != nil {
					t.Fatalf("append: %v", appendErr)
				}
			default:
			}
		}
		return !appending
	}
	// awaitProgress polls the checkpoint until the worker committed past
	// after (or, once every event is appended, has applied them all). The
	// kills wait on this, not on a timer: a worker killed
	// before its first commit, as on a loaded machine a worker still
	// starting up is, would prove nothing. It fails the test when the
	// worker shows no progress for killProgressTimeout.
	awaitProgress := func(after uint64) {
		deadline := time.Now().Add(killProgressTimeout)
		for {
			cp := checkpoint()
			if cp > after || (appenderDone() && cp >= events) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the worker made no progress past checkpoint %d in %v", after, killProgressTimeout)
			}
			time.Sleep(time.Duration(1+rand.IntN(10)) * time.Millisecond)
		}
	}
	// Kill workers until kills of them have landed while events were left
	// to apply (at most four times as many tries: the appender may finish
	// first on a fast machine). Each worker is killed once it committed
	// past the checkpoint of the kill before, after up to three more
	// polls, so that the kills land anywhere in its cycle of fetching,
	// applying and committing a batch.
	var at []uint64
	var during int
	var last uint64
	for try := 0; during < kills && try < 4*kills; try++ {
		cmd := start("run", dbPath)
		awaitProgress(last)
		for range rand.IntN(4) {
			time.Sleep(time.Duration(1+rand.IntN(10)) * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		cp := checkpoint()
		at = append(at, cp)
		if cp < last {
			t.Fatalf("checkpoint went back from %d to %d across a kill", last, cp)
		}
		last = cp
		if cp < events {
			during++
		}
		if appenderDone() && cp >= events {
			break
		}
	}
	for !appenderDone() {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("checkpoints at the %d kills: %v", len(at), at)
	if during < 10 {
		t.Fatalf("only %d of %d kills hit a worker with events left to apply: %v", during, len(at), at)
	}
	t0 := time.Now()
	// The last worker runs to the end and stops gracefully.
	cmd, ready := startReady(t, worker, url, dbPath)
	deadline := time.Now().Add(killProgressTimeout)
	for cp := checkpoint(); cp < events; cp = checkpoint() {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("worker stuck at %d", cp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	<-ready // signals are handled
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker did not stop gracefully: %v", err)
	}
	t.Logf("the last worker caught up in %v", time.Since(t0))
	// A clean rebuild into a fresh database, by the same worker.
	freshPath := filepath.Join(dir, "fresh.db")
	if err := start("rebuild", freshPath).Wait(); err != nil {
		t.Fatalf("rebuild: %v", err)
	}

	read := func(path string) map[string][2]int64 {
		db, err := projections.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		c, err := projectiontest.Counts(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	got, want := read(dbPath), read(freshPath)
	if len(got) != entities || len(want) != entities {
		t.Fatalf("%d entities after the kills, %d in the rebuild, want %d", len(got), len(want), entities)
	}
	for ent, w := range want {
		// Entity u<k> has the events k, k+100, ...: 1000 of them.
		var k int64
		fmt.Sscanf(ent, "users.u%d", &k)
		n := int64(events / entities)
		sum := n*k + int64(entities)*n*(n-1)/2
		if w != [2]int64{n, sum} {
			t.Fatalf("rebuild: %s = %v, want [%d %d] (applied, sum)", ent, w, n, sum)
		}
		if got[ent] != w {
			t.Fatalf("%s = %v after the kills; the rebuild has %v (applied, sum)", ent, got[ent], w)
		}
	}
}

// startReady starts a projection worker and returns a channel closed once
// the worker handles signals; its standard error goes to the test's.
func startReady(t *testing.T, worker, url, db string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(worker, "run", url, "EVENTS", db)
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errPipe)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "killworker: ready") {
				close(ready)
				once = true
				continue
			}
			fmt.Fprintln(os.Stderr, sc.Text())
		}
		if !once {
			close(ready)
		}
	}()
	return cmd, ready
}
