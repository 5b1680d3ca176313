package jetstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
)

// codeWrongLastMsgID is the server's refusal of a message whose expected
// last message id does not hold.
const codeWrongLastMsgID = 10070

// lookupGrace is the time a lookup of an append's outcome gets after the
// append's own context ran out: the answer decides between "stored" and
// "unknown", so it is worth a short wait past the deadline.
const lookupGrace = 250 * time.Millisecond

// lookupID asks the stream whether an event id was stored within its
// duplicate window, and at which sequence, without storing anything: it
// publishes a probe with the id as message id and an expected last message
// id that cannot hold. The server answers a stored id as a duplicate (it
// checks ids first) and refuses any other probe. A probe sent on the
// connection of an earlier publish reaches the stream after it, so the
// answer covers that publish too.
//
// found is false when the id is not stored (within the window); err is set
// when the stream could not be asked. A stream with a raft group (in a
// cluster) checks the expected last message id only when its replicas
// apply the message, after the proposal, which a failing probe must not
// reach: there lookupID finds an id only as the last message of its
// subject, and otherwise cannot tell (an error).
func (s *Store) lookupID(ctx context.Context, subject, id string) (seq uint64, found bool, err error) {
	if s.clustered() {
		m, err := s.get(ctx, map[string]any{"last_by_subj": subject})
		if err != nil && !errors.Is(err, jetsource.ErrNotFound) {
			return 0, false, err
		}
		if err == nil && m.Header.Get(jetsource.HeaderMsgID) == id {
			return m.Sequence, true, nil
		}
		return 0, false, errCannotTell
	}
	m := nats.NewMsg(subject)
	m.Header[jetsource.HeaderMsgID] = []string{id}
	m.Header[jetstream.ExpectedLastMsgIDHeader] = []string{"jetsource-probe-" + jetsource.NewID()}
	nc := s.js.Conn()
	before := nc.LastError()
	resp, err := nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return 0, false, denied(nc, err, before, subject)
	}
	var r struct {
		Sequence  uint64              `json:"seq"`
		Duplicate bool                `json:"duplicate"`
		Error     *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return 0, false, fmt.Errorf("bad answer %q: %w", resp.Data, err)
	}
	switch {
	case r.Error != nil && r.Error.ErrorCode == codeWrongLastMsgID:
		return 0, false, nil
	case r.Error != nil:
		return 0, false, r.Error
	case r.Duplicate:
		return r.Sequence, true, nil
	}
	// Stored: impossible unless the stream's last message id was the
	// probe's random one.
	return r.Sequence, true, fmt.Errorf("jetstore: the outcome probe of %s was stored at sequence %d", id, r.Sequence)
}

// errCannotTell is the answer of a lookup on a clustered stream that did
// not find the id where it looked.
var errCannotTell = errors.New("jetstore: the event id is not the last of its subject, and a clustered stream cannot be asked for it")

// clustered reports whether the stream has a raft group.
func (s *Store) clustered() bool {
	s.capMu.RLock()
	defer s.capMu.RUnlock()
	return s.raft
}

// lookupContext is the context of a lookup after an append that ran out of
// time: ctx while it lasts, else a short grace period.
func lookupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), lookupGrace)
}

// mayBeStored reports whether a publish that failed with err may have been
// stored: it went unanswered (a timeout, a lost connection), rather than
// being refused or never received.
func mayBeStored(err error) bool {
	if timeout(err) || errors.Is(err, context.Canceled) {
		return true
	}
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrConnectionDraining)
}

// outcome decides the result of a single append that failed with failure
// after one of its attempts (perhaps this last one) went unanswered: it
// looks the event up. Stored: the ack, not a duplicate when this call
// stored it (see [Store.storedAs]), or [jetsource.ErrIDReused] when its
// content differs. Not stored:
// failure. Cannot tell: an [*jetsource.UnknownOutcomeError].
func (s *Store) outcome(ctx context.Context, e jetsource.Event, failure error) (jetsource.Ack, error) {
	lctx, cancel := lookupContext(ctx)
	defer cancel()
	seq, found, err := s.lookupID(lctx, e.Subject.String(), e.ID)
	if err != nil {
		return jetsource.Ack{}, &jetsource.UnknownOutcomeError{IDs: []string{e.ID}, Err: fmt.Errorf("%w (and the lookup failed: %v)", failure, err)}
	}
	if !found {
		return jetsource.Ack{}, fmt.Errorf("%w (not stored)", failure)
	}
	own, err := s.storedAs(lctx, e, seq, true)
	if err != nil {
		return jetsource.Ack{}, err
	}
	return jetsource.Ack{Stream: s.stream, Sequence: seq, Duplicate: !own}, nil
}

