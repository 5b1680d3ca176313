package handlers

import (
	"context"
	"strings"
	"sync"

	"github.com/jetsource/jetsource/subjects"
)

// serial lets one holder per key proceed at a time; the others wait in
// the order they came (as a channel's receivers do).
type serial struct {
	mu   sync.Mutex
	keys map[string]*slot
}

type slot struct {
	ch      chan struct{} // holds one token while the key is free
	waiters int
}

// lock waits until the key is free or ctx ends, and returns the function
// that frees it.
func (s *serial) lock(ctx context.Context, key string) (func(), error) {
	s.mu.Lock()
	if s.keys == nil {
		s.keys = map[string]*slot{}
	}
	sl := s.keys[key]
	if sl == nil {
		sl = &slot{ch: make(chan struct{}, 1)}
		sl.ch <- struct{}{}
		s.keys[key] = sl
	}
	sl.waiters++
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		sl.waiters--
		if sl.waiters == 0 {
			delete(s.keys, key)
		}
		s.mu.Unlock()
	}
	select {
	case <-sl.ch:
		return func() { sl.ch <- struct{}{}; release() }, nil
	case <-ctx.Done():
		release()
		return nil, context.Cause(ctx)
	}
}

// boundaryKey is the key of a boundary: its canonical filters.
func boundaryKey(filters []subjects.Filter) string {
	c := subjects.Canonical(filters...)
	parts := make([]string, len(c))
	for i, f := range c {
		parts[i] = f.String()
	}
	return strings.Join(parts, " ")
}
