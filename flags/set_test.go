package flags_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource/flags"
)

func TestSetWithoutBucketHoldsFileDefaults(t *testing.T) {
	ctx := context.Background()
	s := newSet(t, flags.WithDefinitions(sampleDefinitions))
	select {
	case <-s.Ready():
	default:
		t.Fatal("a Set without a bucket is not ready at once")
	}
	cases := []struct {
		name      string
		enabled   bool
		set       bool
		source    flags.Source
		known     bool
		defaultTo flags.Value
	}{
		{"new-checkout", true, true, flags.SourceFile, true, flags.On},
		{"billing.v2", false, true, flags.SourceFile, true, flags.Off},
		{"beta-banner", false, false, flags.SourceDefault, true, flags.Unset},
		{"nope", false, false, flags.SourceDefault, false, flags.Unset},
	}
	for _, c := range cases {
		if got := s.Enabled(ctx, c.name); got != c.enabled {
			t.Errorf("%s: Enabled %v, want %v", c.name, got, c.enabled)
		}
		if v, ok := s.Lookup(ctx, c.name); v != c.enabled || ok != c.set {
			t.Errorf("%s: Lookup %v %v, want %v %v", c.name, v, ok, c.enabled, c.set)
		}
		f, known := s.Flag(c.name)
		if known != c.known || f.Source != c.source || f.Default != c.defaultTo {
			t.Errorf("%s: Flag %+v %v", c.name, f, known)
		}
	}
	var names []string
	for _, f := range s.List() {
		names = append(names, f.Name)
	}
	if want := []string{"audit_export", "beta-banner", "billing.v2", "new-checkout", "search.fuzzy"}; !slices.Equal(names, want) {
		t.Fatalf("List: %v, want %v", names, want)
	}
	for _, err := range []error{s.Watch(ctx), s.Refresh(ctx)} {
		if !errors.Is(err, flags.ErrNoBucket) {
			t.Errorf("got %v, want ErrNoBucket", err)
		}
	}
	if _, err := s.Put(ctx, "a", true); !errors.Is(err, flags.ErrNoBucket) {
		t.Errorf("Put: got %v, want ErrNoBucket", err)
	}
}

func TestNewOptions(t *testing.T) {
	cases := []struct {
		name string
		opt  flags.Option
	}{
		{"ErrNilBucket", flags.WithBucket(nil)},
		{"ErrNilRecorder", flags.WithRecorder(nil)},
		{"ErrBadDefinition", flags.WithDefinitions(flags.Definitions{"a b": {}})},
		{"ErrTimeout", flags.WithTimeout(0)},
		{"ErrResync", flags.WithResync(-time.Second)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := flags.New(c.opt); !errors.Is(err, flags.ErrInvalidOption) {
				t.Fatalf("got %v, want ErrInvalidOption", err)
			}
		})
	}
}

