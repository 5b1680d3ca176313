package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/handlers/example"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

// tally is a model that survives JSON: the events folded and the last one.
type tally struct {
	N    int    `json:"n"`
	Last uint64 `json:"last"`
}

// tallying returns an evolve that counts its calls.
func tallying(calls *atomic.Int64) func(tally, jetsource.Event) tally {
	return func(m tally, e jetsource.Event) tally {
		calls.Add(1)
		m.N++
		m.Last = e.Sequence
		return m
	}
}

func kvSnapshots(t *testing.T, e *env) *state.KVSnapshots {
	t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := state.NewKVSnapshots(context.Background(), js, "decisions")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// appendN stores n events on users.<id>.touched.
func appendN(t *testing.T, e *env, id string, n int) {
	t.Helper()
	for range n {
		if _, err := e.store.Append(context.Background(), jetsource.Event{Subject: subjects.MustParse("users." + id + ".touched"), Data: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSnapshotLoaderReadsOnlyTheTail(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	snaps := kvSnapshots(t, e)
	fs := []subjects.Filter{subjects.MustParseFilter("users.u1.>")}
	appendN(t, e, "u1", 30)
	appendN(t, e, "other", 5) // not in the boundary

	l, err := handlers.Snapshots[tally](snaps, handlers.WithIdempotencyHorizon(0))
	must(t, err)
	var calls atomic.Int64
	load := func(l handlers.Loader[tally]) (tally, uint64, int64) {
		t.Helper()
		calls.Store(0)
		m, pos, err := l.Load(ctx, e.store, fs, tally{}, tallying(&calls))
		must(t, err)
		return m, pos, calls.Load()
	}
	want, wantPos, _ := load(handlers.Replay[tally]())

	t.Run("FirstLoadFoldsAllAndSnapshots", func(t *testing.T) {
		m, pos, n := load(l)
		if m != want || pos != wantPos || n != 30 {
			t.Fatalf("got %+v at %d folding %d, want %+v at %d folding 30", m, pos, n, want, wantPos)
		}
	})
	t.Run("SnapshotReused", func(t *testing.T) {
		m, pos, n := load(l)
		if m != want || pos != wantPos || n != 0 {
			t.Fatalf("got %+v at %d folding %d, want %+v at %d folding 0", m, pos, n, want, wantPos)
		}
	})
	t.Run("TailAfterSnapshot", func(t *testing.T) {
		appendN(t, e, "u1", 3)
		appendN(t, e, "other", 2)
		want, wantPos, _ := load(handlers.Replay[tally]())
		m, pos, n := load(l)
		if m != want || pos != wantPos || n != 3 {
			t.Fatalf("got %+v at %d folding %d, want %+v at %d folding 3", m, pos, n, want, wantPos)
		}
		if want.N != 33 {
			t.Fatalf("replay folded %d events, want 33", want.N)
		}
	})
	t.Run("VersionChangeIgnoresOldSnapshots", func(t *testing.T) {
		l2, err := handlers.Snapshots[tally](snaps, handlers.WithModelVersion("tally/2"), handlers.WithIdempotencyHorizon(0))
		must(t, err)
		if l2.Key(fs) == l.Key(fs) {
			t.Fatal("versions share a key")
		}
		if m, _, n := load(l2); n != 33 || m.N != 33 {
			t.Fatalf("new version folded %d events (model %+v), want all 33", n, m)
		}
		if _, _, n := load(l2); n != 0 {
			t.Fatalf("second load of the new version folded %d events, want 0", n)
		}
	})
	t.Run("FilterOrderSharesKey", func(t *testing.T) {
		a := []subjects.Filter{subjects.MustParseFilter("users.a.>"), subjects.MustParseFilter("users.b.>")}
		b := []subjects.Filter{a[1], a[0]}
		if l.Key(a) != l.Key(b) {
			t.Fatal("the same filters in another order have another key")
		}
		if l.Key(a) == l.Key(a[:1]) {
			t.Fatal("different filters share a key")
		}
	})
}

func TestSnapshotLoaderFallsBack(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	appendN(t, e, "u1", 4)
	fs := []subjects.Filter{subjects.MustParseFilter("users.u1.>")}

	t.Run("UnreadableSnapshotFoldsAll", func(t *testing.T) {
		mem := state.NewMemorySnapshots()
		l, err := handlers.Snapshots[tally](mem)
		must(t, err)
		must(t, mem.Put(ctx, l.Key(fs), state.Snapshot{Version: l.Version(), Sequence: 2, State: json.RawMessage(`"not a tally"`)}))
		var calls atomic.Int64
		m, pos, err := l.Load(ctx, e.store, fs, tally{}, tallying(&calls))
		must(t, err)
		if m.N != 4 || pos != 4 || calls.Load() != 4 {
			t.Fatalf("got %+v at %d folding %d, want 4 events at 4", m, pos, calls.Load())
		}
	})
	t.Run("OlderSnapshotOnlyMeansALongerTail", func(t *testing.T) {
		mem := state.NewMemorySnapshots()
		l, err := handlers.Snapshots[tally](mem)
		must(t, err)
		b, _ := json.Marshal(tally{N: 1, Last: 1})
		must(t, mem.Put(ctx, l.Key(fs), state.Snapshot{Version: l.Version(), Sequence: 1, State: b}))
		var calls atomic.Int64
		m, pos, err := l.Load(ctx, e.store, fs, tally{}, tallying(&calls))
		must(t, err)
		if m.N != 4 || m.Last != 4 || pos != 4 || calls.Load() != 3 {
			t.Fatalf("got %+v at %d folding %d, want 4 events at 4 folding 3", m, pos, calls.Load())
		}
	})
	t.Run("ModelThatLosesStateIsNotSnapshotted", func(t *testing.T) {
		mem := state.NewMemorySnapshots()
		type hidden struct{ n int }
		l, err := handlers.Snapshots[hidden](mem)
		must(t, err)
		for range 2 {
			m, pos, err := l.Load(ctx, e.store, fs, hidden{}, func(m hidden, _ jetsource.Event) hidden { m.n++; return m })
			must(t, err)
			if m.n != 4 || pos != 4 {
				t.Fatalf("got %+v at %d, want 4 at 4", m, pos)
			}
		}
		if mem.Puts() != 0 {
			t.Fatalf("%d snapshots written of a model with unexported fields", mem.Puts())
		}
	})
	t.Run("NoFiltersReadsNothing", func(t *testing.T) {
		l, err := handlers.Snapshots[tally](state.NewMemorySnapshots())
		must(t, err)
		m, pos, err := l.Load(ctx, e.store, nil, tally{N: 7}, tallying(new(atomic.Int64)))
		if err != nil || m.N != 7 || pos != 0 {
			t.Fatalf("got %+v at %d (%v), want the initial model at 0", m, pos, err)
		}
	})
}

func TestSnapshotOptions(t *testing.T) {
	mem := state.NewMemorySnapshots()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"ErrNilStore", func() error { _, err := handlers.Snapshots[tally](nil); return err }()},
		{"ErrEveryZero", func() error { _, err := handlers.Snapshots[tally](mem, handlers.WithSnapshotEvery(0)); return err }()},
		{"ErrEmptyVersion", func() error { _, err := handlers.Snapshots[tally](mem, handlers.WithModelVersion(" ")); return err }()},
		{"ErrExampleNilStore", example.Register(handlers.NewRegistry(), example.WithSnapshots(nil))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, handlers.ErrInvalidOption) {
				t.Fatalf("got %v, want ErrInvalidOption", tc.err)
			}
		})
	}
	l, err := handlers.Snapshots[tally](mem)
	must(t, err)
	if l.Version() != "handlers_test.tally" {
		t.Fatalf("default version %q", l.Version())
	}
}

// TestSnapshotsDecideAsReplay runs one script of the example commands with
// the replay loader and with snapshots written after every event: the
// results and the stored events are the same.
func TestSnapshotsDecideAsReplay(t *testing.T) {
	type step struct {
		name    string
		payload any
		want    handlers.Status
	}
	ins := func(id, username string) example.InsertUser {
		return example.InsertUser{Company: "c", ID: id, Name: id, Username: username}
	}
	mem := func(user string) example.Membership { return example.Membership{Company: "c", Group: "g", User: user} }
	script := []step{
		{"InsertUser", ins("a", "ann"), handlers.StatusAccepted},
		{"InsertUser", ins("a", "ann"), handlers.StatusRejected},
		{"InsertUser", ins("b", "ann"), handlers.StatusRejected},
		{"SetAPIKey", example.SetAPIKey{Company: "c", ID: "a", Key: "k1"}, handlers.StatusAccepted},
		{"SetAPIKey", example.SetAPIKey{Company: "c", ID: "a", Key: "k2"}, handlers.StatusAccepted},
		{"SetAPIKey", example.SetAPIKey{Company: "c", ID: "b", Key: "k"}, handlers.StatusRejected},
		{"AddUserToGroup", mem("a"), handlers.StatusAccepted},
		{"AddUserToGroup", mem("a"), handlers.StatusRejected},
		{"DeleteUser", example.DeleteUser{Company: "c", ID: "a"}, handlers.StatusRejected},
		{"RemoveUserFromGroup", mem("a"), handlers.StatusAccepted},
		{"RemoveUserFromGroup", mem("a"), handlers.StatusRejected},
		{"DeleteUser", example.DeleteUser{Company: "c", ID: "a"}, handlers.StatusAccepted},
		{"SetAPIKey", example.SetAPIKey{Company: "c", ID: "a", Key: "k3"}, handlers.StatusRejected},
		{"InsertUser", ins("b", "ann"), handlers.StatusAccepted},
		{"AddUserToGroup", mem("a"), handlers.StatusRejected},
	}
	run := func(t *testing.T, opts ...example.Option) ([]handlers.Result, []jetsource.Event) {
		e := newEnv(t)
		reg := handlers.NewRegistry()
		must(t, example.Register(reg, opts...))
		p := processor(t, e, reg)
		var out []handlers.Result
		for i, s := range script {
			// Twice per step for the loads after a snapshot.
			for range 2 {
				r, err := p.Send(context.Background(), s.name, s.payload, handlers.WithCommandID(fmt.Sprint(i)))
				must(t, err)
				out = append(out, r)
			}
		}
		return out, e.events(t)
	}
	replayed, replayedEvents := run(t)
	snapEnv := state.NewMemorySnapshots()
	snapshotted, snapshotEvents := run(t, example.WithSnapshots(snapEnv, handlers.WithSnapshotEvery(1), handlers.WithIdempotencyHorizon(0)))
	if snapEnv.Puts() == 0 {
		t.Fatal("no snapshot written")
	}
	for i, r := range replayed {
		s := snapshotted[i]
		if r.Status != s.Status || r.Duplicate != s.Duplicate || fmt.Sprint(r.Sequences) != fmt.Sprint(s.Sequences) || fmt.Sprint(r.Reasons) != fmt.Sprint(s.Reasons) {
			t.Errorf("step %d (%s): replay %+v, snapshots %+v", i/2, script[i/2].name, r, s)
		}
		if i%2 == 0 && r.Status != script[i/2].want {
			t.Errorf("step %d (%s): status %s, want %s", i/2, script[i/2].name, r.Status, script[i/2].want)
		}
	}
	if len(replayedEvents) != len(snapshotEvents) {
		t.Fatalf("%d events replayed, %d with snapshots", len(replayedEvents), len(snapshotEvents))
	}
	for i := range replayedEvents {
		if replayedEvents[i].Subject != snapshotEvents[i].Subject || replayedEvents[i].ID != snapshotEvents[i].ID {
			t.Errorf("event %d: %s %s, with snapshots %s %s", i, replayedEvents[i].Subject, replayedEvents[i].ID, snapshotEvents[i].Subject, snapshotEvents[i].ID)
		}
	}
}

// claim is a command that succeeds once per key.
type claim struct {
	Key string `json:"key"`
}

type claimModel struct {
	Events  int  `json:"events"`
	Claimed bool `json:"claimed"`
}

func claimDecider() handlers.Decider[claim, claimModel] {
	return handlers.Funcs[claim, claimModel]{
		QueryFunc: func(c claim) ([]subjects.Filter, error) {
			return []subjects.Filter{subjects.MustParseFilter("users." + c.Key + ".>")}, nil
		},
		EvolveFunc: func(m claimModel, e jetsource.Event) claimModel {
			m.Events++
			m.Claimed = m.Claimed || e.Name() == "claimed"
			return m
		},
		DecideFunc: func(m claimModel, c claim) ([]jetsource.Event, error) {
			if m.Claimed {
				return nil, handlers.Reject("claimed")
			}
			return []jetsource.Event{{Subject: subjects.MustParse("users." + c.Key + ".claimed"), Data: []byte("{}")}}, nil
		},
	}
}

// TestSnapshotsConcurrentCommandsOneWinner races commands on one boundary,
// from processors that do not serialize them, with snapshots written on
// every load: exactly one wins.
func TestSnapshotsConcurrentCommandsOneWinner(t *testing.T) {
	e := newEnv(t)
	snaps := kvSnapshots(t, e)
	appendN(t, e, "k", 25)
	const n = 8
	results := make([]handlers.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		h, err := handlers.NewWithSnapshots(claimDecider(), snaps, handlers.WithSnapshotEvery(1), handlers.WithIdempotencyHorizon(0))
		must(t, err)
		p := processor(t, e, registry(t, map[string]handlers.Handler{"Claim": h}), handlers.WithSerialBoundaries(false), handlers.WithMaxAttempts(50))
		wg.Go(func() {
			r, err := p.Send(context.Background(), "Claim", claim{Key: "k"})
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	won := 0
	for _, r := range results {
		switch r.Status {
		case handlers.StatusAccepted:
			won++
		case handlers.StatusRejected:
		default:
			t.Errorf("result %+v", r)
		}
	}
	if won != 1 {
		t.Fatalf("%d winners, want 1", won)
	}
}

// A command sent again after a snapshot of its boundary was written is
// still recognised: snapshots never fold the events of the idempotency
// horizon. (With a horizon of 0 the third send below is decided again on a
// model that holds its own effect, and rejected.)
func TestSnapshotsKeepCommandsRecognisable(t *testing.T) {
	e := newEnv(t)
	reg := handlers.NewRegistry()
	snaps := state.NewMemorySnapshots()
	must(t, example.Register(reg, example.WithSnapshots(snaps, handlers.WithSnapshotEvery(1))))
	p := processor(t, e, reg)
	ins := example.InsertUser{Company: "c", ID: "a", Name: "Ann", Username: "ann"}
	var first handlers.Result
	for i := range 3 {
		r, err := p.Send(context.Background(), "InsertUser", ins, handlers.WithCommandID("ins-1"))
		must(t, err)
		if i == 0 {
			first = r
			continue
		}
		if r.Status != handlers.StatusAccepted || !r.Duplicate || fmt.Sprint(r.Sequences) != fmt.Sprint(first.Sequences) {
			t.Fatalf("send %d: %+v, want a duplicate of %+v", i+1, r, first)
		}
	}
	if n := len(e.events(t)); n != len(first.Sequences) {
		t.Fatalf("stored %d events, want %d", n, len(first.Sequences))
	}
}
