package flags

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Set holds named flags from two sources: the defaults of a file
// ([Definitions]) and the overrides in a NATS key-value bucket, one key
// per flag. A value in the bucket overrides the file; a flag neither sets
// is off. [Set.Watch] keeps the overrides current, so a change made with
// [Set.Put] or [Set.Unset] anywhere reaches every watching Set within
// milliseconds. Reads never block and are safe for concurrent use.
type Set struct {
	kv       jetstream.KeyValue
	recorder Recorder
	log      *slog.Logger
	timeout  time.Duration
	resync   time.Duration
	now      func() time.Time
	defs     Definitions
	declared bool // Put refuses undeclared flags

	snap atomic.Pointer[state]

	mu      sync.Mutex // guards subs, nextSub, changed
	subs    map[int]func(Change)
	nextSub int
	changed chan struct{}

	running   sync.Mutex // held by Watch and Refresh
	ready     chan struct{}
	readyOnce sync.Once
}

// state is an immutable snapshot of both sources.
type state struct {
	defs Definitions
	kv   map[string]override
}

// override is a flag's value in the bucket.
type override struct {
	value   bool
	rev     uint64
	change  string
	actor   string
	updated time.Time
}

// New returns a Set. Options:
//   - [WithDefinitions]: the file defaults;
//   - [WithBucket]: the key-value bucket of overrides;
//   - [WithRecorder]: how Put and Unset record changes;
//   - [RequireDeclared]: Put refuses flags the definitions do not declare;
//   - [WithLogger], [WithTimeout], [WithResync].
//
// A Set with a bucket holds no overrides until [Set.Watch] or
// [Set.Refresh] has loaded them ([Set.Ready]). A bad option returns an
// error matching [ErrInvalidOption].
func New(opts ...Option) (*Set, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.defs == nil {
		o.defs = Definitions{}
	}
	s := &Set{
		kv:       o.kv,
		recorder: o.recorder,
		log:      o.logger,
		timeout:  o.timeout,
		resync:   o.resync,
		now:      o.now,
		defs:     o.defs,
		declared: o.declared,
		subs:     map[int]func(Change){},
		ready:    make(chan struct{}),
	}
	s.snap.Store(&state{defs: o.defs, kv: map[string]override{}})
	if s.kv == nil {
		s.markReady()
	}
	return s, nil
}

// Enabled reports whether the flag name is on: the bucket's value if it
// has one, else the file's, else off.
func (s *Set) Enabled(_ context.Context, name string) bool {
	v, _ := s.snap.Load().lookup(name)
	return v
}

// Lookup returns the flag's value and whether the bucket or the file sets
// it (a flag the file declares without a value is not set).
func (s *Set) Lookup(_ context.Context, name string) (value, ok bool) {
	return s.snap.Load().lookup(name)
}

// Flag returns the state of the flag name and whether the file or the
// bucket knows it.
func (s *Set) Flag(name string) (Flag, bool) { return s.snap.Load().flag(name) }

// List returns every flag the file or the bucket knows, sorted by name.
func (s *Set) List() []Flag {
	st := s.snap.Load()
	names := slices.Sorted(maps.Keys(st.defs))
	for n := range st.kv {
		if _, ok := st.defs[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([]Flag, 0, len(names))
	for _, n := range names {
		f, _ := st.flag(n)
		out = append(out, f)
	}
	return out
}

// OnChange registers f to be called with every change of a flag's
// effective value or source that the Set sees, including those found when
// the bucket is first loaded. Calls come one at a time, in order, from
// the goroutine running [Set.Watch] (or [Set.Refresh]), so f must return
// quickly and must not call Watch or Refresh. The returned function
// removes f.
func (s *Set) OnChange(f func(Change)) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = f
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, id)
	}
}

// Changed returns a channel that is closed at the next change of any
// flag (see [Notifier]).
func (s *Set) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// Ready returns a channel that is closed once the bucket's values have
// been loaded by [Set.Watch] or [Set.Refresh]; at once for a Set without
// a bucket.
func (s *Set) Ready() <-chan struct{} { return s.ready }

