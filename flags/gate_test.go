package flags_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetsource/jetsource/flags"
)

func TestGateSkip(t *testing.T) {
	ctx := context.Background()
	var v flags.Var
	g, err := flags.NewGate(&v, "work", flags.SkipWhenOff)
	if err != nil {
		t.Fatal(err)
	}
	if d := g.Decide(ctx); d != flags.Skip {
		t.Fatalf("off: got %v, want skip", d)
	}
	if ok, err := g.Allow(ctx); ok || err != nil {
		t.Fatalf("off: Allow %v %v", ok, err)
	}
	if err := v.Set("work", true); err != nil {
		t.Fatal(err)
	}
	if d := g.Decide(ctx); d != flags.Process {
		t.Fatalf("on: got %v, want process", d)
	}
	if ok, err := g.Allow(ctx); !ok || err != nil {
		t.Fatalf("on: Allow %v %v", ok, err)
	}
	v.Unset("work")
	if g.On(ctx) {
		t.Fatal("unset flag is on")
	}
}

func TestGatePause(t *testing.T) {
	ctx := context.Background()
	var v flags.Var
	g, err := flags.NewGate(&v, "work", flags.PauseWhenOff)
	if err != nil {
		t.Fatal(err)
	}
	if d := g.Decide(ctx); d != flags.Pause {
		t.Fatalf("got %v, want pause", d)
	}
	t.Run("ResumesWhenOn", func(t *testing.T) {
		res := make(chan bool, 1)
		go func() {
			ok, _ := g.Allow(ctx)
			res <- ok
		}()
		select {
		case <-res:
			t.Fatal("Allow returned while the flag is off")
		case <-time.After(50 * time.Millisecond):
		}
		if err := v.Set("work", true); err != nil {
			t.Fatal(err)
		}
		select {
		case ok := <-res:
			if !ok {
				t.Fatal("Allow returned false")
			}
		case <-time.After(toggleWithin):
			t.Fatal("Allow still blocked a second after the flag went on")
		}
	})
	t.Run("OtherFlagsDoNotWake", func(t *testing.T) {
		if err := v.Set("work", false); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		go func() { _ = v.Set("other", true) }()
		if ok, err := g.Allow(cctx); ok || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v %v, want false and the deadline", ok, err)
		}
	})
	t.Run("CancelledWhilePaused", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(20 * time.Millisecond); cancel() }()
		if ok, err := g.Allow(cctx); ok || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v %v, want false and Canceled", ok, err)
		}
	})
	t.Run("PollsSourceWithoutNotifier", func(t *testing.T) {
		var inner flags.Var
		src := enablerOnly{&inner}
		pg, err := flags.NewGate(src, "work", flags.PauseWhenOff, flags.WithPollInterval(10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		res := make(chan bool, 1)
		go func() {
			ok, _ := pg.Allow(ctx)
			res <- ok
		}()
		time.Sleep(30 * time.Millisecond)
		if err := inner.Set("work", true); err != nil {
			t.Fatal(err)
		}
		select {
		case ok := <-res:
			if !ok {
				t.Fatal("Allow returned false")
			}
		case <-time.After(toggleWithin):
			t.Fatal("polling gate did not resume")
		}
	})
}

// enablerOnly hides every method but Enabled.
type enablerOnly struct{ e flags.Enabler }

func (e enablerOnly) Enabled(ctx context.Context, name string) bool { return e.e.Enabled(ctx, name) }

// TestGateLiveToggle: a pausing gate on a watching Set resumes within a
// second of a toggle made through the bucket, and pauses again when it is
// turned off.
func TestGateLiveToggle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := newSet(t, flags.WithBucket(e.kv), flags.WithDefinitions(flags.Definitions{"billing.v2": {Default: flags.Off}}))
	watch(t, s)
	writer := newSet(t, flags.WithBucket(e.bucket(t)))
	pause, err := flags.NewGate(s, "billing.v2", flags.PauseWhenOff)
	if err != nil {
		t.Fatal(err)
	}
	skip, err := flags.NewGate(s, "billing.v2", flags.SkipWhenOff)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		if d := skip.Decide(ctx); d != flags.Skip {
			t.Fatalf("round %d: skip gate says %v while off", round, d)
		}
		res := make(chan bool, 1)
		go func() {
			ok, _ := pause.Allow(ctx)
			res <- ok
		}()
		time.Sleep(20 * time.Millisecond)
		start := time.Now()
		if _, err := writer.Put(ctx, "billing.v2", true, flags.WithActor("ops")); err != nil {
			t.Fatal(err)
		}
		select {
		case ok := <-res:
			if !ok {
				t.Fatal("Allow returned false")
			}
			t.Logf("round %d: paused worker resumed %v after the put", round, time.Since(start).Round(time.Microsecond))
		case <-time.After(toggleWithin):
			t.Fatalf("round %d: paused worker still blocked a second after the toggle", round)
		}
		if d := skip.Decide(ctx); d != flags.Process {
			t.Fatalf("round %d: skip gate says %v while on", round, d)
		}
		if _, err := writer.Put(ctx, "billing.v2", false); err != nil {
			t.Fatal(err)
		}
		checkFor(t, toggleWithin, func() error {
			if pause.Decide(ctx) != flags.Pause {
				return errors.New("gate not paused again")
			}
			return nil
		})
	}
}

