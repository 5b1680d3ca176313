package jetstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
// (default 256).
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
// [WithTimeout], [WithSource], [WithPullBatch], [WithLogger].
//
// It returns an error matching [jetsource.ErrStreamNotFound] when the
// stream does not exist, [jetsource.ErrUnavailable] when the server does not
// answer, and [jetsource.ErrInvalidOption] for a bad option.
func New(ctx context.Context, js jetstream.JetStream, stream string, opts ...Option) (*Store, error) {
	s := &Store{js: js, stream: stream, source: jetsource.DefaultSource, timeout: defaultTimeout, pullBatch: 256, apiPrefix: "$JS.API."}
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
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("jetstore: open stream %q: %w", stream, mapErr(js, err))
	}
	info := st.CachedInfo()
	s.direct = info.Config.AllowDirect
	s.maxMsgSize = info.Config.MaxMsgSize
	return s, nil
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
// conditions make the append a one-event atomic batch.
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
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	if len(conds) > 1 {
		acks, err := s.appendBatch(ctx, []jetsource.Event{e}, conds)
		if err != nil {
			var ce *jetsource.ConflictError
			if errors.As(err, &ce) {
				if ack, ok := s.retried(ctx, e, ce.Current); ok {
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
	popts := []jetstream.PublishOpt{jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(s.stream)}
	for attempt := 0; ; attempt++ {
		var c jetsource.Condition
		if len(conds) == 1 {
			c = conds[0]
			expected := c.Sequence
			if !c.Exact {
				last, _, err := s.lastMsg(ctx, c.Filter.String())
				if err != nil {
					return jetsource.Ack{}, err
				}
				if !c.Holds(last) {
					return s.conflict(ctx, e, c, last, true, nil)
				}
				expected = last
			}
			popts = append(popts[:2], jetstream.WithExpectLastSequenceForSubject(expected, c.Filter.String()))
		}
		before := s.js.Conn().LastError()
		ack, err := s.js.PublishMsg(ctx, msg, popts...)
		if err != nil {
			err = denied(s.js.Conn(), err, before, msg.Subject)
		}
		if err == nil {
			return jetsource.Ack{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
		}
		cur, known, isConflict := conflictCurrent(err)
		if !isConflict {
			return jetsource.Ack{}, fmt.Errorf("jetstore: append %s: %w", e.Subject, mapErr(s.js, err))
		}
		if !known {
			if seq, _, lerr := s.lastMsg(ctx, c.Filter.String()); lerr == nil {
				cur, known = seq, true
			}
		}
		// A read-position condition whose last match moved but still
		// lies at or before the read position holds: check again.
		if !c.Exact && known && c.Holds(cur) && attempt < 3 {
			continue
		}
		return s.conflict(ctx, e, c, cur, known, err)
	}
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

// conflict builds the conflict error, unless the last matching event is
// this very event (a retry of an append that succeeded), in which case the
// append is a duplicate.
func (s *Store) conflict(ctx context.Context, e jetsource.Event, c jetsource.Condition, cur uint64, known bool, cause error) (jetsource.Ack, error) {
	if known {
		if ack, ok := s.retried(ctx, e, cur); ok {
			return ack, nil
		}
	}
	ce := c.Conflict(cur, cause)
	ce.CurrentKnown = known
	return jetsource.Ack{}, ce
}

// retried reports whether the event at sequence seq is e itself.
func (s *Store) retried(ctx context.Context, e jetsource.Event, seq uint64) (jetsource.Ack, bool) {
	if seq == 0 {
		return jetsource.Ack{}, false
	}
	m, err := s.getMsg(ctx, seq)
	if err != nil || m.Header.Get(jetsource.HeaderMsgID) != e.ID {
		return jetsource.Ack{}, false
	}
	return jetsource.Ack{Stream: s.stream, Sequence: seq, Duplicate: true}, true
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
// else the stream leader's message API. Both take wildcard filters.
func (s *Store) get(ctx context.Context, req map[string]any) (*jetstream.RawStreamMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	nc := s.js.Conn()
	before := nc.LastError()
	if s.direct {
		subj := s.apiPrefix + "DIRECT.GET." + s.stream
		resp, err := nc.RequestWithContext(ctx, subj, body)
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
	subj := s.apiPrefix + "STREAM.MSG.GET." + s.stream
	resp, err := nc.RequestWithContext(ctx, subj, body)
	if err != nil {
		err = denied(nc, err, before, subj)
		return nil, fmt.Errorf("jetstore: get message: %w", mapErr(s.js, err))
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
		return nil, fmt.Errorf("jetstore: get message: %w", err)
	}
	if r.Error != nil {
		if r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, jetsource.ErrNotFound
		}
		return nil, fmt.Errorf("jetstore: get message: %w", mapErr(s.js, r.Error))
	}
	if r.Message == nil {
		return nil, jetsource.ErrNotFound
	}
	var hdr nats.Header
	if len(r.Message.Header) > 0 {
		if hdr, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return nil, fmt.Errorf("jetstore: get message: %w", err)
		}
	}
	return &jetstream.RawStreamMsg{Subject: r.Message.Subject, Sequence: r.Message.Sequence, Header: hdr, Data: r.Message.Data, Time: r.Message.Time}, nil
}

// Source returns the source given to events that name none.
func (s *Store) Source() string { return s.source }
