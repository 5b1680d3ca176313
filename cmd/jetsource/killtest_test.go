package main

import (
	"bufio"
	"context"
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

// TestProjectionSurvivesSIGKILL kills a projection worker process with
// SIGKILL at random moments while 100,000 events are appended, restarting it
// each time, and checks that the read model equals a clean rebuild, and
// that every event was applied exactly once (each entity's count and sum).
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
		return cmd
	}
	checkpoint := func() uint64 {
		db, err := projections.OpenSQLite(dbPath)
		if err != nil {
			return 0
		}
		defer db.Close()
		var cp uint64
		db.QueryRow(`SELECT sequence FROM ` + projections.CheckpointTable + ` WHERE name = 'counter'`).Scan(&cp)
		return cp
	}
	// Kill workers until kills of them have landed while events were left
	// to apply (at most four times as many tries: the appender may finish
	// first on a fast machine).
	var at []uint64
	var during int
	var appendErr error
	appending := true
	for try := 0; during < kills && try < 4*kills; try++ {
		cmd := start("run", dbPath)
		time.Sleep(time.Duration(100+rand.IntN(250)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		cp := checkpoint()
		at = append(at, cp)
		if cp < events {
			during++
		}
		if appending {
			select {
			case appendErr = <-appended:
				appending = false
			default:
			}
		}
		if !appending && cp >= events {
			break
		}
	}
	if appending {
		appendErr = <-appended
	}
	if appendErr != nil {
		t.Fatal(appendErr)
	}
	t.Logf("checkpoints at the %d kills: %v", len(at), at)
	if during < 10 || at[len(at)-1] <= at[0] {
		t.Fatalf("only %d of %d kills hit a worker with events left to apply, or no progress: %v", during, len(at), at)
	}
	t0 := time.Now()
	// The last worker runs to the end and stops gracefully.
	cmd, ready := startReady(t, worker, url, dbPath)
	deadline := time.Now().Add(60 * time.Second)
	for checkpoint() < events {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("worker stuck at %d", checkpoint())
		}
		time.Sleep(50 * time.Millisecond)
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
