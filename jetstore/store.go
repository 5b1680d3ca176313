package jetstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

const defaultTimeout = 5 * time.Second

// Store is the JetStream implementation of [jetsource.Store]. It is safe
// for concurrent use.
type Store struct {
	js         jetstream.JetStream
	stream     string
	direct     bool
	source     string
	timeout    time.Duration
	pullBatch  int
	logger     *slog.Logger
	apiPrefix  string
	maxMsgSize int32

	// reserved are the subject prefixes no append may write.
	reserved []string

	// The stream's configuration as last read (see loadCaptures).
	capMu sync.RWMutex
	// captures are the stream's event subjects.
	captures []subjects.Filter
	// guardSubject is true when the stream captures its
	// jetsource.GuardSubject; guardTTL when it allows per-message TTLs.
	guardSubject bool
	guardTTL     bool
	// raft is true when the stream has a raft group (a cluster).
	raft     bool
	replicas int
	maxBytes int64

	strict        bool
	strictRetries int
	stats         stats
	// beforePublish, when set (by tests only), runs before each publish
	// of a conditioned append or batch, after its reads.
	beforePublish func()
	// loseAck, when set (by tests only), is asked after each answered
	// publish or batch commit: true drops the answer, as a connection
	// lost after the server stored the message would.
	loseAck func() bool
}

var _ jetsource.Store = (*Store)(nil)

// Option configures a [Store].
type Option func(*Store) error

// WithTimeout sets the time limit of an operation whose context has no
// deadline (default 5s).
func WithTimeout(d time.Duration) Option {
	return func(s *Store) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v must be positive", jetsource.ErrInvalidOption, d)
		}
		s.timeout = d
		return nil
	}
}

// WithSource sets the source of events that name none (default
// [jetsource.DefaultSource]).
func WithSource(source string) Option {
	return func(s *Store) error {
		if source == "" {
			return fmt.Errorf("%w: empty source", jetsource.ErrInvalidOption)
		}
		s.source = source
		return nil
	}
}

// WithPullBatch sets how many events a read asks the server for at once
// (default 1000).
func WithPullBatch(n int) Option {
	return func(s *Store) error {
		if n <= 0 {
			return fmt.Errorf("%w: pull batch %d must be positive", jetsource.ErrInvalidOption, n)
		}
		s.pullBatch = n
		return nil
	}
}

// WithLogger sets the logger (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) error {
		s.logger = l
		return nil
	}
}

// New returns a store on the existing stream named stream. Options:
// [WithTimeout], [WithSource], [WithPullBatch], [WithLogger],
// [WithStrict], [WithStrictRetries], [WithReservedPrefixes].
//
// While a cluster is still electing the stream's leader (no answer, no
// responders, "temporarily unavailable"), New asks again until ctx ends.
// It returns an error matching [jetsource.ErrStreamNotFound] when the
// stream does not exist, [jetsource.ErrUnavailable] when the server does not
// answer in time, and [jetsource.ErrInvalidOption] for a bad option.
func New(ctx context.Context, js jetstream.JetStream, stream string, opts ...Option) (*Store, error) {
	s := &Store{js: js, stream: stream, source: jetsource.DefaultSource, timeout: defaultTimeout, pullBatch: 1000, apiPrefix: "$JS.API.", strictRetries: defaultStrictRetries, reserved: DefaultReservedPrefixes}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if p := js.Options().APIPrefix; p != "" {
		s.apiPrefix = p
		if p[len(p)-1] != '.' {
			s.apiPrefix += "."
		}
	}
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	var st jetstream.Stream
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		st, err = js.Stream(ctx, stream)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("jetstore: open stream %q: %w", stream, mapErr(js, err))
	}
	info := st.CachedInfo()
	s.direct = info.Config.AllowDirect
	s.maxMsgSize = info.Config.MaxMsgSize
	s.setConfig(info)
	return s, nil
}

// captured reports whether the stream captures subject, as it was
// configured when the store was opened.
func (s *Store) captured(subject string) bool {
	subj, err := subjects.Parse(subject)
	if err != nil {
		return false
	}
	return s.capturedNow(subj)
}

