package jetsource

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource/subjects"
)

// MemoryStore is an in-memory [Store] for unit tests. It keeps the
// semantics of the JetStream store (sequences from 1, de-duplication by
// event id within a window, per-aggregate expectations, the same errors)
// and passes the same compliance suite, but keeps nothing across restarts.
// It is safe for concurrent use.
type MemoryStore struct {
	name       string
	source     string
	maxPayload int
	window     time.Duration
	now        func() time.Time

	mu      sync.RWMutex
	events  []Event // events[i] has sequence i+1; never modified once appended
	ids     map[string]dedupEntry
	changed chan struct{} // closed and replaced on every append
}

type dedupEntry struct {
	seq uint64
	at  time.Time
}

// MemoryOption configures a [MemoryStore].
type MemoryOption func(*MemoryStore) error

// MemoryStreamName sets the stream name reported in acks and events
// (default "memory").
func MemoryStreamName(name string) MemoryOption {
	return func(s *MemoryStore) error {
		if name == "" {
			return fmt.Errorf("%w: empty stream name", ErrInvalidOption)
		}
		s.name = name
		return nil
	}
}

// MemorySource sets the source of events that name none (default
// [DefaultSource]).
func MemorySource(source string) MemoryOption {
	return func(s *MemoryStore) error {
		if source == "" {
			return fmt.Errorf("%w: empty source", ErrInvalidOption)
		}
		s.source = source
		return nil
	}
}

// MemoryMaxPayload sets the largest event (headers and data) accepted
// (default 1 MiB, the NATS default).
func MemoryMaxPayload(n int) MemoryOption {
	return func(s *MemoryStore) error {
		if n <= 0 {
			return fmt.Errorf("%w: max payload %d must be positive", ErrInvalidOption, n)
		}
		s.maxPayload = n
		return nil
	}
}

// MemoryDuplicateWindow sets how long event ids are remembered for
// de-duplication (default 2 minutes, the JetStream default).
func MemoryDuplicateWindow(d time.Duration) MemoryOption {
	return func(s *MemoryStore) error {
		if d <= 0 {
			return fmt.Errorf("%w: duplicate window %v must be positive", ErrInvalidOption, d)
		}
		s.window = d
		return nil
	}
}