func TestGateWhenUnset(t *testing.T) {
	ctx := context.Background()
	var v flags.Var
	g, err := flags.NewGate(&v, "work", flags.SkipWhenOff, flags.WhenUnset(true))
	if err != nil {
		t.Fatal(err)
	}
	if !g.On(ctx) {
		t.Fatal("unset flag with WhenUnset(true) is off")
	}
	if err := v.Set("work", false); err != nil {
		t.Fatal(err)
	}
	if g.On(ctx) {
		t.Fatal("flag set off is on")
	}
	// An Enabler that cannot tell unset from off: WhenUnset has no effect.
	g2, _ := flags.NewGate(enablerOnly{flags.Static{}}, "work", flags.SkipWhenOff, flags.WhenUnset(true))
	if g2.On(ctx) {
		t.Fatal("WhenUnset applied to a source without Lookup")
	}
}

func TestNewGateErrors(t *testing.T) {
	var v flags.Var
	cases := []struct {
		name string
		src  flags.Enabler
		flag string
		mode flags.Mode
		opts []flags.GateOption
		is   error
	}{
		{"ErrNilSource", nil, "a", flags.SkipWhenOff, nil, flags.ErrInvalidOption},
		{"ErrBadName", &v, "a b", flags.SkipWhenOff, nil, flags.ErrInvalidName},
		{"ErrZeroMode", &v, "a", 0, nil, flags.ErrInvalidOption},
		{"ErrUnknownMode", &v, "a", 7, nil, flags.ErrInvalidOption},
		{"ErrPollInterval", &v, "a", flags.PauseWhenOff, []flags.GateOption{flags.WithPollInterval(0)}, flags.ErrInvalidOption},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := flags.NewGate(c.src, c.flag, c.mode, c.opts...); !errors.Is(err, c.is) {
				t.Fatalf("got %v, want %v", err, c.is)
			}
		})
	}
	for s, want := range map[string]flags.Mode{"skip": flags.SkipWhenOff, "pause": flags.PauseWhenOff} {
		if m, err := flags.ParseMode(s); err != nil || m != want || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := flags.ParseMode("stop"); !errors.Is(err, flags.ErrInvalidOption) {
		t.Errorf("ParseMode(stop): %v", err)
	}
}

func TestVar(t *testing.T) {
	ctx := context.Background()
	var v flags.Var
	if v.Enabled(ctx, "a") {
		t.Fatal("zero Var has a flag on")
	}
	ch := v.Changed()
	if err := v.Set("a", true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by Set")
	}
	if val, ok := v.Lookup(ctx, "a"); !val || !ok {
		t.Fatal("Lookup after Set")
	}
	if err := v.Set("a b", true); !errors.Is(err, flags.ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	v.Unset("a")
	if _, ok := v.Lookup(ctx, "a"); ok {
		t.Fatal("Lookup after Unset")
	}
}
