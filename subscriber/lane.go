package subscriber

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
)

// handBackMargin separates the redelivery of an event handed back at
// shutdown from the redelivery it must follow.
const handBackMargin = time.Second

// delivery is one delivered message in the subscriber's hands.
type delivery struct {
	msg  jetstream.Msg
	agg  string // the subject without its last token
	meta *jetstream.MsgMetadata
	// malformed is the reason the message is no valid event, if it is
	// none.
	malformed string
}

func (d *delivery) seq() uint64 {
	if d.meta == nil {
		return 0
	}
	return d.meta.Sequence.Stream
}

// hold is an aggregate with a retry pending: the event at retrySeq was
// handed back to the server for a later delivery, and the aggregate's
// later events wait here until it is settled.
type hold struct {
	retrySeq uint64
	retryAt  time.Time // when the server delivers it again
	deadline time.Time // when to give up waiting for it
	waiting  []delivery
}

// lane handles the events of the aggregates that hash to it, one at a
// time.
type lane struct {
	s    *Subscriber
	wake chan struct{}

	mu       sync.Mutex
	queue    []delivery // arrived, not yet looked at
	head     int
	ready    []delivery // released from a hold; looked at before queue
	holds    map[string]*hold
	current  delivery
	running  bool // a handler runs for current
	stopping bool
	closed   bool // handed back: late arrivals go straight back
}

func newLane(s *Subscriber) *lane {
	return &lane{s: s, wake: make(chan struct{}, 1), holds: map[string]*hold{}}
}

// dispatch routes a delivered message to the lane of its aggregate.
func (s *Subscriber) dispatch(m jetstream.Msg) {
	subj := m.Subject()
	agg := subj
	if i := strings.LastIndexByte(subj, '.'); i > 0 {
		agg = subj[:i]
	}
	s.lanes[fnv1a(agg)%uint64(len(s.lanes))].push(delivery{msg: m, agg: agg})
}

