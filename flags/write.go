package flags

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource/internal/suggest"
)

// Recorder records a flag change before [Set.Put] or [Set.Unset] writes
// it, so that flags are audited like everything else: a program appends
// an event (with the change's ID as the event id and its Actor as the
// event's actor) to its event store. flags does not import the store; the
// program adapts it with a type of its own or a [RecorderFunc]. Record
// must return an error when the record was not stored: the change is
// then not written.
type Recorder interface {
	Record(ctx context.Context, c Change) error
}

// RecorderFunc adapts a function to a [Recorder].
type RecorderFunc func(ctx context.Context, c Change) error

// Record calls f.
func (f RecorderFunc) Record(ctx context.Context, c Change) error { return f(ctx, c) }

// Put sets the flag name to on in the bucket, where it overrides the
// file's default for every Set that watches the bucket.
//
// The change is recorded first and written second: Put reads the key's
// current revision, passes the [Change] (with a new ID and the actor of
// [WithActor]) to the [Recorder], and then writes the value, carrying the
// change ID, only if the key is still at the revision it read. So no
// change takes effect without its record. When the write fails the
// record stays and Put returns an error matching [ErrNotApplied] (and
// [ErrConflict] when someone else changed the flag in between): the
// record's change ID then appears in no bucket value, which tells a
// recorded change that took effect from one that did not. A write whose
// reply was lost is recognised by reading the key back.
//
// A Put that finds the bucket already holding the value changes nothing
// and returns a Change with Noop set. Putting the file's default is not a
// no-op: it pins the value in the bucket.
//
// On a Set made with [RequireDeclared], a flag that the definitions do not
// declare and the bucket does not hold is refused with [ErrUndeclared]
// (nothing is recorded or written) unless [AllowUndeclared] is given.
//
// It returns an error matching [ErrInvalidName] or [ErrInvalidOption] for
// bad arguments (nothing is recorded or written), [ErrUndeclared], [ErrNoBucket] for a Set
// without a bucket, [ErrNotRecorded] when the Recorder fails (nothing is
// written), [ErrNotApplied], and the client's error when the key cannot
// be read. Put does not change this Set's values itself: its [Set.Watch]
// delivers the change like any other.
func (s *Set) Put(ctx context.Context, name string, on bool, opts ...WriteOption) (Change, error) {
	return s.write(ctx, name, OpSet, on, opts)
}

// Unset removes the flag's value from the bucket, so the file's default
// applies again. It records first and writes second, like [Set.Put], and
// deletes the key only if it is still at the revision it read. Unsetting a
// flag the bucket does not hold changes nothing and returns a Change with
// Noop set. It returns the errors of Put.
func (s *Set) Unset(ctx context.Context, name string, opts ...WriteOption) (Change, error) {
	return s.write(ctx, name, OpUnset, false, opts)
}

func (s *Set) write(ctx context.Context, name string, op Op, on bool, opts []WriteOption) (Change, error) {
	if err := ValidName(name); err != nil {
		return Change{}, err
	}
	var wo writeOptions
	for _, opt := range opts {
		if err := opt(&wo); err != nil {
			return Change{}, err
		}
	}
	if s.kv == nil {
		return Change{}, ErrNoBucket
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()

	// The key's current state: its revision (of the last value written,
	// valid or not) and its override (when the value is a flag value).
	var rev uint64
	before := &state{defs: s.defs, kv: map[string]override{}}
	e, err := s.kv.Get(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return Change{}, fmt.Errorf("flags: read %s from bucket %s: %w", name, s.kv.Bucket(), err)
	default:
		rev = e.Revision()
		if o, ok := s.decode(e); ok {
			before.kv[name] = o
		}
	}
	prev, _ := before.flag(name)
	fileOnly, _ := (&state{defs: s.defs}).flag(name)
	if op == OpSet && s.declared && !wo.allowUndeclared && rev == 0 {
		if _, ok := s.defs[name]; !ok {
			return Change{}, s.undeclared(name)
		}
	}

	c := Change{Name: name, Op: op, Previous: prev.Enabled, PreviousSource: prev.Source, Actor: wo.actor, Time: s.now().UTC()}
	if op == OpSet {
		c.Value, c.Source = on, SourceKV
		if prev.Source == SourceKV && prev.Enabled == on {
			c.Noop, c.Revision = true, prev.Revision
			return c, nil
		}
	} else {
		c.Value, c.Source = fileOnly.Enabled, fileOnly.Source
		if rev == 0 {
			c.Noop = true
			return c, nil
		}
	}
	c.ID = newID()

	if s.recorder != nil {
		if err := s.recorder.Record(ctx, c); err != nil {
			return c, fmt.Errorf("%w: %s %s: %w", ErrNotRecorded, op, name, err)
		}
	}

	var newRev uint64
	if op == OpSet {
		val, _ := json.Marshal(stored{Enabled: &on, Change: c.ID, Actor: c.Actor, Time: c.Time})
		if rev > 0 {
			newRev, err = s.kv.Update(ctx, name, val, rev)
		} else {
			newRev, err = s.kv.Create(ctx, name, val)
		}
	} else {
		err = s.kv.Delete(ctx, name, jetstream.LastRevision(rev))
	}
	if err == nil {
		c.Revision = newRev
		return c, nil
	}
	if r, ok := s.landed(ctx, c); ok {
		c.Revision = r
		return c, nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return c, fmt.Errorf("%w: %w: %s %s (change %s): %w", ErrNotApplied, ErrConflict, op, name, c.ID, err)
	}
	return c, fmt.Errorf("%w: %s %s (change %s): %w", ErrNotApplied, op, name, c.ID, err)
}

// undeclared returns the error of a Put of an undeclared flag, naming the
// closest declared one.
func (s *Set) undeclared(name string) error {
	names := slices.Sorted(maps.Keys(s.defs))
	if len(names) == 0 {
		return fmt.Errorf("%w: %q: the flag file declares no flag", ErrUndeclared, name)
	}
	if c := suggest.Closest(name, names); c != "" {
		return fmt.Errorf("%w: %q is not declared in the flag file; did you mean %q?", ErrUndeclared, name, c)
	}
	return fmt.Errorf("%w: %q is not declared in the flag file (declared: %s)", ErrUndeclared, name, strings.Join(names, ", "))
}

// landed reads the key back after a failed write to see whether the
// write took effect all the same (its reply was lost).
func (s *Set) landed(ctx context.Context, c Change) (rev uint64, ok bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	e, err := s.kv.Get(ctx, c.Name)
	if c.Op == OpUnset {
		return 0, errors.Is(err, jetstream.ErrKeyNotFound)
	}
	if err != nil {
		return 0, false
	}
	sv, err := decodeStored(e.Value())
	if err != nil || sv.Change != c.ID {
		return 0, false
	}
	return e.Revision(), true
}

// newID returns a random change id (128 bits, hex).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
