package jetstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// DefaultStreamName is the name of the event stream when none is given.
const DefaultStreamName = "EVENTS"

// StreamConfig describes the event stream that [Provision] creates.
type StreamConfig struct {
	// Name is the stream name (default [DefaultStreamName]).
	Name string `json:"name" yaml:"name"`
	// Subjects are the subject roots the stream captures, such as
	// "users.>". At least one is required.
	Subjects []string `json:"subjects" yaml:"subjects"`
	// Replicas is the number of copies in a cluster (default 1).
	Replicas int `json:"replicas" yaml:"replicas"`
	// Duplicates is the window in which an event id is stored only once
	// (default 2 minutes).
	Duplicates time.Duration `json:"duplicates" yaml:"duplicates"`
	// Memory keeps the stream in memory instead of files (tests only).
	Memory bool `json:"memory" yaml:"memory"`
	// MaxMsgSize limits one event, headers included (0: the server's
	// maximum payload).
	MaxMsgSize int32 `json:"max_msg_size" yaml:"max_msg_size"`
	// MaxBytes limits the stream's size on disk (0: no limit). A full
	// stream refuses new events with [jetsource.ErrStorageFull]; it never
	// drops old ones.
	MaxBytes int64 `json:"max_bytes" yaml:"max_bytes"`
	// AllowDelete lets operators delete single events. Off by default:
	// events are facts.
	AllowDelete bool `json:"allow_delete" yaml:"allow_delete"`
	// ReservedPrefixes are subject prefixes the stream must not capture:
	// the command bus's (nil: [DefaultReservedPrefixes]). See
	// [WithReservedPrefixes].
	ReservedPrefixes []string `json:"reserved_prefixes,omitempty" yaml:"reserved_prefixes,omitempty"`
}

func (c *StreamConfig) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultStreamName
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = 2 * time.Minute
	}
}

// Validate reports every problem of the configuration at once, each
// matching [jetsource.ErrInvalidOption] or [jetsource.ErrInvalidSubject].
// Stream subjects may not overlap system subjects
// ([jetsource.SystemSubject]: $JS.>, $KV.>, _INBOX.>, …, jetsource's own
// _jetsource.>) or the reserved prefixes (the command bus, cmd.> by
// default); such an overlap also matches [jetsource.ErrForbiddenSubject].
func (c StreamConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if !validStreamName(c.Name) {
		errs = append(errs, fmt.Errorf("%w: stream name %q may not contain spaces, '.', '*', '>', '/' or '\\'", jetsource.ErrInvalidOption, c.Name))
	}
	if len(c.Subjects) == 0 {
		errs = append(errs, fmt.Errorf("%w: stream %s captures no subjects", jetsource.ErrInvalidOption, c.Name))
	}
	var fs []subjects.Filter
	for _, s := range c.Subjects {
		f, err := subjects.ParseFilter(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: stream subject: %w", jetsource.ErrInvalidSubject, err))
			continue
		}
		if t := f.Tokens(); t[0] == "*" || t[0] == ">" {
			errs = append(errs, fmt.Errorf("%w: stream subject %q must start with a literal token (a leading wildcard would capture the server's own API subjects)", jetsource.ErrInvalidSubject, s))
		} else if jetsource.SystemSubject(t[0]) {
			errs = append(errs, fmt.Errorf("%w: %w: stream subject %q is a system subject: an event stream never captures $JS.>, $KV.>, $O.>, $SYS.> (any subject starting with $), _INBOX.> or _jetsource.>", jetsource.ErrInvalidSubject, jetsource.ErrForbiddenSubject, s))
		} else {
			for _, p := range c.reserved() {
				if r, err := subjects.ParseFilter(p + ".>"); err == nil && (f.Overlaps(r) || f.String() == p) {
					errs = append(errs, fmt.Errorf("%w: %w: stream subject %q overlaps the reserved prefix %s.> (the command bus): commands are not events", jetsource.ErrInvalidSubject, jetsource.ErrForbiddenSubject, s, p))
				}
			}
		}
		for _, g := range fs {
			if f.Overlaps(g) {
				errs = append(errs, fmt.Errorf("%w: stream subjects %q and %q overlap", jetsource.ErrInvalidSubject, g.String(), s))
			}
		}
		fs = append(fs, f)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("%w: replicas %d must be between 1 and 5", jetsource.ErrInvalidOption, c.Replicas))
	}
	if c.Duplicates < 0 {
		errs = append(errs, fmt.Errorf("%w: negative duplicate window %v", jetsource.ErrInvalidOption, c.Duplicates))
	}
	if c.MaxMsgSize < 0 {
		errs = append(errs, fmt.Errorf("%w: negative max message size %d", jetsource.ErrInvalidOption, c.MaxMsgSize))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: negative max bytes %d", jetsource.ErrInvalidOption, c.MaxBytes))
	}
	for _, p := range c.ReservedPrefixes {
		if _, err := subjects.Parse(p); err != nil || strings.ContainsAny(p, "*>") {
			errs = append(errs, fmt.Errorf("%w: reserved prefix %q must be literal tokens", jetsource.ErrInvalidOption, p))
		}
	}
	return errors.Join(errs...)
}

