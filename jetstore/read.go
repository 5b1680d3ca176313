package jetstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Read implements [jetsource.Store.Read].
func (s *Store) Read(ctx context.Context, q jetsource.Query) iter.Seq2[jetsource.Event, error] {
	return func(yield func(jetsource.Event, error) bool) {
		if err := q.Validate(); err != nil {
			yield(jetsource.Event{}, err)
			return
		}
		serverFilters, clientSide := consumerFilters(q.Filters)
		// Where do the stored events end? Nothing to read: done at once.
		head, err := s.head(ctx, q.Filters)
		if err != nil {
			yield(jetsource.Event{}, err)
			return
		}
		if !q.Follow && (head.seq == 0 || head.seq < q.FromSequence || (!q.Since.IsZero() && head.time.Before(q.Since))) {
			return
		}
		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: serverFilters, DeliverPolicy: jetstream.DeliverAllPolicy}
		switch {
		case q.FromSequence > 1:
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, q.FromSequence
		case !q.Since.IsZero():
			t := q.Since
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
		}
		if !q.Follow {
			// Stop at the head found above, not at events stored later.
			match := q
			match.Filters = nil
			if clientSide {
				match.Filters = q.Filters
			}
			s.consume(ctx, cfg, head.seq, match, q.Limit, yield)
			return
		}
		match := q
		if !clientSide {
			match.Filters = nil
		}
		s.consume(ctx, cfg, 0, match, q.Limit, yield)
	}
}

// Load implements [jetsource.Store.Load].
func (s *Store) Load(ctx context.Context, aggregate subjects.Subject, from uint64) iter.Seq2[jetsource.Event, error] {
	f, err := jetsource.AggregateFilter(aggregate)
	if err != nil {
		return func(yield func(jetsource.Event, error) bool) { yield(jetsource.Event{}, err) }
	}
	return s.Read(ctx, jetsource.Query{Filters: []subjects.Filter{f}, FromSequence: from})
}

// Latest implements [jetsource.Store.Latest].
func (s *Store) Latest(ctx context.Context, filter subjects.Filter) iter.Seq2[jetsource.Event, error] {
	return func(yield func(jetsource.Event, error) bool) {
		if filter.IsZero() {
			yield(jetsource.Event{}, fmt.Errorf("%w: empty filter", jetsource.ErrInvalidSubject))
			return
		}
		head, err := s.head(ctx, []subjects.Filter{filter})
		if err != nil {
			yield(jetsource.Event{}, err)
			return
		}
		if head.seq == 0 {
			return
		}
		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter.String()}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
		s.consume(ctx, cfg, head.seq, jetsource.Query{}, 0, yield)
	}
}

type position struct {
	seq  uint64
	time time.Time
}

// head returns the last event matching any of the filters (all events
// when there are none).
func (s *Store) head(ctx context.Context, filters []subjects.Filter) (position, error) {
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	if len(filters) == 0 {
		filters = []subjects.Filter{subjects.All()}
	}
	var p position
	for _, f := range subjects.Canonical(filters...) {
		seq, t, err := s.lastMsg(ctx, f.String())
		if err != nil {
			return p, err
		}
		if seq > p.seq {
			p = position{seq, t}
		}
	}
	return p, nil
}

// consumerFilters returns the filters to give the server: the canonical
// list, or none (and clientSide) when they overlap, which a consumer
// refuses.
func consumerFilters(fs []subjects.Filter) (server []string, clientSide bool) {
	c := subjects.Canonical(fs...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[i].Overlaps(c[j]) {
				return nil, true
			}
		}
	}
	for _, f := range c {
		server = append(server, f.String())
	}
	return server, false
}

// readerIdleTimeout is how long the server keeps the consumer of a reader
// that stopped pulling without removing it.
const readerIdleTimeout = 30 * time.Second

// dropConsumer asks the server to delete a read's consumer without waiting
// for the answer (a lost request leaves it to readerIdleTimeout).
func (s *Store) dropConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil || info.Name == "" {
		return
	}
	_ = s.js.Conn().Publish(s.apiPrefix+"CONSUMER.DELETE."+s.stream+"."+info.Name, nil)
}

// consume runs an ordered consumer and yields the events it delivers that
// match q's filters and time, up to limit events, until the event at
// sequence until (0: until ctx ends).
func (s *Store) consume(ctx context.Context, cfg jetstream.OrderedConsumerConfig, until uint64, q jetsource.Query, limit int, yield func(jetsource.Event, error) bool) {
	// A reader that vanished (a crashed process) leaves its consumer to
	// the server, which removes it once idle this long.
	cfg.InactiveThreshold = readerIdleTimeout
	ictx, cancel := withDefaultTimeout(ctx, s.timeout)
	cons, err := s.js.OrderedConsumer(ictx, s.stream, cfg)
	cancel()
	if err != nil {
		yield(jetsource.Event{}, fmt.Errorf("jetstore: read: %w", mapErr(s.js, err)))
		return
	}
	// A read that ends removes its consumer at once: the server allows a
	// limited number per stream, and short reads come by the thousand.
	defer s.dropConsumer(cons)
	it, err := cons.Messages(jetstream.PullMaxMessages(s.pullBatch))
	if err != nil {
		yield(jetsource.Event{}, fmt.Errorf("jetstore: read: %w", mapErr(s.js, err)))
		return
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var nextOpts []jetstream.NextOpt
	if until > 0 {
		// A bounded read must not wait forever for a server that went
		// away: the ordered consumer would keep trying to reset.
		nextOpts = append(nextOpts, jetstream.NextMaxWait(s.timeout))
	}
	n := 0
	for {
		msg, err := it.Next(nextOpts...)
		if err != nil {
			if ctx.Err() != nil {
				if until > 0 {
					yield(jetsource.Event{}, ctx.Err())
				}
				return
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) && s.js.Conn().IsClosed() {
				err = nats.ErrConnectionClosed
			}
			yield(jetsource.Event{}, fmt.Errorf("jetstore: read: %w", mapErr(s.js, err)))
			return
		}
		md, err := msg.Metadata()
		if err != nil {
			yield(jetsource.Event{}, fmt.Errorf("jetstore: read: %w", err))
			return
		}
		e, err := jetsource.DecodeMsg(msg.Subject(), msg.Headers(), msg.Data(), jetsource.Stored{Stream: md.Stream, Sequence: md.Sequence.Stream, Time: md.Timestamp})
		if err != nil {
			yield(jetsource.Event{}, err)
			return
		}
		if q.Match(e) {
			if !yield(e, nil) {
				return
			}
			if n++; limit > 0 && n >= limit {
				return
			}
		}
		if until > 0 && md.Sequence.Stream >= until {
			return
		}
	}
}
