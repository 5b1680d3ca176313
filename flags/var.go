package flags

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
)

// Var is a set of flags that can be flipped at run time, in memory, like
// [log/slog.LevelVar] for levels. Its zero value is ready to use and has
// every flag off. Reads never block; Set and Unset wake the waiters of
// [Var.Changed]. A Var is for tests and for programs that take their
// flags from elsewhere; [Set] adds a file and a shared bucket.
type Var struct {
	m       atomic.Pointer[map[string]bool]
	mu      sync.Mutex // serialises writers
	changed chan struct{}
}

// Enabled reports whether the flag is set and on.
func (v *Var) Enabled(_ context.Context, name string) bool {
	if m := v.m.Load(); m != nil {
		return (*m)[name]
	}
	return false
}

// Lookup returns the flag's value and whether it is set.
func (v *Var) Lookup(_ context.Context, name string) (value, ok bool) {
	if m := v.m.Load(); m != nil {
		value, ok = (*m)[name]
	}
	return value, ok
}

// Set sets the flag name to on. It returns an error matching
// [ErrInvalidName] for a bad name and then changes nothing.
func (v *Var) Set(name string, on bool) error {
	if err := ValidName(name); err != nil {
		return err
	}
	v.update(func(m map[string]bool) { m[name] = on })
	return nil
}

// Unset removes the flag name, which is then off.
func (v *Var) Unset(name string) {
	v.update(func(m map[string]bool) { delete(m, name) })
}

// Changed returns a channel that is closed at the next Set or Unset.
func (v *Var) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.changed == nil {
		v.changed = make(chan struct{})
	}
	return v.changed
}

func (v *Var) update(f func(map[string]bool)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := map[string]bool{}
	if old := v.m.Load(); old != nil {
		m = maps.Clone(*old)
	}
	f(m)
	v.m.Store(&m)
	if v.changed != nil {
		close(v.changed)
		v.changed = nil
	}
}