func (s *Set) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// Watch loads the bucket's values and then applies every change until ctx
// ends, when it returns nil. Run it in a goroutine of its own. A toggle
// reaches the Set as soon as the server delivers it, normally within
// milliseconds.
//
// The watch survives reconnects. After the server restarts, the client
// library notices a stale watch only after about 20 seconds of missed
// heartbeats; Watch therefore also asks the bucket for its last revision
// once per resync interval ([WithResync], default 1s) and starts the
// watch afresh when a revision has stayed undelivered for a whole
// interval, so toggles resume within a few seconds of the reconnect.
//
// It returns [ErrNoBucket] for a Set without a bucket, [ErrWatching]
// while another Watch or Refresh runs, [ErrWatchStopped] when the watch
// ends before ctx (the connection was closed), and the client's error
// when the watch cannot start.
func (s *Set) Watch(ctx context.Context) error {
	if s.kv == nil {
		return ErrNoBucket
	}
	if !s.running.TryLock() {
		return ErrWatching
	}
	defer s.running.Unlock()
	return s.watch(ctx, false)
}

// Refresh loads the bucket's current values once, for a program that
// does not watch. It returns the errors of [Set.Watch], and the context's
// error when the values do not arrive in time.
func (s *Set) Refresh(ctx context.Context) error {
	if s.kv == nil {
		return ErrNoBucket
	}
	if !s.running.TryLock() {
		return ErrWatching
	}
	defer s.running.Unlock()
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.watch(ctx, true)
}

func (s *Set) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

// errResync makes watch start its bucket watch afresh.
var errResync = errors.New("flags: watch fell behind")

func (s *Set) watch(ctx context.Context, once bool) error {
	var stuck uint64
	for {
		err := s.watchOnce(ctx, once, &stuck)
		if !errors.Is(err, errResync) {
			return err
		}
		s.log.Info("flags: the bucket watch fell behind; restarting it", "bucket", s.kv.Bucket(), "last", stuck)
	}
}

// watchOnce runs one bucket watch. It returns errResync when the bucket
// holds a revision the watch has not delivered for a whole resync
// interval; stuck is that revision, which a new watch does not chase again
// (its message may have been removed).
func (s *Set) watchOnce(ctx context.Context, once bool, stuck *uint64) error {
	// nats.go ties the watch's subscription to the context it was made
	// with, so wctx (not a timeout) bounds it; cancelling it stops the
	// subscription.
	wctx, cancel := context.WithCancel(ctx)
	w, err := s.kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return fmt.Errorf("flags: watch bucket %s: %w", s.kv.Bucket(), err)
	}
	defer func() {
		cancel()
		drain(w)
	}()

	var tick <-chan time.Time
	if !once && s.resync > 0 {
		t := time.NewTicker(s.resync)
		defer t.Stop()
		tick = t.C
	}
	var seen, behind uint64 // the highest revision delivered; the one waited for
	fresh := map[string]override{}
	initial := true
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case e, ok = <-w.Updates():
		case <-tick:
			if initial {
				continue
			}
			last, err := s.lastRevision(ctx)
			switch {
			case err != nil, last <= seen, last == *stuck:
				behind = 0
			case behind != 0 && seen < behind:
				*stuck = last
				return errResync
			default:
				behind = last
			}
			continue
		case <-ctx.Done():
			if once {
				return fmt.Errorf("flags: load bucket %s: %w", s.kv.Bucket(), ctx.Err())
			}
			return nil
		}
		if !ok {
			if ctx.Err() != nil && !once {
				return nil
			}
			return fmt.Errorf("%w: bucket %s", ErrWatchStopped, s.kv.Bucket())
		}
		if e == nil {
			if initial {
				initial = false
				s.replace(fresh)
				s.markReady()
				if once {
					return nil
				}
			}
			continue
		}
		seen = max(seen, e.Revision())
		o, present := s.decode(e)
		if initial {
			if present {
				fresh[e.Key()] = o
			} else {
				delete(fresh, e.Key())
			}
			continue
		}
		s.applyOne(e.Key(), o, present)
	}
}

// lastRevision asks the bucket for its last revision, within one resync
// interval.
func (s *Set) lastRevision(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.resync)
	defer cancel()
	st, err := s.kv.Status(ctx)
	if err != nil {
		return 0, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return 0, errors.New("flags: bucket status without stream state")
	}
	return bs.StreamInfo().State.LastSeq, nil
}

// drain reads w's updates until they close (the subscription stopped) or
// a second passes, so that the client's delivery goroutine never blocks
// on a full channel.
func drain(w jetstream.KeyWatcher) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}

