package handlers

import (
	"fmt"
	"slices"
	"sync"
)

// Registry maps command names to their handlers. The zero value is an
// empty registry ready to use; it is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register registers the handler of a command name.
//
// It returns an error matching [ErrInvalidCommand] for a bad name
// ([ValidName]), and [ErrInvalidOption] for a nil handler or a name
// registered before.
func (r *Registry) Register(name string, h Handler) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%w: nil handler for %s", ErrInvalidOption, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handlers == nil {
		r.handlers = map[string]Handler{}
	}
	if _, dup := r.handlers[name]; dup {
		return fmt.Errorf("%w: command %s is already registered", ErrInvalidOption, name)
	}
	r.handlers[name] = h
	return nil
}

// Handler returns the handler of a command name.
func (r *Registry) Handler(name string) (Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.handlers[name]
	return h, ok
}

// Names returns the registered command names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