// storedAs compares the event stored at seq, which has e's id, with e. It
// returns an [*jetsource.IDReusedError] when its content differs (unless
// the append was made with [jetsource.StoredWins]), and whether it is the
// very event this call prepared (own), which only a call with an
// unanswered attempt (mayBeOwn) can have stored.
//
// An event is this call's own when the stored one has e's time and
// transaction id: [jetsource.Prepare] gives an event without a time the
// time of its append, and a batch without a transaction id a new one, so
// an earlier call with the same ids stored other values, and its event is
// a duplicate. Only when the caller sets both to the values of the earlier
// call (a re-import of exported events, say) do the two calls look alike;
// the event is then taken for this call's. So is an event that cannot be
// read.
func (s *Store) storedAs(ctx context.Context, e jetsource.Event, seq uint64, mayBeOwn bool) (own bool, err error) {
	storedWins := ctx.Value(storedWinsKey{}) != nil
	if storedWins && !mayBeOwn {
		return false, nil
	}
	m, err := s.getMsg(ctx, seq)
	if err != nil {
		s.logger.Debug("cannot read the stored event to compare it", "id", e.ID, "sequence", seq, "err", err)
		return mayBeOwn, nil
	}
	if m.Header.Get(jetsource.HeaderMsgID) != e.ID {
		return mayBeOwn, nil // not the event of that id: nothing to compare
	}
	stored := jetsource.DecodeStored(m.Subject, m.Header, m.Data, jetsource.Stored{Stream: s.stream, Sequence: seq, Time: m.Time})
	if !storedWins {
		if d := jetsource.ContentDiffers(e, stored); d != nil {
			return false, &jetsource.IDReusedError{ID: e.ID, Stream: s.stream, Sequence: seq, Differs: d}
		}
	}
	return mayBeOwn && sameCall(e, stored), nil
}

// sameCall reports whether the stored event can be the appended one as
// this call prepared it: the same time and transaction id.
func sameCall(appended, stored jetsource.Event) bool {
	return appended.Time.Equal(stored.Time) && appended.TransactionID == stored.TransactionID
}

// reused returns an [*jetsource.IDReusedError] when the event stored at seq
// with e's id has other content than e; nil when it has e's content, or
// when it cannot be read (it is then taken for e).
func (s *Store) reused(ctx context.Context, e jetsource.Event, seq uint64) error {
	_, err := s.storedAs(ctx, e, seq, false)
	return err
}

// storedWinsKey marks the context of an append made with
// [jetsource.StoredWins]: its duplicates are not compared.
type storedWinsKey struct{}

// callContext is the context of an append's requests, marked with its
// options as the comparison of duplicates needs them.
func callContext(ctx context.Context, o jetsource.AppendOptions) context.Context {
	if o.StoredWins {
		return context.WithValue(ctx, storedWinsKey{}, true)
	}
	return ctx
}

// batchState is what the stream holds of a batch's event ids.
type batchState int

const (
	batchNone   batchState = iota // none of the ids is stored
	batchWhole                    // every id, contiguously, in order: the batch
	batchPartly                   // some ids, or all but not as this batch
)