// refusedPublish decides about a publish to subject that failed with err
// (nothing was stored): again is true when it may be sent again after a
// pause, as the cause passes; otherwise failure is the error to return.
//
// Nobody answering a subject the stream captures means the stream has no
// leader for a moment (a replicated stream electing one) or was deleted;
// asking the stream tells which, and waits for a leader until ctx ends.
//
// A publish whose attempt ran out of time (timedOut) while ctx goes on is
// sent again at once: a server that just lost the stream's leadership
// drops a publish unanswered, and the event id makes the stream store the
// event once however often it is sent (a resent event that the first
// attempt stored comes back as a duplicate, which the caller is not told:
// this call stored it).
func (s *Store) refusedPublish(ctx context.Context, err error, subject string, attempt int, timedOut bool) (again bool, failure error) {
	if timedOut && timeout(err) && ctx.Err() == nil {
		return true, nil
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		if !s.captured(subject) {
			return false, fmt.Errorf("%w: no stream captures the subject: %w", jetsource.ErrStreamNotFound, err)
		}
		if _, serr := s.streamLast(ctx); serr != nil {
			if errors.Is(serr, jetsource.ErrStreamNotFound) {
				return false, serr
			}
			return false, fmt.Errorf("%w: the stream has no leader: %w", jetsource.ErrUnavailable, err)
		}
	} else if !transient(err) {
		return false, s.mapErr(err)
	}
	if perr := backoff(ctx, attempt); perr != nil {
		return false, fmt.Errorf("%w: %w (no answer before the deadline)", jetsource.ErrUnavailable, err)
	}
	return true, nil
}

// Stream returns the name of the event stream.
func (s *Store) Stream() string { return s.stream }

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// Append implements [jetsource.Store.Append].
//
// One condition travels as the expected last subject sequence of the
// message, with the condition's canonical filter; a read-position
// condition ([jetsource.ExpectNoneAfter]) is first resolved to the last
// matching sequence, which the server then checks atomically. Several
// conditions make the append a one-event atomic batch. In strict mode
// ([WithStrict]) a conditioned append also expects the stream's last
// sequence and is retried while the stream moves but the condition holds;
// it then may also fail with [ErrStreamBusy] (which matches
// [jetsource.ErrUnavailable]).
func (s *Store) Append(ctx context.Context, e jetsource.Event, opts ...jetsource.AppendOption) (jetsource.Ack, error) {
	o, err := jetsource.ApplyAppendOptions(opts...)
	if err != nil {
		return jetsource.Ack{}, err
	}
	e, err = jetsource.Prepare(e, s.source, time.Now())
	if err != nil {
		return jetsource.Ack{}, err
	}
	conds, err := jetsource.EventConditions(e, o)
	if err != nil {
		return jetsource.Ack{}, err
	}
	ctx, cancel := withDefaultTimeout(callContext(ctx, o), s.timeout)
	defer cancel()
	if err := s.CheckSubject(ctx, e.Subject); err != nil {
		return jetsource.Ack{}, err
	}
	if len(conds) > 1 {
		acks, err := s.appendBatch(ctx, []jetsource.Event{e}, conds)
		if err != nil {
			var ce *jetsource.ConflictError
			if errors.As(err, &ce) && !errors.Is(err, jetsource.ErrUnknownOutcome) {
				if ack, ok, rerr := s.retried(ctx, e, ce.Current); rerr != nil {
					return jetsource.Ack{}, rerr
				} else if ok {
					return ack, nil
				}
			}
			return jetsource.Ack{}, err
		}
		return acks[0], nil
	}
	msg := e.Msg()
	if err := s.checkSize(msg, e); err != nil {
		return jetsource.Ack{}, err
	}
	if len(conds) == 0 {
		return s.publish(ctx, e, msg, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(s.stream))
	}
	return s.appendConditioned(ctx, e, msg, conds[0])
}

