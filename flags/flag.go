package flags

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// MaxNameLen is the longest flag name, in bytes.
const MaxNameLen = 128

// ValidName returns nil when name can name a flag, and otherwise an error
// matching [ErrInvalidName] that quotes it. A name is 1 to [MaxNameLen]
// bytes of A-Z a-z 0-9 _ . -, neither starting nor ending with a dot and
// without two dots in a row, so it is always a valid key of a NATS
// key-value bucket.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %q is longer than %d bytes", ErrInvalidName, name, MaxNameLen)
	case name[0] == '.' || name[len(name)-1] == '.':
		return fmt.Errorf("%w: %q starts or ends with a dot", ErrInvalidName, name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("%w: %q has two dots in a row", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' {
			continue
		}
		return fmt.Errorf("%w: %q holds %q; use only A-Z a-z 0-9 _ . -", ErrInvalidName, name, rune(c))
	}
	return nil
}

// Value is the state of a flag in one source: unset, off or on.
type Value int8

const (
	// Unset means the source says nothing about the flag.
	Unset Value = iota
	// Off means the source turns the flag off.
	Off
	// On means the source turns the flag on.
	On
)

// ValueOf returns On for true and Off for false.
func ValueOf(on bool) Value {
	if on {
		return On
	}
	return Off
}

// String returns "unset", "off" or "on".
func (v Value) String() string {
	switch v {
	case On:
		return "on"
	case Off:
		return "off"
	case Unset:
		return "unset"
	}
	return fmt.Sprintf("Value(%d)", int8(v))
}

// MarshalText returns the value's String.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText parses a value with [ParseValue]; it returns an error
// matching [ErrInvalidValue] for anything else.
func (v *Value) UnmarshalText(b []byte) error {
	x, err := ParseValue(string(b))
	if err != nil {
		return err
	}
	*v = x
	return nil
}

// ParseValue parses on, off or unset; true/false and 1/0 are accepted for
// on and off, in any case, with surrounding space. Anything else is an
// error matching [ErrInvalidValue].
func ParseValue(s string) (Value, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "true", "1":
		return On, nil
	case "off", "false", "0":
		return Off, nil
	case "unset":
		return Unset, nil
	}
	return Unset, fmt.Errorf("%w: %q is not on, off or unset", ErrInvalidValue, s)
}

// Source tells where the value of a flag comes from.
type Source string

const (
	// SourceDefault: no source gives a value, so the flag is off. A flag
	// that a file declares without a value has this source.
	SourceDefault Source = "default"
	// SourceFile: the value is the file's default.
	SourceFile Source = "file"
	// SourceKV: the value is set in the key-value bucket, which overrides
	// the file.
	SourceKV Source = "kv"
)

// Flag is the state of one flag in a [Set].
type Flag struct {
	// Name is the flag's name.
	Name string `json:"name"`
	// Enabled is the flag's effective value.
	Enabled bool `json:"value"`
	// Source is where Enabled comes from.
	Source Source `json:"source"`
	// Description is the file's description of the flag.
	Description string `json:"description,omitempty"`
	// Default is the file's value (Unset when the file gives none).
	Default Value `json:"default"`
	// Override is the bucket's value (Unset when the key is absent).
	Override Value `json:"override"`
	// Revision is the bucket revision of the override (0 without one).
	Revision uint64 `json:"revision,omitempty"`
	// ChangeID, Actor and Updated describe the override when it was
	// written by [Set.Put]; a value written by another tool has none.
	ChangeID string    `json:"change,omitempty"`
	Actor    string    `json:"actor,omitempty"`
	Updated  time.Time `json:"updated,omitzero"`
}

// Op is the kind of a [Change].
type Op string

const (
	// OpSet: the bucket now holds a value for the flag.
	OpSet Op = "set"
	// OpUnset: the bucket no longer holds a value; the file default
	// applies again.
	OpUnset Op = "unset"
)

// Change describes one change of a flag: what [Set.Put] and [Set.Unset]
// pass to the [Recorder] and return, and what the functions registered
// with [Set.OnChange] receive.
type Change struct {
	// ID identifies a change made by [Set.Put] or [Set.Unset]: the
	// Recorder should use it as the id of its record (an event id), and a
	// value written by Put carries it in the bucket, which links the two.
	// Empty for a change made by another tool.
	ID string `json:"id,omitempty"`
	// Name is the flag's name.
	Name string `json:"name"`
	// Op is set or unset.
	Op Op `json:"op"`
	// Value and Source are the flag's effective value after the change
	// and where it comes from.
	Value  bool   `json:"value"`
	Source Source `json:"source"`
	// Previous and PreviousSource are the same before the change.
	Previous       bool   `json:"previous"`
	PreviousSource Source `json:"previous_source"`
	// Actor is who made the change, when known.
	Actor string `json:"actor,omitempty"`
	// Time is when the change was made.
	Time time.Time `json:"time,omitzero"`
	// Revision is the bucket revision of the change: 0 for a change
	// passed to the Recorder (not written yet) and for an unset.
	Revision uint64 `json:"revision,omitempty"`
	// Noop reports a Put or Unset that changed nothing because the bucket
	// already held that state; nothing was recorded or written.
	Noop bool `json:"noop,omitempty"`
}

// Enabler reports whether a named flag is on. It is asked with the
// context of the work it guards, like [log/slog.Handler.Enabled], and
// must be fast and safe for concurrent use. [Static], [*Var] and [*Set]
// implement it.
type Enabler interface {
	Enabled(ctx context.Context, name string) bool
}

// Looker is an [Enabler] that also tells whether any source sets the flag.
type Looker interface {
	Enabler
	// Lookup returns the flag's value and whether any source sets it.
	Lookup(ctx context.Context, name string) (value, ok bool)
}

// Notifier is implemented by flag sources whose values change at run
// time. The channel returned by Changed is closed at the next change of
// any flag; ask again for the one after.
type Notifier interface {
	Changed() <-chan struct{}
}

var (
	_ Looker   = Static(nil)
	_ Looker   = (*Var)(nil)
	_ Notifier = (*Var)(nil)
	_ Looker   = (*Set)(nil)
	_ Notifier = (*Set)(nil)
)

// Static is a fixed set of flags: a flag is on when it is in the map with
// the value true. Its zero value has every flag off.
type Static map[string]bool

// Enabled reports whether the map holds true for name.
func (s Static) Enabled(_ context.Context, name string) bool { return s[name] }

// Lookup returns the map's value for name and whether it holds one.
func (s Static) Lookup(_ context.Context, name string) (value, ok bool) {
	value, ok = s[name]
	return value, ok
}
