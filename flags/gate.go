package flags

import (
	"context"
	"fmt"
	"time"
)

// Mode tells a [Gate] what a worker does while its flag is off.
type Mode int

const (
	// SkipWhenOff: the worker skips the work (and acknowledges it, if it
	// is a message) while the flag is off.
	SkipWhenOff Mode = iota + 1
	// PauseWhenOff: the worker waits until the flag is on again.
	PauseWhenOff
)

// String returns "skip" or "pause".
func (m Mode) String() string {
	switch m {
	case SkipWhenOff:
		return "skip"
	case PauseWhenOff:
		return "pause"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "skip" or "pause". Anything else is an error matching
// [ErrInvalidOption].
func ParseMode(s string) (Mode, error) {
	switch s {
	case "skip":
		return SkipWhenOff, nil
	case "pause":
		return PauseWhenOff, nil
	}
	return 0, fmt.Errorf("%w: mode %q is neither skip nor pause", ErrInvalidOption, s)
}

// Decision is what a [Gate] tells a worker to do now.
type Decision int

const (
	// Process: the flag is on; do the work.
	Process Decision = iota + 1
	// Skip: the flag is off and the gate skips; drop the work.
	Skip
	// Pause: the flag is off and the gate pauses; wait ([Gate.Allow]).
	Pause
)

// String returns "process", "skip" or "pause".
func (d Decision) String() string {
	switch d {
	case Process:
		return "process"
	case Skip:
		return "skip"
	case Pause:
		return "pause"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// GateOption configures a [Gate].
type GateOption func(*Gate) error

// WhenUnset sets the flag's value while no source sets it (default off).
// It takes effect when the gate's source is a [Looker]; an [Enabler]
// alone cannot tell an unset flag from an off one.
func WhenUnset(on bool) GateOption {
	return func(g *Gate) error {
		g.unset = &on
		return nil
	}
}

// WithPollInterval sets how often a pausing gate asks a source that is
// not a [Notifier] (default 100ms). A Notifier, such as [*Set], wakes
// the gate at once.
func WithPollInterval(d time.Duration) GateOption {
	return func(g *Gate) error {
		if d <= 0 {
			return fmt.Errorf("%w: poll interval %v must be positive", ErrInvalidOption, d)
		}
		g.poll = d
		return nil
	}
}

// Gate guards a worker with a flag: while the flag is on the worker
// processes; while it is off the worker skips or pauses, as the [Mode]
// says. A Gate is safe for concurrent use.
//
//	gate, _ := flags.NewGate(set, "billing.v2", flags.PauseWhenOff)
//	for msg := range work {
//		ok, err := gate.Allow(ctx) // blocks while paused
//		if err != nil {
//			return err // ctx ended
//		}
//		if !ok {
//			continue // skipped
//		}
//		process(msg)
//	}
//
// A message consumer that pauses should keep its message alive (for a
// JetStream message, InProgress) or stop fetching while paused.
type Gate struct {
	src   Enabler
	name  string
	mode  Mode
	unset *bool
	poll  time.Duration
}

// NewGate returns a gate on the flag name of src. It returns an error
// matching [ErrInvalidName] for a bad name and [ErrInvalidOption] for a
// nil source, an unknown mode or a bad option.
func NewGate(src Enabler, name string, mode Mode, opts ...GateOption) (*Gate, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: nil flag source", ErrInvalidOption)
	}
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if mode != SkipWhenOff && mode != PauseWhenOff {
		return nil, fmt.Errorf("%w: unknown mode %d", ErrInvalidOption, int(mode))
	}
	g := &Gate{src: src, name: name, mode: mode, poll: 100 * time.Millisecond}
	for _, opt := range opts {
		if err := opt(g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Name returns the gate's flag name.
func (g *Gate) Name() string { return g.name }

// Mode returns the gate's mode.
func (g *Gate) Mode() Mode { return g.mode }

// On reports whether the gate's flag is on now.
func (g *Gate) On(ctx context.Context) bool {
	if g.unset != nil {
		if l, ok := g.src.(Looker); ok {
			v, set := l.Lookup(ctx, g.name)
			if !set {
				return *g.unset
			}
			return v
		}
	}
	return g.src.Enabled(ctx, g.name)
}

// Decide tells what to do now, without waiting: [Process] while the flag
// is on, else [Skip] or [Pause] according to the mode.
func (g *Gate) Decide(ctx context.Context) Decision {
	switch {
	case g.On(ctx):
		return Process
	case g.mode == PauseWhenOff:
		return Pause
	}
	return Skip
}

// Allow returns true when the worker should process and false when it
// should skip. In pause mode it blocks while the flag is off and returns
// true once it is on, or false and the context's error when ctx ends
// first. A [Notifier] source wakes it as soon as the flag changes;
// another source is asked at the poll interval.
func (g *Gate) Allow(ctx context.Context) (bool, error) {
	switch g.Decide(ctx) {
	case Process:
		return true, nil
	case Skip:
		return false, nil
	}
	n, notifies := g.src.(Notifier)
	var tick *time.Ticker
	if !notifies {
		tick = time.NewTicker(g.poll)
		defer tick.Stop()
	}
	for {
		var wake <-chan struct{}
		var ticks <-chan time.Time
		if notifies {
			wake = n.Changed() // before the check, so no change is missed
		} else {
			ticks = tick.C
		}
		if g.On(ctx) {
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		select {
		case <-wake:
		case <-ticks:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}