// publish publishes one message, again while the stream has no leader
// or an append with the same id is in flight, until ctx ends.
func (s *Store) publish(ctx context.Context, e jetsource.Event, msg *nats.Msg, opts ...jetstream.PublishOpt) (jetsource.Ack, error) {
	unanswered := false
	for attempt := 0; ; attempt++ {
		ack, timedOut, err := s.publishAttempt(ctx, msg, attempt, opts...)
		if err == nil {
			return s.settled(ctx, e, ack, unanswered)
		}
		unanswered = unanswered || timedOut || mayBeStored(err)
		if again, failure := s.refusedPublish(ctx, err, msg.Subject, attempt, timedOut); !again {
			failure = fmt.Errorf("jetstore: append %s: %w", e.Subject, failure)
			if unanswered {
				return s.outcome(ctx, e, failure)
			}
			return jetsource.Ack{}, failure
		}
	}
}

// settled is the result of an append the server acknowledged: a
// duplicate whose stored content differs is [jetsource.ErrIDReused]; a
// duplicate after an unanswered attempt of the same call is that
// attempt's event, stored by this call, unless an earlier call stored it
// (see [Store.storedAs]).
func (s *Store) settled(ctx context.Context, e jetsource.Event, ack jetsource.Ack, unanswered bool) (jetsource.Ack, error) {
	if ack.Duplicate {
		own, err := s.storedAs(ctx, e, ack.Sequence, unanswered)
		if err != nil {
			return jetsource.Ack{}, err
		}
		ack.Duplicate = !own
	}
	return ack, nil
}

// publishAttempt publishes msg once and returns the server's
// acknowledgement or its unmapped error. The attempt gets
// retryFirstAttempt to be answered, doubled for each earlier attempt
// (within ctx); timedOut tells that this time ran out.
func (s *Store) publishAttempt(ctx context.Context, msg *nats.Msg, attempt int, opts ...jetstream.PublishOpt) (ack jetsource.Ack, timedOut bool, err error) {
	actx, cancel := context.WithTimeout(ctx, retryFirstAttempt<<min(attempt, 8))
	defer cancel()
	before := s.js.Conn().LastError()
	pa, err := s.js.PublishMsg(actx, msg, opts...)
	if err == nil && s.loseAck != nil && s.loseAck() {
		return jetsource.Ack{}, true, fmt.Errorf("test: answer lost: %w", context.DeadlineExceeded)
	}
	if err != nil {
		return jetsource.Ack{}, actx.Err() != nil, denied(s.js.Conn(), err, before, msg.Subject)
	}
	return jetsource.Ack{Stream: pa.Stream, Sequence: pa.Sequence, Duplicate: pa.Duplicate}, false, nil
}

