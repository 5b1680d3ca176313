package flags

import (
	"fmt"
	"log/slog"
	"maps"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
)

// Option configures a [Set] made by [New].
type Option func(*options) error

type options struct {
	kv       jetstream.KeyValue
	defs     Definitions
	recorder Recorder
	logger   *slog.Logger
	timeout  time.Duration
	resync   time.Duration
	now      func() time.Time
	declared bool
}

func defaultOptions() options {
	return options{timeout: 5 * time.Second, resync: time.Second, now: time.Now}
}

// WithBucket makes the Set read overrides from the key-value bucket kv
// (see [EnsureBucket]) and write them there with [Set.Put] and
// [Set.Unset]. Without a bucket a Set holds the file defaults only.
func WithBucket(kv jetstream.KeyValue) Option {
	return func(o *options) error {
		if kv == nil {
			return fmt.Errorf("%w: nil bucket", ErrInvalidOption)
		}
		o.kv = kv
		return nil
	}
}

// WithDefinitions gives the flags' defaults and descriptions, usually
// from [LoadFile]. Every name must be valid ([ValidName]).
func WithDefinitions(d Definitions) Option {
	return func(o *options) error {
		for name := range d {
			if err := ValidName(name); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidOption, err)
			}
		}
		o.defs = maps.Clone(d)
		return nil
	}
}

// WithRecorder makes [Set.Put] and [Set.Unset] record each change with r
// before they write it. Without a recorder changes are not audited.
func WithRecorder(r Recorder) Option {
	return func(o *options) error {
		if r == nil {
			return fmt.Errorf("%w: nil recorder", ErrInvalidOption)
		}
		o.recorder = r
		return nil
	}
}

// RequireDeclared makes [Set.Put] refuse, with [ErrUndeclared], a flag
// that the definitions ([WithDefinitions]) do not declare and the bucket
// does not hold, so that a typo does not create a flag nobody reads. The
// error suggests the closest declared name. [AllowUndeclared] lets one
// Put create such a flag. [Set.Unset] is never refused.
func RequireDeclared() Option {
	return func(o *options) error {
		o.declared = true
		return nil
	}
}

// WithLogger sets the logger of bucket entries that are no flag values
// (default: no log).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.logger = l
		return nil
	}
}

// WithTimeout bounds Put, Unset and Refresh when their context has no
// deadline (default 5s).
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v must be positive", ErrInvalidOption, d)
		}
		o.timeout = d
		return nil
	}
}

// WithResync sets how often a watching Set checks that its watch has
// delivered the bucket's last revision (default 1s; 0 turns the check
// off). See [Set.Watch].
func WithResync(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("%w: resync interval %v is negative", ErrInvalidOption, d)
		}
		o.resync = d
		return nil
	}
}

// WriteOption configures one [Set.Put] or [Set.Unset].
type WriteOption func(*writeOptions) error

type writeOptions struct {
	actor           string
	allowUndeclared bool
}

// AllowUndeclared lets one [Set.Put] on a Set made with [RequireDeclared]
// create a flag that the definitions do not declare.
func AllowUndeclared() WriteOption {
	return func(o *writeOptions) error {
		o.allowUndeclared = true
		return nil
	}
}

// WithActor names who makes the change (a user or service); it is
// passed to the [Recorder] and stored with the value. It must pass
// [ValidActor].
func WithActor(actor string) WriteOption {
	return func(o *writeOptions) error {
		if err := ValidActor(actor); err != nil {
			return err
		}
		o.actor = actor
		return nil
	}
}

// ValidActor returns nil for an actor name that [WithActor] accepts: at
// most 256 bytes of valid UTF-8 without control characters. Otherwise it
// returns an error matching [ErrInvalidOption].
func ValidActor(actor string) error {
	if len(actor) > 256 {
		return fmt.Errorf("%w: actor longer than 256 bytes", ErrInvalidOption)
	}
	for _, r := range actor {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("%w: actor %q holds a control character or invalid UTF-8", ErrInvalidOption, actor)
		}
	}
	return nil
}
