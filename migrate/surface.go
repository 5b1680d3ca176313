package migrate

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
)

// surfacePull is how many messages a surface read asks for at once.
const surfacePull = 5000

// surfaceJS reads the surface of a table with an ordered consumer that
// delivers the last message of each subject, and keeps of each message
// only its subject, sequence and statehash header: decoding whole events
// costs several times the read itself. A message without the headers of
// an event the runner wrote (ce-specversion 1.0 and ce-statehash) counts
// as a latest event of unknown state, whose aggregate is folded (and the
// fold decodes every event). The read stops at head, the last sequence
// under the table's filter read before.
func (w *writer) surfaceJS(ctx context.Context, p *plan, head uint64) (map[string]*entry, error) {
	js := w.r.cfg.js
	cctx, cancel := context.WithTimeout(ctx, w.r.cfg.timeout)
	cons, err := js.OrderedConsumer(cctx, w.r.store.Stream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{p.filter.String()}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		InactiveThreshold: time.Minute,
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("read the surface of %s: %w", p.filter, err)
	}
	s := map[string]*entry{}
	var (
		mu       sync.Mutex // guards s and failure against the reader
		failure  error
		finished bool
		count    atomic.Int64
		done     = make(chan struct{})
	)
	finish := func(err error) {
		if !finished {
			finished, failure = true, err
			close(done)
		}
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if finished {
			return
		}
		count.Add(1)
		md, err := m.Metadata()
		if err != nil {
			finish(fmt.Errorf("read the surface of %s: %w", p.filter, err))
			return
		}
		seq := md.Sequence.Stream
		if seq > head {
			finish(nil)
			return
		}
		h := m.Headers()
		subj := m.Subject()
		agg, n := prefix(subj, p.ntokens)
		en := s[agg]
		if en == nil {
			en = &entry{}
			s[agg] = en
		}
		if seq >= en.seq {
			hash := ""
			if h.Get(jetsource.HeaderSpecVersion) == "1.0" {
				hash = h.Get(jetsource.HeaderPrefix + ExtStateHash)
			}
			*en = entry{seq: seq}
			switch {
			case n != p.ntokens+1 || hash == "":
				// An event deeper in the aggregate, or one not written by
				// a runner: fold to know.
			case hash == deletedHash:
				en.deleted = true
			default:
				en.hash = strings.Clone(hash)
			}
		}
		if seq == head {
			finish(nil)
		}
	}, jetstream.PullMaxMessages(surfacePull), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if jetstream.ErrConsumerDeleted == err || jetstream.ErrNoHeartbeat == err {
			mu.Lock()
			finish(fmt.Errorf("read the surface of %s: %w: %w", p.filter, jetsource.ErrUnavailable, err))
			mu.Unlock()
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("read the surface of %s: %w", p.filter, err)
	}
	defer cc.Stop()
	// Fail when no message comes for a whole timeout.
	tick := time.NewTicker(w.r.cfg.timeout)
	defer tick.Stop()
	last := int64(-1)
	for {
		select {
		case <-done:
			mu.Lock()
			defer mu.Unlock()
			if failure != nil {
				return nil, failure
			}
			return s, nil
		case <-ctx.Done():
			mu.Lock()
			finish(ctx.Err())
			mu.Unlock()
			return nil, ctx.Err()
		case <-tick.C:
			if c := count.Load(); c == last {
				mu.Lock()
				finish(nil)
				mu.Unlock()
				return nil, fmt.Errorf("read the surface of %s: %w: no message for %v", p.filter, jetsource.ErrUnavailable, w.r.cfg.timeout)
			} else {
				last = c
			}
		}
	}
}
