package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/projections"
)

// TestServerRestartResumes restarts the server under a running projection:
// the runner reconnects, resumes from its checkpoint and applies every
// event once.
func TestServerRestartResumes(t *testing.T) {
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
	waitFor(t, 20*time.Second, "catch up", func() bool { return checkpointOf(t, p) == 2000 })
	embeddedtest.Restart(t, e.srv)
	waitFor(t, 20*time.Second, "reconnect", e.nc.IsConnected)
	e.appendN(t, 2000, 1000, 10)
	waitFor(t, 30*time.Second, "resume", func() bool {
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
