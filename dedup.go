package jetsource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jetsource/jetsource/subjects"
)

// ContentHash returns the hex SHA-256 of what an event says: its type, data
// content type, data schema and data. Ids, times, sources and the
// extensions (actor, correlation and so on) are not part of it, so the
// same fact recorded twice by different requests hashes the same.
//
// JSON data is hashed in a canonical form (object keys sorted, no
// insignificant whitespace, numbers as written), so {"a":1, "b":2} and
// {"b":2,"a":1} are the same content. An empty type is derived from the
// subject as [Prepare] does; an empty content type with data present is
// application/json.
func ContentHash(e Event) string {
	typ := e.Type
	if typ == "" && !e.Subject.IsZero() {
		typ = TypeFromSubject(e.Subject)
	}
	ct := e.DataContentType
	if ct == "" && len(e.Data) > 0 {
		ct = "application/json"
	}
	data := e.Data
	if isJSONMediaType(ct) {
		if c, ok := canonicalJSON(data); ok {
			data = c
		}
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(typ), []byte(ct), []byte(e.DataSchema), data} {
		// Length-prefix each part so that no two different events share
		// an input.
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalJSON re-encodes JSON with sorted keys and no whitespace; numbers
// keep their text.
func canonicalJSON(b []byte) ([]byte, bool) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		return nil, false
	}
	out, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return nil, false
	}
	return out, true
}

// DedupOption selects the events that [WithContentDedup] de-duplicates.
type DedupOption func(*dedupConfig) error

type dedupConfig struct {
	types map[string]bool // nil: every type
}

// DedupTypes limits content de-duplication to events of these types
// (default: every event of the store).
func DedupTypes(types ...string) DedupOption {
	return func(c *dedupConfig) error {
		if len(types) == 0 {
			return fmt.Errorf("%w: DedupTypes needs at least one type", ErrInvalidOption)
		}
		if c.types == nil {
			c.types = make(map[string]bool)
		}
		for _, t := range types {
			if t == "" {
				return fmt.Errorf("%w: empty event type", ErrInvalidOption)
			}
			c.types[t] = true
		}
		return nil
	}
}

// maxDedupRetries bounds how often an append is retried when its subject
// moved between the content check and the append.
const maxDedupRetries = 5

// WithContentDedup returns a [Store] that writes an event only if it says
// something new: when an appended event's [ContentHash] equals that of the
// latest event on the same subject, nothing is written and the ack of that
// latest event is returned with Duplicate set. This is the opt-in content
// de-duplication for upstream systems that resend unchanged state; the
// id-based de-duplication of the store applies as well.
//
// Without options every event is checked; [DedupTypes] limits it to some
// types. Apply it to the store of one stream for a per-stream policy.
//
// The check is race free: the append carries the condition that the
// subject's latest event is still the one compared with, and when another
// writer moved the subject in between, the check runs again (up to five
// times, then the [*ConflictError] is returned). The cost is a lookup of
// the subject's latest event per append, and appends that carry their own
// conditions go through the transaction path (several conditions).
//
// In AppendBatch, each checked event is compared with the latest event on
// its subject, or with the batch's previous event on that subject: the
// duplicates are left out (their acks point at the stored events, with
// Duplicate set) and the others are appended as one transaction; a batch
// of nothing but duplicates writes nothing.
//
// Errors: those of s, and [ErrInvalidOption] for bad options.
func WithContentDedup(s Store, opts ...DedupOption) (Store, error) {
	var c dedupConfig
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	return &dedupStore{Store: s, cfg: c}, nil
}

type dedupStore struct {
	Store
	cfg dedupConfig
}

func (s *dedupStore) applies(e Event) bool {
	if s.cfg.types == nil {
		return true
	}
	typ := e.Type
	if typ == "" && !e.Subject.IsZero() {
		typ = TypeFromSubject(e.Subject)
	}
	return s.cfg.types[typ]
}

// latest returns the latest event on the literal subject (ok false: none).
func latestOn(ctx context.Context, s Store, subject subjects.Subject) (Event, bool, error) {
	for e, err := range s.Latest(ctx, subject.Filter()) {
		if err != nil {
			return Event{}, false, err
		}
		if e.Subject == subject {
			return e, true, nil
		}
	}
	return Event{}, false, nil
}

func (s *dedupStore) Append(ctx context.Context, e Event, opts ...AppendOption) (Ack, error) {
	if e.Subject.IsZero() || !s.applies(e) {
		return s.Store.Append(ctx, e, opts...)
	}
	hash := ContentHash(e)
	var err error
	for range maxDedupRetries {
		var last Event
		var ok bool
		last, ok, err = latestOn(ctx, s.Store, e.Subject)
		if err != nil {
			return Ack{}, err
		}
		var seq uint64
		if ok {
			if ContentHash(last) == hash {
				// Nothing is written, but the caller's own conditions
				// still decide between a duplicate and a conflict.
				if err := s.checkConditions(ctx, e, opts); err != nil {
					return Ack{}, err
				}
				return Ack{Stream: last.Stream, Sequence: last.Sequence, Duplicate: true}, nil
			}
			seq = last.Sequence
		}
		guard := e.Subject.Filter()
		var ack Ack
		ack, err = s.Store.Append(ctx, e, append(slices.Clone(opts), ExpectLast(guard, seq))...)
		if !isGuardConflict(err, guard) {
			return ack, err
		}
	}
	return Ack{}, err
}