// TestSetPrecedence: a bucket value overrides the file; unset deletes the
// key and the file default applies again.
func TestSetPrecedence(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := newSet(t, flags.WithBucket(e.kv), flags.WithDefinitions(sampleDefinitions))
	watch(t, s)

	check := func(name string, want bool, src flags.Source) {
		t.Helper()
		checkFor(t, toggleWithin, func() error {
			f, _ := s.Flag(name)
			if f.Enabled != want || f.Source != src {
				return errors.New(name + ": got " + flags.ValueOf(f.Enabled).String() + " from " + string(f.Source))
			}
			return nil
		})
	}
	check("new-checkout", true, flags.SourceFile)

	c, err := s.Put(ctx, "new-checkout", false, flags.WithActor("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Op != flags.OpSet || c.Value || c.Source != flags.SourceKV || !c.Previous || c.PreviousSource != flags.SourceFile || c.Revision == 0 || c.ID == "" || c.Actor != "alice" || c.Noop {
		t.Fatalf("Put: %+v", c)
	}
	check("new-checkout", false, flags.SourceKV)
	f, _ := s.Flag("new-checkout")
	if f.Override != flags.Off || f.Default != flags.On || f.Revision != c.Revision || f.ChangeID != c.ID || f.Actor != "alice" || f.Updated.IsZero() {
		t.Fatalf("Flag after Put: %+v", f)
	}

	t.Run("PutSameValueIsNoop", func(t *testing.T) {
		c2, err := s.Put(ctx, "new-checkout", false)
		if err != nil || !c2.Noop || c2.ID != "" || c2.Revision != c.Revision {
			t.Fatalf("got %+v, %v", c2, err)
		}
	})
	t.Run("PutFileDefaultPins", func(t *testing.T) {
		c3, err := s.Put(ctx, "audit_export", true)
		if err != nil || c3.Noop || c3.PreviousSource != flags.SourceFile || !c3.Previous {
			t.Fatalf("got %+v, %v", c3, err)
		}
		check("audit_export", true, flags.SourceKV)
	})
	t.Run("Unset", func(t *testing.T) {
		u, err := s.Unset(ctx, "new-checkout", flags.WithActor("bob"))
		if err != nil {
			t.Fatal(err)
		}
		if u.Op != flags.OpUnset || !u.Value || u.Source != flags.SourceFile || u.Previous || u.PreviousSource != flags.SourceKV || u.Actor != "bob" || u.Noop {
			t.Fatalf("Unset: %+v", u)
		}
		check("new-checkout", true, flags.SourceFile)
		if _, err := e.kv.Get(ctx, "new-checkout"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("key after unset: %v", err)
		}
		again, err := s.Unset(ctx, "new-checkout")
		if err != nil || !again.Noop {
			t.Fatalf("second unset: %+v, %v", again, err)
		}
		// Set again after an unset: the key is re-created.
		if _, err := s.Put(ctx, "new-checkout", false); err != nil {
			t.Fatal(err)
		}
		check("new-checkout", false, flags.SourceKV)
	})
	t.Run("BucketOnlyFlag", func(t *testing.T) {
		if _, err := s.Put(ctx, "kv-only", true); err != nil {
			t.Fatal(err)
		}
		check("kv-only", true, flags.SourceKV)
		if _, err := s.Unset(ctx, "kv-only"); err != nil {
			t.Fatal(err)
		}
		checkFor(t, toggleWithin, func() error {
			if _, known := s.Flag("kv-only"); known {
				return errors.New("kv-only still known after unset")
			}
			return nil
		})
		if v, ok := s.Lookup(ctx, "kv-only"); v || ok {
			t.Fatalf("Lookup after unset: %v %v", v, ok)
		}
	})
	t.Run("DeclaredWithoutValue", func(t *testing.T) {
		if _, err := s.Put(ctx, "beta-banner", true); err != nil {
			t.Fatal(err)
		}
		check("beta-banner", true, flags.SourceKV)
		if _, err := s.Unset(ctx, "beta-banner"); err != nil {
			t.Fatal(err)
		}
		check("beta-banner", false, flags.SourceDefault)
	})
}

// TestSetToggleWithinOneSecond: a toggle made through another process's
// bucket reaches a watching Set within a second, every time.
func TestSetToggleWithinOneSecond(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	watcher := newSet(t, flags.WithBucket(e.kv), flags.WithDefinitions(flags.Definitions{"live": {Default: flags.Off}}))
	watch(t, watcher)
	writer := newSet(t, flags.WithBucket(e.bucket(t)))

	var worst time.Duration
	for i := range 10 {
		on := i%2 == 0
		if _, err := writer.Put(ctx, "live", on, flags.WithActor("ops")); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, enabledWithin(t, watcher, "live", on))
	}
	t.Logf("slowest of 10 toggles observed after %v", worst)

	t.Run("PlainValueFromAnotherTool", func(t *testing.T) {
		other := e.bucket(t)
		for _, c := range []struct {
			val  string
			want bool
		}{{"on", true}, {"false", false}, {"1", true}, {"OFF", false}} {
			if _, err := other.PutString(ctx, "live", c.val); err != nil {
				t.Fatal(err)
			}
			enabledWithin(t, watcher, "live", c.want)
		}
	})
	t.Run("DeleteFromAnotherTool", func(t *testing.T) {
		other := e.bucket(t)
		if _, err := other.PutString(ctx, "live", "on"); err != nil {
			t.Fatal(err)
		}
		enabledWithin(t, watcher, "live", true)
		if err := other.Purge(ctx, "live"); err != nil {
			t.Fatal(err)
		}
		enabledWithin(t, watcher, "live", false) // the file default
	})
}

