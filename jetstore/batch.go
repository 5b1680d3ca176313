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
)

// AppendBatch implements [jetsource.Store.AppendBatch] with the JetStream
// atomic batch protocol: the stream stages the messages and stores them
// all, contiguously and invisibly to readers until complete, or none. The
// stream must allow atomic publish ([Provision] enables it).
//
// Each condition is carried by one message of the batch as an expected
// last subject sequence on the condition's filter, so a batch can hold at
// most one condition more than it has events (the extra one rides on an
// end-of-batch marker that is not stored).
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
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	return s.appendBatch(ctx, events, o.Conditions)
}

// AppendPrepared stores events that went through [jetsource.Prepare] as
// one atomic batch with the given conditions, keeping each event's
// transaction id as it is. It is the building block of pipelined
// publishers that coalesce independent appends into one batch (group
// commit); applications use [Store.AppendBatch].
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
func (s *Store) appendBatch(ctx context.Context, events []jetsource.Event, conds []jetsource.Condition) ([]jetsource.Ack, error) {
	if len(conds) > len(events)+1 {
		return nil, fmt.Errorf("%w: %d conditions on %d events; a batch carries at most one condition more than it has events", jetsource.ErrInvalidOption, len(conds), len(events))
	}
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
	exact, err := s.resolve(ctx, conds, events)
	if err != nil {
		return nil, err
	}
	if len(exact) > len(events) {
		msgs = append(msgs, &nats.Msg{Subject: events[0].Subject.String(), Header: nats.Header{}})
	}
	for i, c := range exact {
		msgs[i].Header[hdrExpSubjSeq] = []string{strconv.FormatUint(c.Sequence, 10)}
		msgs[i].Header[hdrExpSubj] = []string{c.Filter.String()}
	}
	eob := len(msgs) > len(events)
	first, err := s.publishBatch(ctx, msgs, eob)
	if err != nil {
		if cur, known, ok := conflictCurrent(err); ok {
			return nil, s.batchConflict(ctx, conds, cur, known, err)
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == codeBatchDuplicate {
			if acks, ok := s.storedBatch(ctx, events); ok {
				return acks, nil
			}
			return nil, fmt.Errorf("%w: the batch holds an event id stored before, but not as this whole batch; nothing written: %w", jetsource.ErrInvalidEvent, err)
		}
		return nil, fmt.Errorf("jetstore: append batch: %w", mapErr(s.js, err))
	}
	acks := make([]jetsource.Ack, len(events))
	for i := range events {
		acks[i] = jetsource.Ack{Stream: s.stream, Sequence: first + uint64(i)}
	}
	return acks, nil
}

// resolve turns read-position conditions into exact ones: the last
// matching sequence now, which must not be after the read position.
func (s *Store) resolve(ctx context.Context, conds []jetsource.Condition, events []jetsource.Event) ([]jetsource.Condition, error) {
	out := make([]jetsource.Condition, len(conds))
	for i, c := range conds {
		if c.Exact {
			out[i] = c
			continue
		}
		last, _, err := s.lastMsg(ctx, c.Filter.String())
		if err != nil {
			return nil, err
		}
		if !c.Holds(last) {
			return nil, c.Conflict(last, nil)
		}
		out[i] = jetsource.Condition{Filter: c.Filter, Sequence: last, Exact: true}
	}
	return out, nil
}

// batchConflict finds the condition that failed and reports it.
func (s *Store) batchConflict(ctx context.Context, conds []jetsource.Condition, cur uint64, known bool, cause error) error {
	for _, c := range conds {
		last, _, err := s.lastMsg(ctx, c.Filter.String())
		if err == nil && !c.Holds(last) {
			return c.Conflict(last, cause)
		}
	}
	if len(conds) > 0 {
		ce := conds[0].Conflict(cur, cause)
		ce.CurrentKnown = known
		return ce
	}
	return fmt.Errorf("%w: %w", jetsource.ErrConflict, cause)
}

// storedBatch returns the acks of a batch stored before (a retry): its
// events stored contiguously, ending with the last event of its subject.
func (s *Store) storedBatch(ctx context.Context, events []jetsource.Event) ([]jetsource.Ack, bool) {
	last := events[len(events)-1]
	seq, _, err := s.lastMsg(ctx, last.Subject.String())
	if err != nil || seq < uint64(len(events)) {
		return nil, false
	}
	first := seq - uint64(len(events)) + 1
	acks := make([]jetsource.Ack, len(events))
	for i, e := range events {
		m, err := s.getMsg(ctx, first+uint64(i))
		if err != nil || m.Header.Get(jetsource.HeaderMsgID) != e.ID {
			return nil, false
		}
		acks[i] = jetsource.Ack{Stream: s.stream, Sequence: first + uint64(i), Duplicate: true}
	}
	return acks, true
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
// batch and is reported in the answer to the commit. With eob, the last
// message only commits and is not stored.
func (s *Store) publishBatch(ctx context.Context, msgs []*nats.Msg, eob bool) (uint64, error) {
	nc := s.js.Conn()
	before := nc.LastError()
	id := jetsource.NewID()
	n := len(msgs)
	for i, m := range msgs {
		m.Header[hdrBatchID] = []string{id}
		m.Header[hdrBatchSeq] = []string{strconv.Itoa(i + 1)}
		if i == n-1 {
			if eob {
				m.Header[hdrBatchCommit] = []string{"eob"}
			} else {
				m.Header[hdrBatchCommit] = []string{"1"}
			}
		}
		switch {
		case i == n-1:
			resp, err := nc.RequestMsgWithContext(ctx, m)
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
			if eob {
				stored--
			}
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