// NewMemoryStore returns an empty in-memory store. It returns an error
// matching [ErrInvalidOption] for a bad option.
func NewMemoryStore(opts ...MemoryOption) (*MemoryStore, error) {
	s := &MemoryStore{
		name: "memory", source: DefaultSource, maxPayload: 1 << 20, window: 2 * time.Minute,
		now: time.Now, ids: map[string]dedupEntry{}, changed: make(chan struct{}),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

var _ Store = (*MemoryStore)(nil)

// Append implements [Store.Append].
func (s *MemoryStore) Append(ctx context.Context, e Event, opts ...AppendOption) (Ack, error) {
	if err := ctx.Err(); err != nil {
		return Ack{}, err
	}
	o, err := ApplyAppendOptions(opts...)
	if err != nil {
		return Ack{}, err
	}
	if e, err = s.prepare(e); err != nil {
		return Ack{}, err
	}
	conds, err := EventConditions(e, o)
	if err != nil {
		return Ack{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range conds {
		if last := s.lastLocked(c.Filter); !c.Holds(last) {
			// A retry of an append that did succeed: the last event is ours.
			if last > 0 && s.events[last-1].ID == e.ID {
				if err := s.reusedLocked(e, last, o.StoredWins); err != nil {
					return Ack{}, err
				}
				return Ack{Stream: s.name, Sequence: last, Duplicate: true}, nil
			}
			return Ack{}, c.Conflict(last, nil)
		}
	}
	if acks, ok := s.duplicatesLocked([]Event{e}); ok {
		if err := s.reusedLocked(e, acks[0].Sequence, o.StoredWins); err != nil {
			return Ack{}, err
		}
		return acks[0], nil
	}
	return s.storeLocked([]Event{e})[0], nil
}

// AppendBatch implements [Store.AppendBatch].
func (s *MemoryStore) AppendBatch(ctx context.Context, events []Event, opts ...AppendOption) ([]Ack, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, err := ApplyAppendOptions(opts...)
	if err != nil {
		return nil, err
	}
	events, err = PrepareBatch(events, o, func(e Event) (Event, error) { return s.prepare(e) })
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if acks, ok := s.duplicatesLocked(events); ok {
		for i, e := range events {
			if err := s.reusedLocked(e, acks[i].Sequence, o.StoredWins); err != nil {
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
		}
		return acks, nil
	}
	for _, e := range events {
		if d, ok := s.ids[e.ID]; ok && s.now().Sub(d.at) < s.window {
			return nil, fmt.Errorf("%w: event id %q was stored before, at sequence %d; a batch is stored whole or not at all", ErrInvalidEvent, e.ID, d.seq)
		}
	}
	for _, c := range o.Conditions {
		if last := s.lastLocked(c.Filter); !c.Holds(last) {
			return nil, c.Conflict(last, nil)
		}
	}
	return s.storeLocked(events), nil
}

func (s *MemoryStore) prepare(e Event) (Event, error) {
	if err := CheckSubject(e.Subject); err != nil {
		return e, err
	}
	e, err := Prepare(e.Clone(), s.source, s.now())
	if err != nil {
		return e, err
	}
	if size := MsgSize(e.Msg()); size > s.maxPayload {
		return e, fmt.Errorf("%w: event on %s is %d bytes, the maximum is %d", ErrPayloadTooLarge, e.Subject, size, s.maxPayload)
	}
	return e, nil
}

// reusedLocked returns an [*IDReusedError] when the event stored at seq
// (with e's id) has other content than e, unless storedWins.
func (s *MemoryStore) reusedLocked(e Event, seq uint64, storedWins bool) error {
	if d := ContentDiffers(e, s.events[seq-1]); d != nil && !storedWins {
		return &IDReusedError{ID: e.ID, Stream: s.name, Sequence: seq, Differs: d}
	}
	return nil
}

// duplicatesLocked returns the original acks when every event id was
// stored within the window.
func (s *MemoryStore) duplicatesLocked(events []Event) ([]Ack, bool) {
	now := s.now()
	acks := make([]Ack, len(events))
	for i, e := range events {
		d, ok := s.ids[e.ID]
		if !ok || now.Sub(d.at) >= s.window {
			return nil, false
		}
		acks[i] = Ack{Stream: s.name, Sequence: d.seq, Duplicate: true}
	}
	return acks, true
}

func (s *MemoryStore) storeLocked(events []Event) []Ack {
	now := s.now()
	acks := make([]Ack, len(events))
	for i, e := range events {
		e.Sequence = uint64(len(s.events)) + 1
		e.Stream = s.name
		e.Stored = now.UTC()
		s.events = append(s.events, e)
		s.ids[e.ID] = dedupEntry{seq: e.Sequence, at: now}
		acks[i] = Ack{Stream: s.name, Sequence: e.Sequence}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return acks
}

// MsgSize is the size of a NATS message on the wire: its encoded headers
// plus its data.
func MsgSize(m *nats.Msg) int {
	n := len(m.Data)
	if len(m.Header) > 0 {
		n += len("NATS/1.0\r\n\r\n")
	}
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

func (s *MemoryStore) lastLocked(f subjects.Filter) uint64 {
	for i := len(s.events) - 1; i >= 0; i-- {
		if f.Match(s.events[i].Subject) {
			return uint64(i) + 1
		}
	}
	return 0
}

// snapshot returns the stored events and the channel closed by the next
// append.
func (s *MemoryStore) snapshot() ([]Event, <-chan struct{}) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.events, s.changed
}

// Read implements [Store.Read].
func (s *MemoryStore) Read(ctx context.Context, q Query) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if err := q.Validate(); err != nil {
			yield(Event{}, err)
			return
		}
		next := max(q.FromSequence, 1)
		n := 0
		for {
			evs, changed := s.snapshot()
			for ; next <= uint64(len(evs)); next++ {
				if err := ctx.Err(); err != nil {
					yield(Event{}, err)
					return
				}
				e := evs[next-1]
				if !q.Match(e) {
					continue
				}
				if !yield(e.Clone(), nil) {
					return
				}
				if n++; q.Limit > 0 && n >= q.Limit {
					return
				}
			}
			if !q.Follow {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}
}

// Load implements [Store.Load].
func (s *MemoryStore) Load(ctx context.Context, aggregate subjects.Subject, from uint64) iter.Seq2[Event, error] {
	f, err := AggregateFilter(aggregate)
	if err != nil {
		return func(yield func(Event, error) bool) { yield(Event{}, err) }
	}
	return s.Read(ctx, Query{Filters: []subjects.Filter{f}, FromSequence: from})
}

// Latest implements [Store.Latest].
func (s *MemoryStore) Latest(ctx context.Context, filter subjects.Filter) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if filter.IsZero() {
			yield(Event{}, fmt.Errorf("%w: empty filter", ErrInvalidSubject))
			return
		}
		evs, _ := s.snapshot()
		last := map[subjects.Subject]int{}
		for i, e := range evs {
			if filter.Match(e.Subject) {
				last[e.Subject] = i
			}
		}
		for i, e := range evs {
			if j, ok := last[e.Subject]; !ok || j != i {
				continue
			}
			if err := ctx.Err(); err != nil {
				yield(Event{}, err)
				return
			}
			if !yield(e.Clone(), nil) {
				return
			}
		}
	}
}

// LastSequence implements [Store.LastSequence].
func (s *MemoryStore) LastSequence(ctx context.Context, filter subjects.Filter) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if filter.IsZero() {
		return 0, fmt.Errorf("%w: empty filter", ErrInvalidSubject)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastLocked(filter), nil
}
