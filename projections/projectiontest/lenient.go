package projectiontest

import (
	"context"
	"iter"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

// Lenient is an event source for tests that reads a stream as every
// reader must: each stored message comes as an event, and one that does
// not decode comes with [jetsource.Event.Malformed] set
// ([jetsource.DecodeStored]) instead of ending the read. It reads through
// an ordered consumer; LastSequence is the store's. It satisfies
// [projections.Source] and the readers of the handlers package.
type Lenient struct {
	// JS is the connection's JetStream.
	JS jetstream.JetStream
	// Stream is the event stream.
	Stream string
	// Last answers LastSequence (a [jetsource.Store]).
	Last interface {
		LastSequence(ctx context.Context, f subjects.Filter) (uint64, error)
	}
}

var _ projections.Source = Lenient{}

// LastSequence returns the store's answer.
func (l Lenient) LastSequence(ctx context.Context, f subjects.Filter) (uint64, error) {
	return l.Last.LastSequence(ctx, f)
}

// Read yields the messages matching q in stream order, up to the last
// one stored when it began unless q.Follow is set. It honours Filters,
// FromSequence, Limit and Follow (not Since).
func (l Lenient) Read(ctx context.Context, q jetsource.Query) iter.Seq2[jetsource.Event, error] {
	return func(yield func(jetsource.Event, error) bool) {
		fs := q.Filters
		if len(fs) == 0 {
			fs = []subjects.Filter{subjects.All()}
		}
		var head uint64
		if !q.Follow {
			h, err := projections.Head(ctx, l, fs)
			if err != nil {
				yield(jetsource.Event{}, err)
				return
			}
			if h == 0 || h < q.FromSequence {
				return
			}
			head = h
		}
		cfg := jetstream.OrderedConsumerConfig{}
		for _, f := range subjects.Canonical(fs...) {
			cfg.FilterSubjects = append(cfg.FilterSubjects, f.String())
		}
		if q.FromSequence > 1 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, q.FromSequence
		}
		c, err := l.JS.OrderedConsumer(ctx, l.Stream, cfg)
		if err != nil {
			yield(jetsource.Event{}, err)
			return
		}
		msgs, err := c.Messages()
		if err != nil {
			yield(jetsource.Event{}, err)
			return
		}
		defer msgs.Stop()
		n := 0
		for {
			m, err := msgs.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() == nil {
					yield(jetsource.Event{}, err)
				}
				return
			}
			meta, err := m.Metadata()
			if err != nil {
				yield(jetsource.Event{}, err)
				return
			}
			e := jetsource.DecodeStored(m.Subject(), m.Headers(), m.Data(),
				jetsource.Stored{Stream: meta.Stream, Sequence: meta.Sequence.Stream, Time: meta.Timestamp})
			if !yield(e, nil) {
				return
			}
			n++
			if q.Limit > 0 && n >= q.Limit || head > 0 && meta.Sequence.Stream >= head {
				return
			}
		}
	}
}