// decode turns an entry into an override; present is false for a delete,
// a purge or a value that is no flag value (logged).
func (s *Set) decode(e jetstream.KeyValueEntry) (o override, present bool) {
	if e.Operation() != jetstream.KeyValuePut {
		return override{}, false
	}
	if err := ValidName(e.Key()); err != nil {
		s.log.Warn("flags: ignoring bucket key", "bucket", e.Bucket(), "key", e.Key(), "error", err)
		return override{}, false
	}
	sv, err := decodeStored(e.Value())
	if err != nil {
		s.log.Warn("flags: ignoring bucket value", "bucket", e.Bucket(), "key", e.Key(), "revision", e.Revision(), "error", err)
		return override{}, false
	}
	updated := sv.Time
	if updated.IsZero() {
		updated = e.Created()
	}
	return override{value: *sv.Enabled, rev: e.Revision(), change: sv.Change, actor: sv.Actor, updated: updated}, true
}

// replace swaps in a whole new set of overrides.
func (s *Set) replace(kv map[string]override) {
	old := s.snap.Load()
	next := &state{defs: old.defs, kv: kv}
	names := map[string]bool{}
	for n := range old.kv {
		names[n] = true
	}
	for n := range kv {
		names[n] = true
	}
	s.publish(old, next, slices.Sorted(maps.Keys(names)))
}

// applyOne applies one live entry.
func (s *Set) applyOne(name string, o override, present bool) {
	old := s.snap.Load()
	kv := maps.Clone(old.kv)
	if present {
		kv[name] = o
	} else {
		delete(kv, name)
	}
	s.publish(old, &state{defs: old.defs, kv: kv}, []string{name})
}

// publish stores next and tells the subscribers what changed among names.
func (s *Set) publish(old, next *state, names []string) {
	var changes []Change
	for _, n := range names {
		before, _ := old.flag(n)
		after, _ := next.flag(n)
		if before.Enabled == after.Enabled && before.Source == after.Source {
			continue
		}
		c := Change{Name: n, Op: OpUnset, Value: after.Enabled, Source: after.Source, Previous: before.Enabled, PreviousSource: before.Source}
		if o, ok := next.kv[n]; ok {
			c.Op, c.ID, c.Actor, c.Time, c.Revision = OpSet, o.change, o.actor, o.updated, o.rev
		}
		changes = append(changes, c)
	}
	s.snap.Store(next)
	s.mu.Lock()
	var subs []func(Change)
	if len(changes) > 0 {
		if s.changed != nil {
			close(s.changed)
			s.changed = nil
		}
		ids := slices.Sorted(maps.Keys(s.subs))
		for _, id := range ids {
			subs = append(subs, s.subs[id])
		}
	}
	s.mu.Unlock()
	for _, c := range changes {
		for _, f := range subs {
			f(c)
		}
	}
}

// lookup is the fast path of flag: the value and whether a source sets it.
func (st *state) lookup(name string) (value, ok bool) {
	if o, ok := st.kv[name]; ok {
		return o.value, true
	}
	if d := st.defs[name]; d.Default != Unset {
		return d.Default == On, true
	}
	return false, false
}

// flag computes the state of one flag.
func (st *state) flag(name string) (Flag, bool) {
	d, inFile := st.defs[name]
	o, inKV := st.kv[name]
	f := Flag{Name: name, Description: d.Description, Default: d.Default, Source: SourceDefault}
	switch {
	case inKV:
		f.Enabled, f.Source, f.Override = o.value, SourceKV, ValueOf(o.value)
		f.Revision, f.ChangeID, f.Actor, f.Updated = o.rev, o.change, o.actor, o.updated
	case d.Default != Unset:
		f.Enabled, f.Source = d.Default == On, SourceFile
	}
	return f, inFile || inKV
}

// stored is the JSON value of a bucket key written by Put.
type stored struct {
	Enabled *bool     `json:"enabled"`
	Change  string    `json:"change,omitempty"`
	Actor   string    `json:"actor,omitempty"`
	Time    time.Time `json:"time,omitzero"`
}

// decodeStored reads a bucket value: the JSON that Put writes, or plain
// on/off/true/false/1/0 as another tool (nats kv put) may write it.
func decodeStored(b []byte) (stored, error) {
	if len(b) > 0 && b[0] == '{' {
		var sv stored
		if err := json.Unmarshal(b, &sv); err != nil {
			return stored{}, fmt.Errorf("%w: %w", ErrInvalidValue, err)
		}
		if sv.Enabled == nil {
			return stored{}, fmt.Errorf("%w: no enabled field in %q", ErrInvalidValue, truncate(b))
		}
		return sv, nil
	}
	v, err := ParseValue(string(b))
	if err != nil || v == Unset {
		return stored{}, fmt.Errorf("%w: %q is not on, off, true or false", ErrInvalidValue, truncate(b))
	}
	on := v == On
	return stored{Enabled: &on}, nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
