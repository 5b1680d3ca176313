package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

// restartTimeout bounds each wait of TestServerRestartResumes: the test
// waits on conditions, and only a runner or server that is stuck takes
// this long, even on a loaded machine.
const restartTimeout = 2 * time.Minute

// TestServerRestartResumes restarts the server under a running projection:
// the runner reconnects, resumes from its checkpoint and applies every
// event once.
func TestServerRestartResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the server under a running projection")
	}
	e := newEnv(t)
	ctx := context.Background()
	e.appendN(t, 0, 2000, 10)
	db := openDB(t, t.TempDir())
	p, err := projections.NewSQL(ctx, db, counting("counter"))
	if err != nil {
		t.Fatal(err)
	}
	kdef := kvCounting("kvcount")
	kdef.Memory = false // the bucket must survive the restart
	kvp, err := projections.NewKV(ctx, e.js, kdef)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := projections.NewRunner(e.store, []projections.Projection{p, kvp}, projections.WithBackoff(20*time.Millisecond, 200*time.Millisecond))
	runRunner(t, r)
	waitFor(t, restartTimeout, "catch up", func() bool {
		kv, err := kvp.Checkpoint(ctx)
		return checkpointOf(t, p) == 2000 && err == nil && kv == 2000
	})
	embeddedtest.Restart(t, e.srv)
	// The appends after the restart need a client that reconnected to a
	// server that serves the stream again, with every event from before.
	waitFor(t, restartTimeout, "the stream after the restart", func() bool {
		seq, err := e.store.LastSequence(ctx, subjects.All())
		return err == nil && seq == 2000
	})
	// One event at a time: a loaded server may answer an append only
	// after the store sent it again, and the store recognises the resent
	// event by its id as its own.
	for i := 2000; i < 3000; i++ {
		ev := jetsource.Event{Subject: subjects.MustParse(fmt.Sprintf("users.u%d.added", i%10)), Data: fmt.Appendf(nil, `{"n":%d}`, i)}
		if _, err := e.store.Append(ctx, ev); err != nil {
			t.Fatalf("append %d after the restart: %v", i, err)
		}
	}
	waitFor(t, restartTimeout, "resume", func() bool {
		sql, err1 := p.Checkpoint(ctx)
		kv, err2 := kvp.Checkpoint(ctx)
		return err1 == nil && err2 == nil && sql == 3000 && kv == 3000
	})
	if _, applied, total := counts(t, db); applied != 3000 || total != 2999*3000/2 {
		t.Fatalf("applied %d, total %d", applied, total)
	}
	kv, _ := kvp.KeyValue(ctx)
	if got := kvInt(t, kv, "all"); got != 3000 {
		t.Fatalf("kv all = %d", got)
	}
}