// TestSetInvalidBucketValueIsIgnored: a value that is no flag value does
// not change the flag (the file default applies) and is logged.
func TestSetInvalidBucketValueIsIgnored(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var logs syncBuffer
	s := newSet(t, flags.WithBucket(e.kv), flags.WithDefinitions(flags.Definitions{"x": {Default: flags.On}}),
		flags.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	watch(t, s)
	for _, v := range []string{"maybe", `{"value":true}`, `{"enabled":"yes"}`, "unset"} {
		if _, err := e.kv.PutString(ctx, "x", "off"); err != nil {
			t.Fatal(err)
		}
		enabledWithin(t, s, "x", false)
		if _, err := e.kv.PutString(ctx, "x", v); err != nil {
			t.Fatal(err)
		}
		enabledWithin(t, s, "x", true)
		if f, _ := s.Flag("x"); f.Source != flags.SourceFile {
			t.Fatalf("%q: source %s", v, f.Source)
		}
	}
	if !strings.Contains(logs.String(), "ignoring bucket value") {
		t.Fatalf("nothing logged: %q", logs.String())
	}
}

// TestSetLoadsExistingValues: values in the bucket before Watch starts
// are there once Ready is closed; deleted keys are not.
func TestSetLoadsExistingValues(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w := newSet(t, flags.WithBucket(e.kv))
	for _, name := range []string{"a", "b", "c"} {
		if _, err := w.Put(ctx, name, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Unset(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, "c", false); err != nil {
		t.Fatal(err)
	}

	t.Run("Refresh", func(t *testing.T) {
		s := newSet(t, flags.WithBucket(e.kv))
		if err := s.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, f := range s.List() {
			got[f.Name] = f.Enabled
		}
		if len(got) != 2 || !got["a"] || got["c"] {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("WatchWithOnChange", func(t *testing.T) {
		s := newSet(t, flags.WithBucket(e.kv), flags.WithDefinitions(flags.Definitions{"c": {Default: flags.Off}}))
		var mu sync.Mutex
		var changes []flags.Change
		remove := s.OnChange(func(c flags.Change) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, c)
		})
		defer remove()
		watch(t, s)
		if !s.Enabled(ctx, "a") || s.Enabled(ctx, "b") || s.Enabled(ctx, "c") {
			t.Fatal("wrong values once ready")
		}
		mu.Lock()
		// c: off from the file, then off from the bucket: the source changed.
		got := slices.Clone(changes)
		mu.Unlock()
		if len(got) != 2 || got[0].Name != "a" || !got[0].Value || got[0].Op != flags.OpSet || got[1].Name != "c" || got[1].Source != flags.SourceKV || got[1].PreviousSource != flags.SourceFile {
			t.Fatalf("initial changes: %+v", got)
		}
		ch := s.Changed()
		c, err := w.Put(ctx, "a", false, flags.WithActor("carol"))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(toggleWithin):
			t.Fatal("Changed not closed within a second")
		}
		checkFor(t, toggleWithin, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(changes) < 3 {
				return errors.New("no third change")
			}
			last := changes[2]
			if last.Name != "a" || last.Value || !last.Previous || last.ID != c.ID || last.Actor != "carol" || last.Revision != c.Revision {
				return errors.New("third change is wrong")
			}
			return nil
		})
	})
}

// recorded collects the changes a Recorder was given.
type recorded struct {
	mu      sync.Mutex
	changes []flags.Change
	fail    error
	during  func(flags.Change) // runs inside Record
}

func (r *recorded) Record(_ context.Context, c flags.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if r.during != nil {
		r.during(c)
	}
	r.changes = append(r.changes, c)
	return nil
}

func (r *recorded) all() []flags.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

// TestSetRecorder: every change is recorded, with its actor, before it is
// written; bad input and a failing recorder write nothing.
func TestSetRecorder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rec := &recorded{}
	s := newSet(t, flags.WithBucket(e.kv), flags.WithRecorder(rec), flags.WithDefinitions(flags.Definitions{"f": {Default: flags.Off}}))

	// The bucket must not hold the value while Record runs.
	rec.during = func(c flags.Change) {
		if c.Revision != 0 {
			t.Errorf("recorded change has revision %d", c.Revision)
		}
		if entry, err := e.kv.Get(ctx, c.Name); err == nil {
			var v struct{ Change string }
			_ = json.Unmarshal(entry.Value(), &v)
			if v.Change == c.ID {
				t.Errorf("change %s written before it was recorded", c.ID)
			}
		}
	}
	set, err := s.Put(ctx, "f", true, flags.WithActor("alice"))
	if err != nil {
		t.Fatal(err)
	}
	unset, err := s.Unset(ctx, "f", flags.WithActor("bob"))
	if err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	if len(got) != 2 {
		t.Fatalf("recorded %d changes, want 2", len(got))
	}
	if r := got[0]; r.ID != set.ID || r.Name != "f" || r.Op != flags.OpSet || !r.Value || r.Previous || r.Actor != "alice" || r.Time.IsZero() {
		t.Fatalf("recorded set: %+v", r)
	}
	if r := got[1]; r.ID != unset.ID || r.Op != flags.OpUnset || r.Value || !r.Previous || r.Source != flags.SourceFile || r.Actor != "bob" {
		t.Fatalf("recorded unset: %+v", r)
	}
	if set.ID == unset.ID {
		t.Fatal("two changes share an id")
	}

	// The bucket value links to the record.
	if _, err := s.Put(ctx, "g", true, flags.WithActor("alice")); err != nil {
		t.Fatal(err)
	}
	entry, err := e.kv.Get(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		Enabled bool   `json:"enabled"`
		Change  string `json:"change"`
		Actor   string `json:"actor"`
	}
	if err := json.Unmarshal(entry.Value(), &stored); err != nil || !stored.Enabled || stored.Change != rec.all()[2].ID || stored.Actor != "alice" {
		t.Fatalf("stored %s (%v)", entry.Value(), err)
	}
	rec.during = nil

	nothingWritten := func(t *testing.T, name string, wantRev uint64) {
		t.Helper()
		entry, err := e.kv.Get(ctx, name)
		switch {
		case wantRev == 0 && !errors.Is(err, jetstream.ErrKeyNotFound):
			t.Fatalf("%s: got %v, want no key", name, err)
		case wantRev != 0 && (err != nil || entry.Revision() != wantRev):
			t.Fatalf("%s: bucket changed (%v)", name, err)
		}
	}
	before := len(rec.all())
	bad := []struct {
		name string
		do   func() (flags.Change, error)
		is   error
	}{
		{"ErrInvalidNameSpace", func() (flags.Change, error) { return s.Put(ctx, "a b", true) }, flags.ErrInvalidName},
		{"ErrInvalidNameWildcard", func() (flags.Change, error) { return s.Put(ctx, "a.>", true) }, flags.ErrInvalidName},
		{"ErrInvalidNameEmpty", func() (flags.Change, error) { return s.Unset(ctx, "") }, flags.ErrInvalidName},
		{"ErrInvalidNameDots", func() (flags.Change, error) { return s.Put(ctx, "a..b", true) }, flags.ErrInvalidName},
		{"ErrInvalidActor", func() (flags.Change, error) { return s.Put(ctx, "h", true, flags.WithActor("a\nb")) }, flags.ErrInvalidOption},
		{"ErrLongActor", func() (flags.Change, error) { return s.Put(ctx, "h", true, flags.WithActor(strings.Repeat("a", 300))) }, flags.ErrInvalidOption},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.do(); !errors.Is(err, c.is) {
				t.Fatalf("got %v, want %v", err, c.is)
			}
			nothingWritten(t, "h", 0)
			if n := len(rec.all()); n != before {
				t.Fatalf("recorded %d changes, want %d", n, before)
			}
		})
	}
	t.Run("ErrNotRecorded", func(t *testing.T) {
		rev := entry.Revision()
		rec.mu.Lock()
		rec.fail = errors.New("store down")
		rec.mu.Unlock()
		defer func() { rec.mu.Lock(); rec.fail = nil; rec.mu.Unlock() }()
		if _, err := s.Put(ctx, "g", false); !errors.Is(err, flags.ErrNotRecorded) || !strings.Contains(err.Error(), "store down") {
			t.Fatalf("Put: got %v", err)
		}
		nothingWritten(t, "g", rev)
		if _, err := s.Unset(ctx, "g"); !errors.Is(err, flags.ErrNotRecorded) {
			t.Fatalf("Unset: got %v", err)
		}
		nothingWritten(t, "g", rev)
		if _, err := s.Put(ctx, "new", true); !errors.Is(err, flags.ErrNotRecorded) {
			t.Fatalf("Put new: got %v", err)
		}
		nothingWritten(t, "new", 0)
	})
	t.Run("ErrConflict", func(t *testing.T) {
		// Someone else writes between the read and the write: the change
		// is recorded but not applied, and the other value stands.
		other := e.bucket(t)
		rec.mu.Lock()
		rec.during = func(c flags.Change) {
			if _, err := other.PutString(ctx, c.Name, "on"); err != nil {
				t.Error(err)
			}
		}
		rec.mu.Unlock()
		defer func() { rec.mu.Lock(); rec.during = nil; rec.mu.Unlock() }()
		for _, do := range []func() (flags.Change, error){
			func() (flags.Change, error) { return s.Put(ctx, "g", false) },
			func() (flags.Change, error) { return s.Unset(ctx, "g") },
			func() (flags.Change, error) { return s.Put(ctx, "fresh", false) },
		} {
			c, err := do()
			if !errors.Is(err, flags.ErrNotApplied) || !errors.Is(err, flags.ErrConflict) || !strings.Contains(err.Error(), c.ID) {
				t.Fatalf("got %v, want ErrNotApplied and ErrConflict naming the change", err)
			}
			entry, err := e.kv.Get(ctx, c.Name)
			if err != nil || string(entry.Value()) != "on" {
				t.Fatalf("%s: the other writer's value is gone (%v)", c.Name, err)
			}
		}
	})
}