func (c StreamConfig) reserved() []string {
	if c.ReservedPrefixes == nil {
		return DefaultReservedPrefixes
	}
	return c.ReservedPrefixes
}

func validStreamName(n string) bool {
	if n == "" || len(n) > 255 {
		return false
	}
	for _, c := range n {
		switch c {
		case ' ', '.', '*', '>', '/', '\\', '\t', '\n', '\r':
			return false
		}
	}
	return true
}

// jetStreamConfig is the stream configuration Provision sends.
func (c StreamConfig) jetStreamConfig() jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if c.Memory {
		storage = jetstream.MemoryStorage
	}
	maxSize := c.MaxMsgSize
	if maxSize == 0 {
		maxSize = -1
	}
	// A size limit refuses new events and never drops old ones: events
	// are facts.
	discard, maxBytes := jetstream.DiscardOld, int64(-1)
	if c.MaxBytes > 0 {
		discard, maxBytes = jetstream.DiscardNew, c.MaxBytes
	}
	return jetstream.StreamConfig{
		Name:               c.Name,
		Description:        "jetsource event stream",
		Subjects:           append(slices.Clip(c.Subjects), jetsource.GuardSubject(c.Name)),
		Retention:          jetstream.LimitsPolicy,
		Discard:            discard,
		MaxMsgs:            -1,
		MaxBytes:           maxBytes,
		MaxAge:             0,
		MaxMsgSize:         maxSize,
		MaxMsgsPerSubject:  -1,
		Storage:            storage,
		Replicas:           c.Replicas,
		Duplicates:         c.Duplicates,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		DenyDelete:         !c.AllowDelete,
		DenyPurge:          !c.AllowDelete,
	}
}

// Provision creates the event stream, or updates it to the configuration
// when it exists. It returns an error matching [jetsource.ErrInvalidOption]
// or [jetsource.ErrInvalidSubject] for a bad configuration, and the
// server's error (wrapped) when it refuses the stream.
//
// While a cluster cannot place the replicas for a moment (no suitable
// peers, no leader, no answer), Provision asks again until ctx ends (5s
// when it has no deadline), then returns an error matching
// [jetsource.ErrUnavailable]; that is also the answer when the cluster
// has fewer servers than replicas.
func Provision(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	var st jetstream.Stream
	// Creating a replicated stream waits for its leader: give the first
	// attempt more time than a read gets.
	err := retryFrom(ctx, time.Second, func(ctx context.Context) error {
		var err error
		st, err = js.CreateOrUpdateStream(ctx, cfg.jetStreamConfig())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("jetstore: provision stream %s: %w", cfg.Name, mapErr(js, err))
	}
	return st, nil
}