// appendConditioned publishes one event under one condition.
//
// Each attempt reads what the condition needs (the last matching sequence
// for a read position; in strict mode first the stream's last sequence L,
// and everything from the stream leader), checks the condition, and
// publishes with the expected subject sequence on the condition's filter
// (and, strict, the expected stream sequence L). When the server refuses,
// the filter is read again: a condition that no longer holds is a
// conflict, one that still holds (the stream moved elsewhere, or an
// expectation on the same filter was in flight) is attempted again after a
// short random pause. A stream without a leader for a moment is waited
// for until ctx ends.
func (s *Store) appendConditioned(ctx context.Context, e jetsource.Event, msg *nats.Msg, c jetsource.Condition) (jetsource.Ack, error) {
	s.stats.conditioned.Add(1)
	filter := c.Filter.String()
	retries := s.conditionRetries()
	refusals, waits := 0, 0
	unanswered := false // an earlier attempt may have stored the event
	fail := func(err error) (jetsource.Ack, error) {
		if unanswered {
			return s.outcome(ctx, e, err)
		}
		return jetsource.Ack{}, err
	}
	for {
		opts := []jetstream.PublishOpt{jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(s.stream)}
		var reads []jetsource.Condition
		if !c.Exact {
			reads = []jetsource.Condition{c}
		}
		streamLast, lasts, err := s.conditionReads(ctx, reads)
		if err != nil {
			return fail(err)
		}
		if s.strict {
			opts = append(opts, jetstream.WithExpectLastSequence(streamLast))
		}
		expected := c.Sequence
		if !c.Exact {
			if !c.Holds(lasts[0]) {
				return s.conflict(ctx, e, c, lasts[0], true, unanswered, nil)
			}
			expected = lasts[0]
		}
		opts = append(opts, jetstream.WithExpectLastSequenceForSubject(expected, filter))
		if s.beforePublish != nil {
			s.beforePublish()
		}
		ack, timedOut, err := s.publishAttempt(ctx, msg, waits, opts...)
		if err == nil {
			return s.settled(ctx, e, ack, unanswered)
		}
		unanswered = unanswered || timedOut || mayBeStored(err)
		cur, known, isConflict := conflictCurrent(err)
		if !isConflict {
			if again, failure := s.refusedPublish(ctx, err, msg.Subject, waits, timedOut); !again {
				return fail(fmt.Errorf("jetstore: append %s: %w", e.Subject, failure))
			}
			waits++
			s.stats.retries.Add(1)
			continue
		}
		// Without strict mode the sequence in the refusal is the last
		// match of the filter; in strict mode it may be the stream's last
		// sequence instead: read the filter.
		if s.strict || !known {
			if seq, lerr := s.conditionLast(ctx, filter); lerr == nil {
				cur, known = seq, true
			} else {
				known = false
			}
		}
		if !known || !c.Holds(cur) {
			return s.conflict(ctx, e, c, cur, known, unanswered, err)
		}
		// The condition still holds.
		if refusals >= retries {
			if s.strict {
				return fail(s.busy(refusals+1, err))
			}
			return s.conflict(ctx, e, c, cur, known, unanswered, err)
		}
		if perr := pause(ctx, refusals); perr != nil {
			return fail(fmt.Errorf("jetstore: append %s: %w", e.Subject, mapErr(s.js, perr)))
		}
		refusals++
		s.stats.retries.Add(1)
	}
}

// conditionReads reads what an attempt of a conditioned append needs:
// the last sequence matching each of conds, and in strict mode the
// stream's last sequence, all at once. The server's check of the expected
// stream sequence does not depend on the order of these reads: the value
// comes from the leader's applied state, so when the server finds the
// stream still there, its check of each condition's filter sees exactly
// the events up to it.
func (s *Store) conditionReads(ctx context.Context, conds []jetsource.Condition) (streamLast uint64, lasts []uint64, err error) {
	if len(conds) == 0 {
		if s.strict {
			streamLast, err = s.streamLast(ctx)
		}
		return streamLast, nil, err
	}
	var wg sync.WaitGroup
	var lastErr error
	if s.strict {
		wg.Go(func() { streamLast, lastErr = s.streamLast(ctx) })
	}
	lasts = make([]uint64, len(conds))
	errs := make([]error, len(conds))
	for i, c := range conds {
		if i == len(conds)-1 {
			lasts[i], errs[i] = s.conditionLast(ctx, c.Filter.String())
			break
		}
		wg.Go(func() { lasts[i], errs[i] = s.conditionLast(ctx, c.Filter.String()) })
	}
	wg.Wait()
	if lastErr != nil {
		return 0, nil, lastErr
	}
	for _, err := range errs {
		if err != nil {
			return 0, nil, err
		}
	}
	return streamLast, lasts, nil
}