// TestWatchLifecycle: one Watch at a time, nil on cancel, an error when
// the connection closes, and no goroutine left behind.
func TestWatchLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	base := settle()

	s := newSet(t, flags.WithBucket(e.kv))
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Watch(wctx) }()
	<-s.Ready()
	if err := s.Watch(ctx); !errors.Is(err, flags.ErrWatching) {
		t.Fatalf("second Watch: got %v, want ErrWatching", err)
	}
	if err := s.Refresh(ctx); !errors.Is(err, flags.ErrWatching) {
		t.Fatalf("Refresh while watching: got %v, want ErrWatching", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch after cancel: %v", err)
	}
	checkFor(t, 3*time.Second, func() error {
		if n := settle(); n > base {
			return errors.New("goroutines left after Watch returned")
		}
		return nil
	})

	// A Watch whose connection closes reports it.
	ownNC, own := e.bucketConn(t)
	s2 := newSet(t, flags.WithBucket(own))
	done2 := make(chan error, 1)
	go func() { done2 <- s2.Watch(ctx) }()
	<-s2.Ready()
	ownNC.Close()
	select {
	case err := <-done2:
		if !errors.Is(err, flags.ErrWatchStopped) {
			t.Fatalf("got %v, want ErrWatchStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not notice the closed connection")
	}
	// Refresh with a dead connection fails within its timeout.
	s3 := newSet(t, flags.WithBucket(own), flags.WithTimeout(200*time.Millisecond))
	if err := s3.Refresh(ctx); err == nil {
		t.Fatal("Refresh on a closed connection succeeded")
	}
}

// TestWatchSurvivesRestart: after the server restarts, a toggle still
// reaches the watching Set (the client reconnects and the watch resumes).
func TestWatchSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the server")
	}
	e := newEnv(t)
	ctx := context.Background()
	s := newSet(t, flags.WithBucket(e.kv))
	watch(t, s)
	if _, err := s.Put(ctx, "r", true); err != nil {
		t.Fatal(err)
	}
	enabledWithin(t, s, "r", true)
	e.restart(t)
	checkFor(t, 10*time.Second, func() error {
		if !e.nc.IsConnected() {
			return errors.New("not reconnected")
		}
		return nil
	})
	start := time.Now()
	checkFor(t, 10*time.Second, func() error {
		// Keep toggling until the watch has caught up after the restart.
		if _, err := s.Put(ctx, "r", false); err != nil && !errors.Is(err, flags.ErrNotApplied) {
			return err
		}
		tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		for tctx.Err() == nil {
			if !s.Enabled(ctx, "r") {
				return nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		return errors.New("toggle after restart not seen")
	})
	t.Logf("watch caught up %v after the restart", time.Since(start).Round(time.Millisecond))
	// Once caught up, toggles are live again.
	if _, err := s.Put(ctx, "r", true); err != nil {
		t.Fatal(err)
	}
	enabledWithin(t, s, "r", true)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestPutRequireDeclared: with RequireDeclared a typo is refused with the
// closest declared name and nothing is recorded or written; a flag the
// bucket holds stays writable, AllowUndeclared creates a new one, and
// Unset is never refused.
func TestPutRequireDeclared(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var recorded []string
	rec := flags.RecorderFunc(func(_ context.Context, c flags.Change) error {
		recorded = append(recorded, c.Name)
		return nil
	})
	s := newSet(t, flags.WithBucket(e.kv), flags.WithDefinitions(sampleDefinitions), flags.WithRecorder(rec), flags.RequireDeclared())

	_, err := s.Put(ctx, "new-chekout", true)
	if !errors.Is(err, flags.ErrUndeclared) || !strings.Contains(err.Error(), `did you mean "new-checkout"?`) {
		t.Fatalf("typo: %v", err)
	}
	_, err = s.Put(ctx, "something-else", true)
	if !errors.Is(err, flags.ErrUndeclared) || !strings.Contains(err.Error(), "declared: audit_export, beta-banner") {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := e.kv.Get(ctx, "new-chekout"); !errors.Is(err, jetstream.ErrKeyNotFound) || len(recorded) != 0 {
		t.Fatalf("a refused Put wrote %v or recorded %v", err, recorded)
	}

	if _, err := s.Put(ctx, "new-checkout", false); err != nil {
		t.Fatalf("declared flag: %v", err)
	}
	if _, err := s.Put(ctx, "kv-made", true, flags.AllowUndeclared()); err != nil {
		t.Fatalf("AllowUndeclared: %v", err)
	}
	if _, err := s.Put(ctx, "kv-made", false); err != nil {
		t.Fatalf("a flag the bucket holds: %v", err)
	}
	if _, err := s.Unset(ctx, "kv-made"); err != nil {
		t.Fatalf("Unset: %v", err)
	}
	if _, err := s.Unset(ctx, "never-set"); err != nil {
		t.Fatalf("Unset of an undeclared flag: %v", err)
	}

	// Without RequireDeclared any valid name is written, as before.
	loose := newSet(t, flags.WithBucket(e.kv), flags.WithDefinitions(sampleDefinitions))
	if _, err := loose.Put(ctx, "new-chekout", true); err != nil {
		t.Fatalf("without RequireDeclared: %v", err)
	}
}
