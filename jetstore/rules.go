package jetstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// DefaultReservedPrefixes are the subject prefixes a store refuses to
// append to unless [WithReservedPrefixes] says otherwise: the command bus
// ("cmd", see handlers.DefaultPrefix).
var DefaultReservedPrefixes = []string{"cmd"}

// WithReservedPrefixes sets the subject prefixes no append may write,
// besides the system subjects ([jetsource.SystemSubject]): the command bus
// prefix and any other subjects that carry messages that are not events.
// A prefix is one or more literal tokens ("cmd", "ops.cmd"); the subjects
// under it (prefix.>) are refused with [jetsource.ErrForbiddenSubject].
// Default [DefaultReservedPrefixes]; no prefixes at all lifts the rule.
func WithReservedPrefixes(prefixes ...string) Option {
	return func(s *Store) error {
		for _, p := range prefixes {
			if _, err := subjects.Parse(p); err != nil || strings.ContainsAny(p, "*>") {
				return fmt.Errorf("%w: reserved prefix %q must be literal tokens", jetsource.ErrInvalidOption, p)
			}
		}
		s.reserved = append([]string(nil), prefixes...)
		return nil
	}
}

// reservedPrefix returns the reserved prefix subject is under, if any.
func reservedPrefix(prefixes []string, subject string) (string, bool) {
	for _, p := range prefixes {
		if subject == p || strings.HasPrefix(subject, p+".") {
			return p, true
		}
	}
	return "", false
}

// CheckSubject returns nil when an event may be appended on subject, and
// otherwise an error matching [jetsource.ErrForbiddenSubject] that names
// the rule: a system subject ([jetsource.SystemSubject]), a reserved
// prefix ([WithReservedPrefixes]), or a subject the stream does not
// capture (that error also matches [jetsource.ErrStreamNotFound]). The stream's subjects are those read when the store was opened;
// a subject outside them is checked again against the stream's current
// configuration before it is refused. Every append of the store runs this
// check before it sends anything; publishers and commands may run it
// earlier to refuse at once.
func (s *Store) CheckSubject(ctx context.Context, subject subjects.Subject) error {
	if err := jetsource.CheckSubject(subject); err != nil {
		return err
	}
	subj := subject.String()
	if p, ok := reservedPrefix(s.reserved, subj); ok {
		return fmt.Errorf("%w: subject %q is under the reserved prefix %s.> (the command bus): events are never written there", jetsource.ErrForbiddenSubject, subj, p)
	}
	if s.capturedNow(subject) {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.loadCaptures(ctx); err != nil {
		// The stream cannot be read now: let the server decide, as before.
		return nil
	}
	if s.capturedNow(subject) {
		return nil
	}
	s.capMu.RLock()
	names := make([]string, len(s.captures))
	for i, f := range s.captures {
		names[i] = f.String()
	}
	s.capMu.RUnlock()
	err := fmt.Errorf("%w: stream %s does not capture %s (it captures %s)", jetsource.ErrForbiddenSubject, s.stream, subj, strings.Join(names, ", "))
	return alsoErr{err, jetsource.ErrStreamNotFound}
}

// alsoErr is err that also matches also, without naming it.
type alsoErr struct{ err, also error }

func (e alsoErr) Error() string   { return e.err.Error() }
func (e alsoErr) Unwrap() []error { return []error{e.err, e.also} }

// capturedNow reports whether the stream's subjects, as last read, capture
// subject. A stream whose subjects could not be parsed captures everything
// here: the server decides.
func (s *Store) capturedNow(subject subjects.Subject) bool {
	s.capMu.RLock()
	defer s.capMu.RUnlock()
	if len(s.captures) == 0 {
		return true
	}
	for _, f := range s.captures {
		if f.Match(subject) {
			return true
		}
	}
	return false
}

// loadCaptures reads the stream's configuration: the subjects it captures
// for events (its own internal guard subject aside), whether it captures
// its [jetsource.GuardSubject] and allows per-message TTLs, its replicas
// and size limits.
func (s *Store) loadCaptures(ctx context.Context) error {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return mapErr(s.js, err)
	}
	s.setConfig(st.CachedInfo())
	return nil
}

// setConfig records what the store needs of the stream's configuration.
func (s *Store) setConfig(info *jetstream.StreamInfo) {
	var captures []subjects.Filter
	guard := false
	for _, subj := range info.Config.Subjects {
		if subj == jetsource.GuardSubject(s.stream) {
			guard = true
			continue
		}
		if f, err := subjects.ParseFilter(subj); err == nil {
			captures = append(captures, f)
		}
	}
	s.capMu.Lock()
	defer s.capMu.Unlock()
	s.captures = captures
	s.guardSubject = guard
	s.guardTTL = info.Config.AllowMsgTTL
	s.replicas = info.Config.Replicas
	s.maxBytes = info.Config.MaxBytes
	// A stream without a raft group (a server outside a cluster) checks
	// a message's headers as it stores it: see lookupID.
	s.raft = info.Cluster != nil && info.Cluster.RaftGroup != ""
}

// checkEvents checks the subjects of a batch's events.
func (s *Store) checkEvents(ctx context.Context, events []jetsource.Event) error {
	for i, e := range events {
		if err := s.CheckSubject(ctx, e.Subject); err != nil {
			if len(events) == 1 {
				return err
			}
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return nil
}
