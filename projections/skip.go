package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jetsource/jetsource"
)

// Skipped is an event a projection skipped: a malformed message (see
// [jetsource.Event.Malformed]) or an event its apply function refused
// with [ErrSkipEvent].
type Skipped struct {
	// Sequence and Subject identify the event (Subject as stored).
	Sequence uint64 `json:"sequence"`
	Subject  string `json:"subject"`
	// Reason tells why it was skipped.
	Reason string `json:"reason"`
}

// skipLog collects the events skipped by one Apply; the caller (runner or
// rebuild) counts and logs them once the batch committed.
type skipLog struct {
	mu  sync.Mutex
	all []Skipped
}

type skipKey struct{}

// withSkipLog returns a context whose Apply calls record their skips in l.
func withSkipLog(ctx context.Context, l *skipLog) context.Context {
	return context.WithValue(ctx, skipKey{}, l)
}

// noteSkip records a skipped event in the context's skip log, if any.
func noteSkip(ctx context.Context, e jetsource.Event, reason string) {
	l, _ := ctx.Value(skipKey{}).(*skipLog)
	if l == nil {
		return
	}
	subj := e.Subject.String()
	if e.Malformed != nil {
		subj = e.Malformed.Subject
	}
	l.mu.Lock()
	l.all = append(l.all, Skipped{Sequence: e.Sequence, Subject: subj, Reason: reason})
	l.mu.Unlock()
}

// take returns the skips recorded and empties the log.
func (l *skipLog) take() []Skipped {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.all
	l.all = nil
	return out
}

// logSkips warns about each skipped event.
func logSkips(log *slog.Logger, projection string, skips []Skipped) {
	for _, s := range skips {
		log.Warn("event skipped", "projection", projection, "sequence", s.Sequence, "subject", s.Subject, "reason", s.Reason)
	}
}

// applyOne runs an apply function on one event of a batch: it skips a
// malformed event unless the definition takes them, turns a panic into a
// [*PanicError], and reports whether the function asked to skip the
// event ([ErrSkipEvent]). The error returned is the function's, for the
// caller to wrap in an [*ApplyError].
func applyOne(ctx context.Context, takesMalformed bool, e jetsource.Event, apply func() error) (skipped bool, err error) {
	if e.Malformed != nil && !takesMalformed {
		noteSkip(ctx, e, "malformed: "+e.Malformed.Reason)
		return true, nil
	}
	err = safely(apply)
	if errors.Is(err, ErrSkipEvent) {
		noteSkip(ctx, e, err.Error())
		return true, nil
	}
	return false, err
}

// safely calls f, turning a panic into a [*PanicError].
func safely(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = recovered(v)
		}
	}()
	return f()
}

// applySafely calls m.Apply, turning a panic of a [Model] of the user's
// own into an error.
func applySafely(ctx context.Context, m Model, after uint64, events []jetsource.Event) (cp uint64, err error) {
	defer func() {
		if v := recover(); v != nil {
			cp, err = after, fmt.Errorf("projections: apply: %w", recovered(v))
		}
	}()
	return m.Apply(ctx, after, events)
}
