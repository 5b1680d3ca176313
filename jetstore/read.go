package jetstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Read implements [jetsource.Store.Read].
//
// A stored message that is no valid event (published by another client
// with a spec version other than 1.0 or 0.3, a bad time, non-JSON data
// under a JSON content type, a "*" token in its subject, ...) does not end
// the read: it is yielded with a nil error as a malformed event, see
// [jetsource.DecodeStored]: [jetsource.Event.Malformed] holds its raw
// subject, headers and the reason. With filters, a malformed event whose
// raw subject is no valid subject is matched by that raw subject. Callers
// that fold or project events skip it ([jetsource.Event.MalformedError]
// says why). The same holds for [Store.Load] and [Store.Latest].
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

// Load implements [jetsource.Store.Load]. Like [Store.Read], it yields
// malformed events instead of failing on them.
func (s *Store) Load(ctx context.Context, aggregate subjects.Subject, from uint64) iter.Seq2[jetsource.Event, error] {
	f, err := jetsource.AggregateFilter(aggregate)
	if err != nil {
		return func(yield func(jetsource.Event, error) bool) { yield(jetsource.Event{}, err) }
	}
	return s.Read(ctx, jetsource.Query{Filters: []subjects.Filter{f}, FromSequence: from})
}

// Latest implements [jetsource.Store.Latest]. Like [Store.Read], it
// yields malformed events instead of failing on them: the latest message
// of a subject may be one.
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

// storedAt reads the stream, stream sequence and time of a delivered
// message from its reply subject, as [jetstream.Msg.Metadata] does but
// without allocating:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>
//	$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>[.<token>...]
//
// ok is false for any other form (Metadata then tells what is wrong).
func storedAt(reply string) (at jetsource.Stored, ok bool) {
	const prefix = "$JS.ACK."
	if len(reply) <= len(prefix) || reply[:len(prefix)] != prefix {
		return at, false
	}
	// The tokens after the prefix: 7 (v1) or at least 9 (v2).
	var tok [9]string
	n, rest := 0, reply[len(prefix):]
	for n < len(tok) {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			tok[n] = rest
			n++
			rest = ""
			break
		}
		tok[n], rest = rest[:i], rest[i+1:]
		n++
	}
	var stream, sseq, ts string
	switch {
	case n == 7 && rest == "":
		stream, sseq, ts = tok[0], tok[3], tok[5]
	case n == 9:
		stream, sseq, ts = tok[2], tok[5], tok[7]
	default:
		return at, false
	}
	seq, ok1 := parseDecimal(sseq)
	nanos, ok2 := parseDecimal(ts)
	if !ok1 || !ok2 || stream == "" || nanos > math.MaxInt64 {
		return at, false
	}
	return jetsource.Stored{Stream: stream, Sequence: seq, Time: time.Unix(0, int64(nanos))}, true
}

// parseDecimal parses a non-empty string of ASCII digits that fits in a
// uint64.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// consume runs an ordered consumer and yields the events it delivers that
// match q's filters and time, up to limit events, until the event at
// sequence until (0: until ctx ends).
//
// The consumer's message handler, on nats.go's delivery goroutine, reads
// the stream sequence and time from the reply subject (in place) and
// decodes the event; the events reach the reader through a [readBuffer]
// in bulk. So decoding overlaps with what the reader's caller does, and a
// message costs no timer and no channel operation of its own.
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
	b := newReadBuffer(s.pullBatch, until)
	cc, err := cons.Consume(b.deliver, jetstream.PullMaxMessages(s.pullBatch), jetstream.ConsumeErrHandler(b.consumeError))
	if err != nil {
		s.dropConsumer(cons)
		yield(jetsource.Event{}, fmt.Errorf("jetstore: read: %w", mapErr(s.js, err)))
		return
	}
	defer func() {
		// Release a handler waiting for room, then stop the consumer and
		// remove it on the server at once: the server allows a limited
		// number per stream, and short reads come by the thousand. Both
		// wait for the ordered consumer's lock, which a reset under way
		// holds for as long as one attempt to recreate the consumer (up
		// to 10s with the server gone), so the read does not wait for
		// them: they finish on a goroutine of their own.
		b.close()
		go func() {
			cc.Stop()
			s.dropConsumer(cons)
		}()
	}()
	closed := cc.Closed()
	var timer *time.Timer
	if until > 0 {
		// A bounded read must not wait forever for a server that went
		// away: the ordered consumer would keep trying to reset. One
		// timer serves every wait.
		timer = time.NewTimer(s.timeout)
		defer timer.Stop()
	}
	filtered := len(q.Filters) > 0 || !q.Since.IsZero()
	n := 0
	var items []readItem
	for {
		var err error
		items, err = b.take(ctx, items, closed, timer, s.timeout)
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
		for i := range items {
			it := &items[i]
			if ctx.Err() != nil {
				if until > 0 {
					yield(jetsource.Event{}, ctx.Err())
				}
				return
			}
			if it.err != nil {
				yield(jetsource.Event{}, it.err)
				return
			}
			if !it.internal && (!filtered || q.Match(it.e)) {
				if !yield(it.e, nil) {
					return
				}
				if n++; limit > 0 && n >= limit {
					return
				}
			}
			if until > 0 && it.e.Sequence >= until {
				return
			}
		}
	}
}