func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (l *lane) push(d delivery) {
	l.mu.Lock()
	if l.closed {
		delay := l.handBackDelay(d.agg, time.Now())
		l.mu.Unlock()
		nakAfter(d.msg, delay)
		return
	}
	// The lane parks only after finding its queue empty, so only the
	// push onto an empty queue needs to wake it.
	wasEmpty := l.head == len(l.queue)
	l.queue = append(l.queue, d)
	l.mu.Unlock()
	if wasEmpty {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

func (l *lane) stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// pop returns the next delivery to look at, or false when there is none.
// l.mu must be held.
func (l *lane) pop() (delivery, bool) {
	if len(l.ready) > 0 {
		d := l.ready[0]
		l.ready[0] = delivery{}
		l.ready = l.ready[1:]
		return d, true
	}
	if l.head < len(l.queue) {
		d := l.queue[l.head]
		l.queue[l.head] = delivery{}
		l.head++
		if l.head == len(l.queue) {
			l.queue, l.head = l.queue[:0], 0
		} else if l.head > 1024 && l.head > len(l.queue)/2 {
			n := copy(l.queue, l.queue[l.head:])
			clear(l.queue[n:])
			l.queue, l.head = l.queue[:n], 0
		}
		return d, true
	}
	return delivery{}, false
}

// run is the lane's loop: take the next delivery, hold it back when its
// aggregate waits for a retry, else handle it. The lock is taken once per
// event in the common case: settling the previous event and taking the
// next happen together.
func (l *lane) run() {
	defer l.s.lanesDone.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	l.mu.Lock()
	for {
		// Take the next delivery, or wait for one.
		var d delivery
		for {
			if l.stopping {
				l.mu.Unlock()
				return
			}
			if len(l.holds) > 0 {
				l.releaseExpired(time.Now())
			}
			var ok bool
			if d, ok = l.pop(); ok {
				break
			}
			next := l.nextDeadline()
			l.mu.Unlock()
			if !next.IsZero() {
				timer.Reset(time.Until(next))
			}
			select {
			case <-l.wake:
			case <-timer.C:
			}
			timer.Stop()
			l.mu.Lock()
		}
		h := l.holds[d.agg]
		if h == nil {
			l.current, l.running = d, true
		}
		l.mu.Unlock()
		if d.meta == nil {
			meta, err := d.msg.Metadata()
			if err != nil {
				l.s.log.Error("message without JetStream metadata dropped", "subject", d.msg.Subject(), "err", err)
				l.mu.Lock()
				l.current, l.running = delivery{}, false
				continue
			}
			d.meta = meta
		}
		if h != nil {
			l.mu.Lock()
			if h = l.holds[d.agg]; h != nil && d.seq() != h.retrySeq {
				h.add(d)
				continue
			}
			l.current, l.running = d, true
			l.mu.Unlock()
		}

		delay, settled := l.s.handle(&d)

		l.mu.Lock()
		l.current, l.running = delivery{}, false
		if len(l.holds) == 0 && settled {
			continue
		}
		h = l.holds[d.agg]
		switch {
		case settled && h != nil && h.retrySeq == d.seq():
			delete(l.holds, d.agg)
			l.ready = append(l.ready, h.waiting...)
		case !settled:
			if h == nil {
				h = &hold{}
				l.holds[d.agg] = h
			}
			h.retrySeq, h.retryAt = d.seq(), time.Now().Add(delay)
			h.deadline = h.retryAt.Add(2 * l.s.o.ackWait)
		}
	}
}

// add puts a delivery among the waiting ones in stream order, replacing
// an earlier delivery of the same event.
func (h *hold) add(d delivery) {
	i, found := slices.BinarySearchFunc(h.waiting, d.seq(), func(w delivery, seq uint64) int { return cmp.Compare(w.seq(), seq) })
	if found {
		h.waiting[i] = d
		return
	}
	h.waiting = slices.Insert(h.waiting, i, d)
}

// releaseExpired stops waiting for retries that did not come back in time
// (another instance sharing the durable got them). While the connection
// is down no retry can come back, so the deadlines move on instead.
// l.mu must be held.
func (l *lane) releaseExpired(now time.Time) {
	connected := l.s.js.Conn().Status() == nats.CONNECTED
	for agg, h := range l.holds {
		if now.Before(h.deadline) {
			continue
		}
		if !connected {
			h.deadline = now.Add(2 * l.s.o.ackWait)
			continue
		}
		l.s.log.Warn("retry not delivered back in time: handling the aggregate's later events", "aggregate", agg, "sequence", h.retrySeq, "waiting", len(h.waiting))
		delete(l.holds, agg)
		l.ready = append(l.ready, h.waiting...)
	}
}

func (l *lane) nextDeadline() time.Time {
	var next time.Time
	for _, h := range l.holds {
		if next.IsZero() || h.deadline.Before(next) {
			next = h.deadline
		}
	}
	return next
}

// held appends the messages in the lane's hands: the one being handled,
// the queued ones and the held-back ones.
func (l *lane) held(buf []jetstream.Msg) []jetstream.Msg {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return buf
	}
	if l.running {
		buf = append(buf, l.current.msg)
	}
	for _, d := range l.ready {
		buf = append(buf, d.msg)
	}
	for _, d := range l.queue[l.head:] {
		buf = append(buf, d.msg)
	}
	for _, h := range l.holds {
		for _, d := range h.waiting {
			buf = append(buf, d.msg)
		}
	}
	return buf
}

// handBackDelay is how long an event of agg handed back at shutdown waits
// before its redelivery, so that it comes after the event it follows:
// after a pending retry, after a handler that did not finish (whose event
// comes back after the ack wait), else at once. l.mu must be held.
func (l *lane) handBackDelay(agg string, now time.Time) time.Duration {
	var d time.Duration
	if l.running && l.current.agg == agg {
		d = l.s.o.ackWait + handBackMargin
	}
	if h := l.holds[agg]; h != nil {
		d = max(d, h.retryAt.Sub(now)+handBackMargin)
	}
	return d
}

// handBack returns to the server every event the lane did not start, in
// stream order per aggregate, each with the delay handBackDelay gives.
func (l *lane) handBack() {
	l.mu.Lock()
	l.closed = true
	all := append([]delivery(nil), l.ready...)
	all = append(all, l.queue[l.head:]...)
	for _, h := range l.holds {
		all = append(all, h.waiting...)
		h.waiting = nil
	}
	l.ready, l.queue, l.head = nil, nil, 0
	for i := range all {
		if all[i].meta == nil {
			all[i].meta, _ = all[i].msg.Metadata()
		}
	}
	slices.SortStableFunc(all, func(a, b delivery) int { return cmp.Compare(a.seq(), b.seq()) })
	now := time.Now()
	delays := make([]time.Duration, len(all))
	for i, d := range all {
		delays[i] = l.handBackDelay(d.agg, now)
	}
	l.mu.Unlock()
	for i, d := range all {
		nakAfter(d.msg, delays[i])
	}
}

func nakAfter(m jetstream.Msg, d time.Duration) {
	if d <= 0 {
		_ = m.Nak()
		return
	}
	_ = m.NakWithDelay(d)
}

// handle runs the handler on one delivery and settles it: ack on success,
// dead letter after the last delivery or on a permanent error, else a
// negative ack with the backoff delay. It reports the delay and whether
// the event is settled (acknowledged or dead-lettered).
func (s *Subscriber) handle(d *delivery) (time.Duration, bool) {
	meta := d.meta
	if jetsource.InternalSubject(d.msg.Subject()) {
		// jetsource's own message (a guard of a transaction): no event,
		// nothing to hand to the handler.
		if aerr := d.msg.Ack(); aerr != nil {
			s.log.Warn("ack", "sequence", meta.Sequence.Stream, "err", aerr)
		}
		s.noteAck(meta.Sequence.Stream)
		return 0, true
	}
	e := decode(d.msg.Subject(), d.msg.Headers(), d.msg.Data(),
		jetsource.Stored{Stream: meta.Stream, Sequence: meta.Sequence.Stream, Time: meta.Timestamp})
	var err error
	if e.Malformed != nil {
		// No handler can take it: dead-letter it at once, with the
		// reason, and go on.
		d.malformed = e.Malformed.Reason
		err = Permanent(e.MalformedError())
	} else {
		err = s.call(e)
	}
	if err == nil {
		if aerr := d.msg.Ack(); aerr != nil {
			s.log.Warn("ack", "sequence", meta.Sequence.Stream, "err", aerr)
		}
		s.noteAck(meta.Sequence.Stream)
		return 0, true
	}
	deliveries := meta.NumDelivered
	delay := s.backoff(deliveries)
	if errors.Is(err, ErrPermanent) || deliveries >= uint64(s.o.maxDeliver) {
		dctx, cancel := context.WithTimeout(context.Background(), s.o.timeout)
		dlErr := s.deadLetter(dctx, d, err)
		cancel()
		if dlErr == nil {
			if terr := d.msg.TermWithReason("dead-lettered"); terr != nil {
				s.log.Warn("term", "sequence", meta.Sequence.Stream, "err", terr)
			}
			s.log.Warn("event dead-lettered", "subject", d.msg.Subject(), "sequence", meta.Sequence.Stream,
				"deliveries", deliveries, "dead_letter", s.DeadLetterSubject(d.msg.Subject()), "err", err)
			return 0, true
		}
		s.log.Error("dead letter not stored: retrying the event", "subject", d.msg.Subject(), "sequence", meta.Sequence.Stream, "err", dlErr)
	} else {
		s.log.Debug("handler failed: retrying", "subject", d.msg.Subject(), "sequence", meta.Sequence.Stream,
			"deliveries", deliveries, "delay", delay, "err", err)
	}
	if nerr := d.msg.NakWithDelay(delay); nerr != nil {
		s.log.Warn("nak", "sequence", meta.Sequence.Stream, "err", nerr)
	}
	return delay, false
}

// call runs the handler, turning a panic into a [*PanicError].
func (s *Subscriber) call(e jetsource.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Recovered(r)
			s.log.Error("handler panicked", "subject", e.Subject.String(), "sequence", e.Sequence, "panic", fmt.Sprint(r))
		}
	}()
	return s.handler(s.hctx, e)
}

func (s *Subscriber) backoff(deliveries uint64) time.Duration {
	i := int(min(max(deliveries, 1)-1, uint64(len(s.o.backoff)-1)))
	return s.o.backoff[i]
}

func (s *Subscriber) noteAck(seq uint64) {
	s.acked.Add(1)
	for {
		cur := s.lastAcked.Load()
		if seq <= cur || s.lastAcked.CompareAndSwap(cur, seq) {
			return
		}
	}
}
