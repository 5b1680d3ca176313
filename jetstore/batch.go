package jetstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
)

// Headers of the JetStream atomic batch protocol.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	hdrExpSubjSeq  = "Nats-Expected-Last-Subject-Sequence"
	hdrExpSubj     = "Nats-Expected-Last-Subject-Sequence-Subject"
	hdrExpStream   = "Nats-Expected-Stream"
)

// More error codes of the batch protocol.
const (
	codeBatchTooLarge     = 10199
	codeBatchDuplicate    = 10201
	codeBatchTooManyInFlt = 10210
	codeAtomicDisabled    = 10174
	codeBatchIncomplete   = 10176
)

// AppendBatch implements [jetsource.Store.AppendBatch] with the JetStream
// atomic batch protocol: the stream stages the messages and stores them
// all, contiguously and invisibly to readers until complete, or none. The
// stream must allow atomic publish ([Provision] enables it).
//
// Each condition is carried by one message of the batch as an expected
// last subject sequence on the condition's filter (a literal filter on a
// message no later than the first one written to it, since the server
// refuses an expectation on a subject the batch already wrote).
//
// Conditions that fit on no event (more conditions than events, such as a
// one-event append with [jetsource.ExpectNoneAfter] on two filters) each
// travel on a guard message of their own, placed after the events in the
// same atomic batch (before them when the condition's filter is literally
// a subject the batch writes): a message on the stream's
// [jetsource.GuardSubject] (_jetsource.guard.<stream>) with no data and
// the header [jetsource.HeaderGuard] (about 200 bytes), which stays in the
// stream, or expires after a second when the stream allows per-message
// TTLs (AllowMsgTTL; [Provision] leaves it off, since readers such as the
// state package take it as a sign that events may expire). The
// server checks its condition with the others, atomically, so a condition
// fails only because of events matching its filter, never because of
// unrelated writes. Guard messages are used outside strict mode on
// single-replica streams whose configuration captures the guard subject
// ([Provision] adds it); readers of a whole
// stream skip them ([jetsource.InternalSubject]). Elsewhere such
// conditions are checked by reading the filter from the stream leader
// after reading the stream's last sequence L, and the first message then
// expects L: the batch is stored only if nothing at all was stored since
// (on a replicated stream this keeps wildcard conditions race-free, at the
// price of retries while unrelated appends move the stream). In strict
// mode ([WithStrict]) the first message always expects the stream's last
// sequence.
//
// Every event's subject is checked first ([Store.CheckSubject]): a
// forbidden one refuses the batch with [jetsource.ErrForbiddenSubject]
// before anything is sent.
//
// Errors: those of [jetsource.Store.AppendBatch], and in strict mode
// [ErrStreamBusy] (matching [jetsource.ErrUnavailable]) when the stream
// kept moving while the conditions held.
func (s *Store) AppendBatch(ctx context.Context, events []jetsource.Event, opts ...jetsource.AppendOption) ([]jetsource.Ack, error) {
	o, err := jetsource.ApplyAppendOptions(opts...)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	events, err = jetsource.PrepareBatch(events, o, func(e jetsource.Event) (jetsource.Event, error) {
		return jetsource.Prepare(e, s.source, now)
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(callContext(ctx, o), s.timeout)
	defer cancel()
	return s.appendBatch(ctx, events, o.Conditions)
}

// AppendPrepared stores events that went through [jetsource.Prepare] as
// one atomic batch with the given conditions, keeping each event's
// transaction id as it is. It is the building block of pipelined
// publishers that coalesce independent appends into one batch (group
// commit); applications use [Store.AppendBatch].
//
// It returns [jetsource.ErrInvalidOption] for an empty batch,
// [jetsource.ErrBatchTooLarge] for more than
// [jetsource.MaxBatch] events, and otherwise the errors of
// [Store.AppendBatch].
func (s *Store) AppendPrepared(ctx context.Context, events []jetsource.Event, conds []jetsource.Condition) ([]jetsource.Ack, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: empty batch", jetsource.ErrInvalidOption)
	}
	if len(events) > jetsource.MaxBatch {
		return nil, fmt.Errorf("%w: %d events, at most %d fit one batch", jetsource.ErrBatchTooLarge, len(events), jetsource.MaxBatch)
	}
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	return s.appendBatch(ctx, events, conds)
}

// appendBatch publishes prepared events as one atomic batch with the
// conditions; read-position conditions are resolved to exact ones first.
// In strict mode the first message also expects the stream's last
// sequence. A batch refused while every condition still holds is
// attempted again, as [Store.Append] does.
func (s *Store) appendBatch(ctx context.Context, events []jetsource.Event, conds []jetsource.Condition) ([]jetsource.Ack, error) {
	if err := s.checkEvents(ctx, events); err != nil {
		return nil, err
	}
	if _, err := s.batchMsgs(events); err != nil {
		return nil, err
	}
	if len(conds) > 0 {
		s.stats.conditioned.Add(1)
	}
	retries := s.conditionRetries()
	refusals, waits := 0, 0
	unanswered := false // an earlier attempt may have stored the batch
	fail := func(err error) ([]jetsource.Ack, error) {
		if unanswered {
			return s.batchOutcome(ctx, events, true, err)
		}
		return nil, err
	}
	for {
		overflow := false
		msgs, err := s.batchMsgs(events)
		if err != nil {
			return nil, err
		}
		var exact []jetsource.Condition
		if len(conds) > 0 {
			streamLast, e, err := s.resolve(ctx, conds)
			if err != nil {
				if errors.Is(err, jetsource.ErrConflict) {
					return s.refused(ctx, events, unanswered, err)
				}
				return fail(err)
			}
			exact = e
			if s.strict {
				// Only the first message of a batch may expect the
				// stream's last sequence; the server checks it against
				// the state before the batch.
				msgs[0].Header[jetstream.ExpectedLastSeqHeader] = []string{strconv.FormatUint(streamLast, 10)}
			}
		}
		slots, over := placeConditions(events, exact)
		var before, after []*nats.Msg // guard messages
		if over && s.guarded() {
			// Each condition that fits on no event travels on a guard
			// message of its own in the same batch: after the events, so
			// that they take the sequences a batch without guards would,
			// unless its filter is a subject the batch writes (the server
			// refuses an expectation on a subject written earlier in the
			// batch).
			for i, c := range exact {
				if slots[i] >= 0 {
					continue
				}
				g := s.guardMsg(events[0], c)
				if writes(events, c) {
					before = append(before, g)
				} else {
					after = append(after, g)
				}
			}
			over = false
		}
		if over {
			// Conditions that fit on no message are checked here, after
			// reading the stream's last sequence L from the leader; the
			// first message then expects L, so the batch is stored only
			// if nothing at all was stored since these reads.
			overflow = true
			retries = max(retries, s.strictRetries)
			streamLast, err := s.streamLast(ctx)
			if err != nil {
				return fail(err)
			}
			for i, c := range exact {
				if slots[i] >= 0 {
					continue
				}
				last, err := s.leaderLast(ctx, c.Filter.String())
				if err != nil {
					return fail(err)
				}
				if !c.Holds(last) {
					return s.refused(ctx, events, unanswered, conds[i].Conflict(last, nil))
				}
			}
			msgs[0].Header[jetstream.ExpectedLastSeqHeader] = []string{strconv.FormatUint(streamLast, 10)}
		}
		for i, c := range exact {
			if slots[i] < 0 {
				continue
			}
			msgs[slots[i]].Header[hdrExpSubjSeq] = []string{strconv.FormatUint(c.Sequence, 10)}
			msgs[slots[i]].Header[hdrExpSubj] = []string{c.Filter.String()}
		}
		if len(before)+len(after) > 0 {
			msgs = append(append(before, msgs...), after...)
		}
		if len(conds) > 0 && s.beforePublish != nil {
			s.beforePublish()
		}
		// A batch gets more time the more messages the server stages.
		actx, cancel := context.WithTimeout(ctx, (retryFirstAttempt+time.Duration(len(msgs))*2*time.Millisecond)<<min(waits, 8))
		first, err := s.publishBatch(actx, msgs)
		timedOut := actx.Err() != nil
		cancel()
		if err == nil {
			// The events follow the guards that go first.
			first += uint64(len(before))
			acks := make([]jetsource.Ack, len(events))
			for i := range events {
				acks[i] = jetsource.Ack{Stream: s.stream, Sequence: first + uint64(i)}
			}
			return acks, nil
		}
		if cur, known, ok := conflictCurrent(err); ok {
			// In strict mode the sequence in the refusal may be the
			// stream's, not a filter's.
			holds, ce := s.batchConflict(ctx, conds, cur, known && !s.strict && !overflow, err)
			if !holds {
				return s.refused(ctx, events, unanswered, ce)
			}
			if refusals >= retries {
				if s.strict || overflow {
					return fail(s.busy(refusals+1, err))
				}
				return s.refused(ctx, events, unanswered, ce)
			}
			if perr := pause(ctx, refusals); perr != nil {
				return fail(fmt.Errorf("jetstore: append batch: %w", mapErr(s.js, perr)))
			}
			refusals++
			s.stats.retries.Add(1)
			continue
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == codeBatchDuplicate {
			// Stored before: by an unanswered attempt of this call, or by
			// an earlier call; or only some of its ids.
			return s.batchOutcome(ctx, events, unanswered, err)
		}
		if errors.As(err, &apiErr) && apiErr.ErrorCode == codeBatchIncomplete {
			// A message the stream never saw (its subject is not
			// captured) leaves a gap that abandons the batch.
			for _, e := range events {
				if !s.captured(e.Subject.String()) {
					return nil, fmt.Errorf("%w: no stream captures the subject %s; nothing written: %w", jetsource.ErrStreamNotFound, e.Subject, err)
				}
			}
		}
		unanswered = unanswered || timedOut || mayBeStored(err)
		again, failure := s.refusedPublish(ctx, err, msgs[len(msgs)-1].Subject, waits, timedOut)
		if !again {
			return fail(fmt.Errorf("jetstore: append batch: %w", failure))
		}
		waits++
		s.stats.retries.Add(1)
	}
}

// guarded reports whether conditions that fit on no event of a batch
// travel on guard messages (see [Store.AppendBatch]): outside strict mode,
// on a single-replica stream that captures its guard subject, as
// [Provision] configures it.
func (s *Store) guarded() bool {
	if s.strict {
		return false
	}
	s.capMu.RLock()
	defer s.capMu.RUnlock()
	return s.guardSubject && s.replicas == 1
}

// writes reports whether condition c's filter is literally the subject of
// one of the events.
func writes(events []jetsource.Event, c jetsource.Condition) bool {
	if !c.Filter.IsLiteral() {
		return false
	}
	for _, e := range events {
		if e.Subject.String() == c.Filter.String() {
			return true
		}
	}
	return false
}

// guardLifetime is how long a guard message stays in a stream that allows
// per-message TTLs: the least TTL the server accepts. Its work is done
// once its batch is committed or refused.
const guardLifetime = "1s"

// guardMsg returns the guard message that carries condition c for a batch
// whose first event is e: no data, the guard header naming the batch's
// transaction (or the event id), c as an expected last subject sequence
// on c's filter, and a TTL when the stream allows them.
func (s *Store) guardMsg(e jetsource.Event, c jetsource.Condition) *nats.Msg {
	tag := e.TransactionID
	if tag == "" {
		tag = e.ID
	}
	m := nats.NewMsg(jetsource.GuardSubject(s.stream))
	m.Header[jetsource.HeaderGuard] = []string{tag}
	m.Header[hdrExpStream] = []string{s.stream}
	s.capMu.RLock()
	if s.guardTTL {
		m.Header[jetstream.MsgTTLHeader] = []string{guardLifetime}
	}
	s.capMu.RUnlock()
	m.Header[hdrExpSubjSeq] = []string{strconv.FormatUint(c.Sequence, 10)}
	m.Header[hdrExpSubj] = []string{c.Filter.String()}
	return m
}

// refused reports the conflict ce of a batch, unless the batch is stored
// (a retry whose conditions its own events broke): then its acks are
// returned, as duplicates unless an unanswered attempt of this call (own)
// stored it (see [Store.storedAs]). When own and the lookup fails, the outcome is unknown.
func (s *Store) refused(ctx context.Context, events []jetsource.Event, own bool, ce error) ([]jetsource.Ack, error) {
	lctx, cancel := lookupContext(ctx)
	defer cancel()
	acks, state, err := s.findBatch(lctx, events)
	switch {
	case err != nil && own:
		return nil, s.unknownBatch(events, fmt.Errorf("%w (and the lookup failed: %v)", ce, err))
	case err == nil && state == batchWhole:
		for i, e := range events {
			mine, err := s.storedAs(lctx, e, acks[i].Sequence, own)
			if err != nil {
				return nil, err
			}
			acks[i].Duplicate = !mine
		}
		return acks, nil
	}
	s.stats.conflicts.Add(1)
	return nil, ce
}

// batchMsgs returns the messages of a batch of prepared events, each with
// its event id as message id, the first also expecting the stream; it
// returns [jetsource.ErrPayloadTooLarge] for an event that does not fit.
func (s *Store) batchMsgs(events []jetsource.Event) ([]*nats.Msg, error) {
	msgs := make([]*nats.Msg, len(events), len(events)+1)
	for i, e := range events {
		msgs[i] = e.Msg()
		if err := s.checkSize(msgs[i], e); err != nil {
			return nil, err
		}
		msgs[i].Header[jetsource.HeaderMsgID] = []string{e.ID}
	}
	// Every message of a batch goes to the same stream: checking the
	// first one is enough.
	msgs[0].Header[hdrExpStream] = []string{s.stream}
	return msgs, nil
}

// resolve turns read-position conditions into exact ones: the last
// matching sequence now, which must not be after the read position. In
// strict mode it also returns the stream's last sequence.
func (s *Store) resolve(ctx context.Context, conds []jetsource.Condition) (uint64, []jetsource.Condition, error) {
	var reads []jetsource.Condition
	for _, c := range conds {
		if !c.Exact {
			reads = append(reads, c)
		}
	}
	streamLast, lasts, err := s.conditionReads(ctx, reads)
	if err != nil {
		return 0, nil, err
	}
	out := make([]jetsource.Condition, len(conds))
	k := 0
	for i, c := range conds {
		if c.Exact {
			out[i] = c
			continue
		}
		last := lasts[k]
		k++
		if !c.Holds(last) {
			return 0, nil, c.Conflict(last, nil)
		}
		out[i] = jetsource.Condition{Filter: c.Filter, Sequence: last, Exact: true}
	}
	return streamLast, out, nil
}

// batchConflict finds the condition that failed and reports it. When
// every condition was read and still holds, holds is true: the batch was
// refused for a passing reason (the stream moved, in strict mode, or an
// expectation on the same filter was in flight), and err is the conflict
// to report if it is not attempted again.
func (s *Store) batchConflict(ctx context.Context, conds []jetsource.Condition, cur uint64, known bool, cause error) (holds bool, err error) {
	holds = len(conds) > 0
	var readErr error
	for _, c := range conds {
		last, err := s.conditionLast(ctx, c.Filter.String())
		if err != nil {
			holds, readErr = false, err
			continue
		}
		if !c.Holds(last) {
			return false, c.Conflict(last, cause)
		}
	}
	if readErr != nil {
		// Not known to be a conflict: say why it cannot be told.
		return false, fmt.Errorf("jetstore: append batch refused (%v), and its conditions cannot be read: %w", cause, readErr)
	}
	if len(conds) > 0 {
		ce := conds[0].Conflict(cur, cause)
		ce.CurrentKnown = known
		return holds, ce
	}
	return false, fmt.Errorf("%w: %w", jetsource.ErrConflict, cause)
}

// batchAck is the server's answer to a batch commit.
type batchAck struct {
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	Batch    string              `json:"batch"`
	Count    int                 `json:"count"`
	Error    *jetstream.APIError `json:"error"`
}

// publishBatch sends msgs as one atomic batch and returns the sequence of
// the first stored message. Every message but the commit is a plain
// publish, as the protocol allows: a problem with any of them abandons the
// batch and is reported in the answer to the commit. (The end-of-batch
// commit, which stores no message, is not used: the server does not check
// the expectations of a message it does not store.)
func (s *Store) publishBatch(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	nc := s.js.Conn()
	before := nc.LastError()
	id := jetsource.NewID()
	n := len(msgs)
	for i, m := range msgs {
		m.Header[hdrBatchID] = []string{id}
		m.Header[hdrBatchSeq] = []string{strconv.Itoa(i + 1)}
		if i == n-1 {
			m.Header[hdrBatchCommit] = []string{"1"}
		}
		switch {
		case i == n-1:
			resp, err := nc.RequestMsgWithContext(ctx, m)
			if err == nil && s.loseAck != nil && s.loseAck() {
				return 0, fmt.Errorf("test: answer lost: %w", context.DeadlineExceeded)
			}
			if err != nil {
				return 0, denied(nc, err, before, m.Subject)
			}
			var ack batchAck
			if err := json.Unmarshal(resp.Data, &ack); err != nil {
				return 0, fmt.Errorf("jetstore: batch commit: bad answer %q: %w", resp.Data, err)
			}
			if ack.Error != nil {
				return 0, ack.Error
			}
			stored := n
			if ack.Count != stored || ack.Sequence < uint64(stored) {
				return 0, fmt.Errorf("jetstore: batch commit stored %d of %d messages (answer %q)", ack.Count, stored, resp.Data)
			}
			return ack.Sequence - uint64(stored) + 1, nil
		default:
			if err := nc.PublishMsg(m); err != nil {
				return 0, err
			}
		}
	}
	return 0, errors.New("jetstore: empty batch")
}