// isGuardConflict reports whether err is a conflict of the de-duplication
// guard on filter g (the caller's own conditions fail for good).
func isGuardConflict(err error, g subjects.Filter) bool {
	var ce *ConflictError
	return errors.As(err, &ce) && ce.Filter == g.String() && !ce.ReadPosition
}

func (s *dedupStore) AppendBatch(ctx context.Context, events []Event, opts ...AppendOption) ([]Ack, error) {
	if len(events) == 0 || len(events) > MaxBatch {
		return s.Store.AppendBatch(ctx, events, opts...)
	}
	o, err := ApplyAppendOptions(opts...)
	if err != nil {
		return nil, err
	}
	own := make(map[string]bool, len(o.Conditions))
	for _, c := range o.Conditions {
		own[c.Filter.String()] = true
	}
	for range maxDedupRetries {
		var acks []Ack
		acks, err = s.appendBatchOnce(ctx, events, opts)
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.ReadPosition || own[ce.Filter] {
			return acks, err
		}
		// An exact conflict on one of the de-duplication guards: another
		// writer moved a subject in between, check again.
	}
	return nil, err
}

// checkConditions checks the conditions of an append that writes nothing
// (a content duplicate) against the store as it is now: the result is the
// conflict the append would have met, or nil.
func (s *dedupStore) checkConditions(ctx context.Context, e Event, opts []AppendOption) error {
	o, err := ApplyAppendOptions(opts...)
	if err != nil {
		return err
	}
	conds, err := EventConditions(e, o)
	if err != nil {
		return err
	}
	return checkAll(ctx, s.Store, conds)
}

func checkAll(ctx context.Context, st Store, conds []Condition) error {
	for _, c := range conds {
		last, err := st.LastSequence(ctx, c.Filter)
		if err != nil {
			return err
		}
		if !c.Holds(last) {
			return c.Conflict(last, nil)
		}
	}
	return nil
}

func (s *dedupStore) appendBatchOnce(ctx context.Context, events []Event, opts []AppendOption) ([]Ack, error) {
	type head struct {
		hash    string
		ack     Ack
		seq     uint64 // stored sequence guarded (0: none)
		inBatch bool   // hash is that of an event of this batch
	}
	heads := make(map[subjects.Subject]*head)
	acks := make([]Ack, len(events))
	var keep []Event
	var keepIdx []int
	var guards []AppendOption
	for i, e := range events {
		if e.Subject.IsZero() || !s.applies(e) {
			keep, keepIdx = append(keep, e), append(keepIdx, i)
			continue
		}
		h, seen := heads[e.Subject]
		if !seen {
			last, ok, err := latestOn(ctx, s.Store, e.Subject)
			if err != nil {
				return nil, err
			}
			h = &head{}
			if ok {
				h.hash, h.seq = ContentHash(last), last.Sequence
				h.ack = Ack{Stream: last.Stream, Sequence: last.Sequence, Duplicate: true}
			}
			heads[e.Subject] = h
			guards = append(guards, ExpectLast(e.Subject.Filter(), h.seq))
		}
		hash := ContentHash(e)
		if h.hash == hash && (h.inBatch || h.ack.Sequence != 0) {
			// A duplicate of the stored latest event, or of an earlier
			// event of this batch (whose ack is known once it is stored).
			acks[i] = h.ack
			acks[i].Duplicate = true
			continue
		}
		h.hash, h.ack, h.inBatch = hash, Ack{}, true
		keep, keepIdx = append(keep, e), append(keepIdx, i)
	}
	if len(keep) == 0 {
		// Nothing to write; the caller's conditions still apply.
		o, err := ApplyAppendOptions(opts...)
		if err != nil {
			return nil, err
		}
		if err := checkAll(ctx, s.Store, o.Conditions); err != nil {
			return nil, err
		}
		return acks, nil
	}
	stored, err := s.Store.AppendBatch(ctx, keep, append(slices.Clone(opts), guards...)...)
	if err != nil {
		return nil, err
	}
	for j, i := range keepIdx {
		acks[i] = stored[j]
	}
	// Fill in duplicates of events stored by this batch.
	last := make(map[subjects.Subject]Ack)
	for i, e := range events {
		switch {
		case !acks[i].Duplicate:
			last[e.Subject] = acks[i]
		case acks[i].Sequence == 0:
			a := last[e.Subject]
			a.Duplicate = true
			acks[i] = a
		}
	}
	return acks, nil
}

// Read, Load, Latest and LastSequence are those of the wrapped store.
var _ Store = (*dedupStore)(nil)