type readItem struct {
	e   jetsource.Event
	err error
	// internal marks a message of jetsource's own (a guard): no event,
	// never yielded, but its sequence still ends a bounded read.
	internal bool
}

// readBuffer carries decoded events from the consumer's message handler
// to the reader, in bulk: the handler appends under a mutex and wakes the
// reader only when the buffer was empty; the reader takes everything at
// once. A full buffer makes the handler wait, which stops the pulls.
type readBuffer struct {
	until uint64

	deliverMu sync.Mutex  // serializes handlers of successive consumers
	lastSeq   uint64      // the last sequence delivered (under deliverMu)
	stopped   atomic.Bool // done, for the handler to skip decoding

	mu       sync.Mutex
	items    []readItem
	limit    int
	done     bool  // the reader left, or nothing more is to come
	err      error // the consumer failed
	notEmpty chan struct{}
	notFull  chan struct{}
}

func newReadBuffer(limit int, until uint64) *readBuffer {
	return &readBuffer{until: until, limit: max(limit, 1), notEmpty: make(chan struct{}, 1), notFull: make(chan struct{}, 1)}
}

// deliver is the consumer's message handler.
func (b *readBuffer) deliver(msg jetstream.Msg) {
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	if b.stopped.Load() {
		return
	}
	at, ok := storedAt(msg.Reply())
	if !ok {
		md, err := msg.Metadata()
		if err != nil {
			b.push(readItem{err: fmt.Errorf("jetstore: read: %w", err)}, true)
			return
		}
		at = jetsource.Stored{Stream: md.Stream, Sequence: md.Sequence.Stream, Time: md.Timestamp}
	}
	if at.Sequence <= b.lastSeq {
		return // delivered again by a consumer that replaced the first
	}
	b.lastSeq = at.Sequence
	if jetsource.InternalSubject(msg.Subject()) {
		b.push(readItem{e: jetsource.Event{Sequence: at.Sequence, Stream: at.Stream}, internal: true}, b.until > 0 && at.Sequence >= b.until)
		return
	}
	// A message that is no valid event comes as a malformed event: no
	// message can stop a read.
	e := jetsource.DecodeStored(msg.Subject(), msg.Headers(), msg.Data(), at)
	b.push(readItem{e: e}, b.until > 0 && at.Sequence >= b.until)
}

// push appends an item, waiting while the buffer is full; last tells that
// nothing more is wanted after it.
func (b *readBuffer) push(it readItem, last bool) {
	b.mu.Lock()
	for len(b.items) >= b.limit && !b.done {
		b.mu.Unlock()
		<-b.notFull
		b.mu.Lock()
	}
	if b.done {
		b.mu.Unlock()
		return
	}
	wasEmpty := len(b.items) == 0
	b.items = append(b.items, it)
	if last {
		b.done = true
		b.stopped.Store(true)
	}
	b.mu.Unlock()
	if wasEmpty {
		wake(b.notEmpty)
	}
}

// consumeError receives the consumer's errors. The ordered consumer
// recovers from most of them itself (a missed heartbeat, a deleted
// consumer, a reconnect) by creating a new consumer; a closed connection
// ends the read.
func (b *readBuffer) consumeError(_ jetstream.ConsumeContext, err error) {
	if !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, jetstream.ErrConnectionClosed) {
		return
	}
	b.mu.Lock()
	if b.err == nil {
		b.err = nats.ErrConnectionClosed
	}
	b.mu.Unlock()
	wake(b.notEmpty)
}

// close tells the handler that the reader left.
func (b *readBuffer) close() {
	b.mu.Lock()
	b.done = true
	b.stopped.Store(true)
	b.mu.Unlock()
	wake(b.notFull)
}

// take returns the buffered items, reusing buf, waiting for at least
// one until ctx ends, the consumer closes or fails, or (with a timer) the
// limit passes without an item (nats.ErrTimeout).
func (b *readBuffer) take(ctx context.Context, buf []readItem, closed <-chan struct{}, timer *time.Timer, limit time.Duration) ([]readItem, error) {
	clear(buf) // hold no events for the GC
	buf = buf[:0]
	var timeout <-chan time.Time
	if timer != nil {
		timeout = timer.C
	}
	armed := false
	for {
		b.mu.Lock()
		if len(b.items) > 0 {
			buf, b.items = b.items, buf
			b.mu.Unlock()
			wake(b.notFull)
			return buf, nil
		}
		err := b.err
		b.mu.Unlock()
		if err != nil {
			return buf, err
		}
		if timer != nil && !armed {
			timer.Reset(limit)
			armed = true
		}
		select {
		case <-b.notEmpty:
		case <-ctx.Done():
			return buf, ctx.Err()
		case <-closed:
			closed = nil
			b.mu.Lock()
			if b.err == nil {
				b.err = jetstream.ErrMsgIteratorClosed
			}
			b.mu.Unlock()
		case <-timeout:
			return buf, nats.ErrTimeout
		}
	}
}

// wake wakes the waiter on c, if any.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