// conditionLast returns the last sequence matching a condition's filter,
// 0 when none does: in strict mode from the stream leader, which has
// applied at least the stream's last sequence read before, otherwise from
// any replica (a direct get).
func (s *Store) conditionLast(ctx context.Context, filter string) (uint64, error) {
	if !s.strict {
		seq, _, err := s.lastMsg(ctx, filter)
		return seq, err
	}
	m, err := s.getFrom(ctx, map[string]any{"last_by_subj": filter}, true)
	if errors.Is(err, jetsource.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

func (s *Store) checkSize(msg *nats.Msg, e jetsource.Event) error {
	limit := s.js.Conn().MaxPayload()
	if s.maxMsgSize > 0 && int64(s.maxMsgSize) < limit {
		limit = int64(s.maxMsgSize)
	}
	if size := jetsource.MsgSize(msg) + len(jetsource.HeaderMsgID) + len(e.ID) + 4; int64(size) > limit {
		return fmt.Errorf("%w: event on %s is %d bytes, the maximum is %d", jetsource.ErrPayloadTooLarge, e.Subject, size, limit)
	}
	return nil
}

// conflict builds the conflict error, unless the event is stored: after
// an unanswered attempt of this call (own), looked up by id and then this
// call's; otherwise when the last matching event is this very event (a
// retry of an earlier call that succeeded), a duplicate.
func (s *Store) conflict(ctx context.Context, e jetsource.Event, c jetsource.Condition, cur uint64, known, own bool, cause error) (jetsource.Ack, error) {
	if own {
		lctx, cancel := lookupContext(ctx)
		seq, found, err := s.lookupID(lctx, e.Subject.String(), e.ID)
		cancel()
		switch {
		case err != nil:
			return jetsource.Ack{}, &jetsource.UnknownOutcomeError{IDs: []string{e.ID}, Err: fmt.Errorf("%w (and the lookup failed: %v)", c.Conflict(cur, cause), err)}
		case found:
			mine, err := s.storedAs(ctx, e, seq, true)
			if err != nil {
				return jetsource.Ack{}, err
			}
			return jetsource.Ack{Stream: s.stream, Sequence: seq, Duplicate: !mine}, nil
		}
	} else if known {
		if ack, ok, err := s.retried(ctx, e, cur); err != nil {
			return jetsource.Ack{}, err
		} else if ok {
			return ack, nil
		}
	}
	s.stats.conflicts.Add(1)
	ce := c.Conflict(cur, cause)
	ce.CurrentKnown = known
	return jetsource.Ack{}, ce
}

// retried reports whether the event at sequence seq has e's id, stored by
// an earlier call: a duplicate, or [jetsource.ErrIDReused] when its
// content differs.
func (s *Store) retried(ctx context.Context, e jetsource.Event, seq uint64) (jetsource.Ack, bool, error) {
	if seq == 0 {
		return jetsource.Ack{}, false, nil
	}
	// From the leader: a replica that is behind would hide the call's own
	// event and turn it into a false conflict.
	m, err := s.getFrom(ctx, map[string]any{"seq": seq}, true)
	if err != nil || m.Header.Get(jetsource.HeaderMsgID) != e.ID {
		return jetsource.Ack{}, false, nil
	}
	if err := s.reused(ctx, e, seq); err != nil {
		return jetsource.Ack{}, false, err
	}
	return jetsource.Ack{Stream: s.stream, Sequence: seq, Duplicate: true}, true, nil
}

// LastSequence implements [jetsource.Store.LastSequence].
func (s *Store) LastSequence(ctx context.Context, filter subjects.Filter) (uint64, error) {
	if filter.IsZero() {
		return 0, fmt.Errorf("%w: empty filter", jetsource.ErrInvalidSubject)
	}
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	seq, _, err := s.lastMsg(ctx, filter.String())
	return seq, err
}

// lastMsg returns the sequence and stored time of the last message
// matching filter, 0 when none does.
func (s *Store) lastMsg(ctx context.Context, filter string) (uint64, time.Time, error) {
	m, err := s.get(ctx, map[string]any{"last_by_subj": filter})
	if errors.Is(err, jetsource.ErrNotFound) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	return m.Sequence, m.Time, nil
}

// getMsg returns the message at sequence seq.
func (s *Store) getMsg(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	return s.get(ctx, map[string]any{"seq": seq})
}

// get runs a message-get request: a direct get when the stream allows it,
// else the stream leader's message API. Both take wildcard filters. A
// direct get nobody answers, as on a replicated stream just created whose
// replicas do not serve direct gets yet, falls back to the leader's
// message API, which is asked again while the cluster has no leader, until
// ctx ends.
//
// It returns [jetsource.ErrNotFound] when no message matches, and errors
// matching [jetsource.ErrUnavailable], [jetsource.ErrPermissionDenied] or
// [jetsource.ErrStreamNotFound].
func (s *Store) get(ctx context.Context, req map[string]any) (*jetstream.RawStreamMsg, error) {
	return s.getFrom(ctx, req, false)
}

// getFrom runs a message-get request as [Store.get] does, or with leader
// on the stream leader's message API only.
func (s *Store) getFrom(ctx context.Context, req map[string]any, leader bool) (*jetstream.RawStreamMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if s.direct && !leader {
		m, err := s.directGet(ctx, body)
		if !errors.Is(err, nats.ErrNoResponders) {
			return m, err
		}
		s.logger.Debug("no direct get responder, asking the stream leader", "stream", s.stream)
	}
	var m *jetstream.RawStreamMsg
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		m, err = s.leaderGet(ctx, body)
		return err
	})
	if err != nil {
		if errors.Is(err, jetsource.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("jetstore: get message: %w", mapErr(s.js, err))
	}
	return m, nil
}

// directGet runs a direct get. It returns an error matching
// nats.ErrNoResponders, unwrapped, when nobody serves direct gets of the
// stream.
func (s *Store) directGet(ctx context.Context, body []byte) (*jetstream.RawStreamMsg, error) {
	nc := s.js.Conn()
	before := nc.LastError()
	subj := s.apiPrefix + "DIRECT.GET." + s.stream
	resp, err := nc.RequestWithContext(ctx, subj, body)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, err
	}
	if err != nil {
		err = denied(nc, err, before, subj)
		return nil, fmt.Errorf("jetstore: get message: %w", mapErr(s.js, err))
	}
	if len(resp.Data) == 0 && resp.Header.Get("Status") != "" {
		switch resp.Header.Get("Status") {
		case "404":
			return nil, jetsource.ErrNotFound
		default:
			return nil, fmt.Errorf("jetstore: get message: status %s %s", resp.Header.Get("Status"), resp.Header.Get("Description"))
		}
	}
	seq, _ := strconv.ParseUint(resp.Header.Get(jetstream.SequenceHeader), 10, 64)
	ts, _ := time.Parse(time.RFC3339Nano, resp.Header.Get(jetstream.TimeStampHeaer))
	return &jetstream.RawStreamMsg{Subject: resp.Header.Get(jetstream.SubjectHeader), Sequence: seq, Header: resp.Header, Data: resp.Data, Time: ts}, nil
}

