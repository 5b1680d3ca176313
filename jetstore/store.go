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
func (s *Store) Append(ctx context.Context, e jetsource.Event, opts ...jetsource.AppendOption) (jetsource.Ack, error) {
	o, err := jetsource.ApplyAppendOptions(opts...)
	if err != nil {
		return jetsource.Ack{}, err
	}
	e, err = jetsource.Prepare(e, s.source, time.Now())
	if err != nil {
		return jetsource.Ack{}, err
	}
	msg := e.Msg()
	limit := s.js.Conn().MaxPayload()
	if s.maxMsgSize > 0 && int64(s.maxMsgSize) < limit {
		limit = int64(s.maxMsgSize)
	}
	if size := jetsource.MsgSize(msg); int64(size) > limit {
		return jetsource.Ack{}, fmt.Errorf("%w: event on %s is %d bytes, the maximum is %d", jetsource.ErrPayloadTooLarge, e.Subject, size, limit)
	}
	popts := []jetstream.PublishOpt{jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(s.stream)}
	var filter subjects.Filter
	if o.Expect {
		if filter, err = jetsource.AggregateFilter(e.Subject.Aggregate()); err != nil {
			return jetsource.Ack{}, err
		}
		popts = append(popts, jetstream.WithExpectLastSequenceForSubject(o.ExpectedSequence, filter.String()))
	}
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, msg, popts...)
	if err != nil {
		if cur, known, ok := conflictCurrent(err); ok {
			return s.conflict(ctx, e, filter, o.ExpectedSequence, cur, known, err)
		}
		return jetsource.Ack{}, fmt.Errorf("jetstore: append %s: %w", e.Subject, mapErr(s.js, err))
	}
	return jetsource.Ack{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// conflict builds the conflict error, unless the last event of the
// aggregate is this very event (a retry of an append that succeeded), in
// which case the append is a duplicate.
func (s *Store) conflict(ctx context.Context, e jetsource.Event, filter subjects.Filter, expected, cur uint64, known bool, cause error) (jetsource.Ack, error) {
	if !known {
		if seq, _, err := s.lastMsg(ctx, filter.String()); err == nil {
			cur, known = seq, true
		}
	}
	if known && cur > 0 {
		if m, err := s.getMsg(ctx, cur); err == nil && m.Header.Get(jetsource.HeaderMsgID) == e.ID {
			return jetsource.Ack{Stream: s.stream, Sequence: cur, Duplicate: true}, nil
		}
	}
	return jetsource.Ack{}, &jetsource.ConflictError{Filter: filter.String(), Expected: expected, Current: cur, CurrentKnown: known, Err: cause}
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
	if s.direct {
		resp, err := nc.RequestWithContext(ctx, s.apiPrefix+"DIRECT.GET."+s.stream, body)
		if err != nil {
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
	resp, err := nc.RequestWithContext(ctx, s.apiPrefix+"STREAM.MSG.GET."+s.stream, body)
	if err != nil {
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