// findBatch looks up the ids of a batch's events (see [Store.lookupID]):
// the acks (Duplicate set) when the batch is stored whole, and otherwise
// whether none or some of its ids are. An error means it cannot tell.
func (s *Store) findBatch(ctx context.Context, events []jetsource.Event) ([]jetsource.Ack, batchState, error) {
	if s.clustered() {
		return s.findBatchClustered(ctx, events)
	}
	acks := make([]jetsource.Ack, len(events))
	found := 0
	for i, e := range events {
		seq, ok, err := s.lookupID(ctx, e.Subject.String(), e.ID)
		if err != nil {
			return nil, batchNone, err
		}
		if ok {
			found++
			acks[i] = jetsource.Ack{Stream: s.stream, Sequence: seq, Duplicate: true}
		}
	}
	switch {
	case found == 0:
		return nil, batchNone, nil
	case found < len(events):
		return nil, batchPartly, nil
	}
	for i := 1; i < len(acks); i++ {
		if acks[i].Sequence != acks[i-1].Sequence+1 {
			return nil, batchPartly, nil
		}
	}
	return acks, batchWhole, nil
}

// findBatchClustered finds a batch on a clustered stream: its events
// stored contiguously, ending with the last message of the last event's
// subject. Anything else cannot be told.
func (s *Store) findBatchClustered(ctx context.Context, events []jetsource.Event) ([]jetsource.Ack, batchState, error) {
	last := events[len(events)-1]
	seq, found, err := s.lookupID(ctx, last.Subject.String(), last.ID)
	if err != nil || !found || seq < uint64(len(events)) {
		return nil, batchNone, cmp.Or(err, errCannotTell)
	}
	first := seq - uint64(len(events)) + 1
	acks := make([]jetsource.Ack, len(events))
	for i, e := range events {
		m, err := s.getMsg(ctx, first+uint64(i))
		if err != nil {
			return nil, batchNone, err
		}
		if m.Header.Get(jetsource.HeaderMsgID) != e.ID {
			return nil, batchPartly, nil
		}
		acks[i] = jetsource.Ack{Stream: s.stream, Sequence: first + uint64(i), Duplicate: true}
	}
	return acks, batchWhole, nil
}

// batchOutcome decides the result of a batch the server did not store now
// (failure: refused as holding stored ids, or unanswered): stored whole
// before, by this call (own: an attempt of it went unanswered, and
// [Store.storedAs] finds its events) or another, it is answered with its
// acks (Duplicate unless this call's), or [jetsource.ErrIDReused] when an event's
// content differs; not stored, failure; partly stored, an error matching
// [jetsource.ErrInvalidEvent]; unknown, an
// [*jetsource.UnknownOutcomeError].
func (s *Store) batchOutcome(ctx context.Context, events []jetsource.Event, own bool, failure error) ([]jetsource.Ack, error) {
	lctx, cancel := lookupContext(ctx)
	defer cancel()
	acks, state, err := s.findBatch(lctx, events)
	if err != nil {
		return nil, s.unknownBatch(events, fmt.Errorf("%w (and the lookup failed: %v)", failure, err))
	}
	switch state {
	case batchNone:
		var apiErr *jetstream.APIError
		if errors.As(failure, &apiErr) && apiErr.ErrorCode == codeBatchDuplicate {
			// Refused for a repeated id, and none of its ids is stored:
			// the batch itself holds one id twice.
			return nil, fmt.Errorf("%w: the batch holds an event id twice; nothing written: %w", jetsource.ErrInvalidEvent, failure)
		}
		return nil, fmt.Errorf("%w (not stored)", failure)
	case batchPartly:
		return nil, fmt.Errorf("%w: the batch holds an event id stored before, but not as this whole batch; nothing written: %w", jetsource.ErrInvalidEvent, failure)
	}
	for i, e := range events {
		mine, err := s.storedAs(lctx, e, acks[i].Sequence, own)
		if err != nil {
			if len(events) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		acks[i].Duplicate = !mine
	}
	return acks, nil
}

// unknownBatch is the error of a batch whose outcome cannot be told.
func (s *Store) unknownBatch(events []jetsource.Event, err error) error {
	ids := make([]string, len(events))
	tx := events[0].TransactionID
	for i, e := range events {
		ids[i] = e.ID
		if e.TransactionID != tx {
			tx = "" // a coalesced batch of several transactions
		}
	}
	return &jetsource.UnknownOutcomeError{IDs: ids, TransactionID: tx, Err: err}
}