// leaderGet asks the stream leader's message API. It returns the
// server's errors and nats.go's unmapped, and [jetsource.ErrNotFound]
// when no message matches.
func (s *Store) leaderGet(ctx context.Context, body []byte) (*jetstream.RawStreamMsg, error) {
	nc := s.js.Conn()
	before := nc.LastError()
	subj := s.apiPrefix + "STREAM.MSG.GET." + s.stream
	resp, err := nc.RequestWithContext(ctx, subj, body)
	if err != nil {
		return nil, denied(nc, err, before, subj)
	}
	var r struct {
		Message *struct {
			Subject  string    `json:"subject"`
			Sequence uint64    `json:"seq"`
			Header   []byte    `json:"hdrs"`
			Data     []byte    `json:"data"`
			Time     time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, fmt.Errorf("bad answer %q: %w", resp.Data, err)
	}
	if r.Error != nil {
		if r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, jetsource.ErrNotFound
		}
		return nil, r.Error
	}
	if r.Message == nil {
		return nil, jetsource.ErrNotFound
	}
	var hdr nats.Header
	if len(r.Message.Header) > 0 {
		if hdr, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return nil, fmt.Errorf("bad message headers: %w", err)
		}
	}
	return &jetstream.RawStreamMsg{Subject: r.Message.Subject, Sequence: r.Message.Sequence, Header: hdr, Data: r.Message.Data, Time: r.Message.Time}, nil
}

// Source returns the source given to events that name none.
func (s *Store) Source() string { return s.source }
