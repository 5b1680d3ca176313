package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/state"
)

// surfacePull is how many messages a surface read asks for at once.
const surfacePull = 5000

// entry is what the surface says about one aggregate.
type entry struct {
	agg     string
	seq     uint64
	hash    string // "" when unknown: its latest event was not written by a runner
	deleted bool
	// state is the canonical JSON of the aggregate's events folded as
	// far as an index knows it (nil: unknown). It is used only when its
	// hash is the latest event's statehash.
	state []byte
}

// surface is what a run knows of the aggregates of one table. The
// entries are not changed once the rows are read (an index may be saved
// from them meanwhile); what the rows mark lives beside them.
type surface struct {
	pos   map[string]int
	ents  []entry
	seen  []bool              // per entry: a row has this aggregate
	added map[string]struct{} // aggregates of rows without an entry
}

func newSurface() *surface {
	return &surface{pos: map[string]int{}, added: map[string]struct{}{}}
}

// put returns the position of agg's entry, adding an empty one if needed.
func (s *surface) put(agg string) int {
	if i, ok := s.pos[agg]; ok {
		return i
	}
	s.ents = append(s.ents, entry{agg: agg})
	s.pos[agg] = len(s.ents) - 1
	return len(s.ents) - 1
}

// apply records a message of the table read in sequence order: its
// subject, sequence, headers and, when withData, its data folded into the
// state as [state.MergeReducer] folds it.
func (s *surface) apply(p *plan, subj string, seq uint64, h nats.Header, data []byte, withData bool) {
	agg, n := prefix(subj, p.ntokens)
	_, had := s.pos[agg]
	i := s.put(agg)
	en := &s.ents[i]
	if seq < en.seq {
		return
	}
	ce := h.Get(jetsource.HeaderSpecVersion) == "1.0"
	hash := ""
	if ce {
		hash = h.Get(jetsource.HeaderPrefix + ExtStateHash)
	}
	var st []byte
	switch {
	case withData && ce && !had && hash != "" && hash != deletedHash && !bytes.Contains(data, []byte("null")) && stateHash(data) == hash:
		// The first event of the aggregate, whose data is the
		// canonical state its statehash names (a runner's imported
		// event): folded onto the initial state it stays as it is.
		st = bytes.Clone(data)
	case withData && ce:
		prev := en.state
		if !had {
			prev = []byte("{}") // the reducer's initial state
		}
		st = mergeState(prev, data)
	}
	*en = entry{agg: en.agg, seq: seq, state: st}
	switch {
	case n != p.ntokens+1 || hash == "":
		// An event deeper in the aggregate, or one not written by a
		// runner: fold to know.
	case hash == deletedHash:
		en.deleted = true
	default:
		en.hash = strings.Clone(hash)
	}
}

// mergeState folds data into the canonical state prev; nil when prev is
// unknown or data is no JSON.
func mergeState(prev, data []byte) []byte {
	if prev == nil {
		return nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return prev
	}
	patch, err := state.DecodeJSON(data)
	if err != nil {
		return nil
	}
	old, err := state.DecodeJSON(prev)
	if err != nil {
		return nil
	}
	b, err := json.Marshal(state.MergeValue(old, patch))
	if err != nil {
		return nil
	}
	return b
}

// knownState returns the state of an entry when the index knows it and
// it is the state its latest event's statehash names.
func (en *entry) knownState() (map[string]any, bool) {
	if en.state == nil || en.hash == "" || stateHash(en.state) != en.hash {
		return nil, false
	}
	v, err := state.DecodeJSON(en.state)
	if err != nil {
		return nil, false
	}
	return asObject(v), true
}

// consume reads the messages under the table's filter with an ordered
// consumer and hands each to fn (one at a time), until fn says stop. It
// fails when no message comes for a whole timeout.
func (w *writer) consume(ctx context.Context, p *plan, cfg jetstream.OrderedConsumerConfig, fn func(m jetstream.Msg, seq uint64) bool) error {
	js := w.r.cfg.js
	cfg.FilterSubjects = []string{p.filter.String()}
	cfg.InactiveThreshold = time.Minute
	cctx, cancel := context.WithTimeout(ctx, w.r.cfg.timeout)
	cons, err := js.OrderedConsumer(cctx, w.r.store.Stream(), cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("read %s: %w", p.filter, err)
	}
	var (
		mu       sync.Mutex // guards failure and finished against the reader
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
			finish(fmt.Errorf("read %s: %w", p.filter, err))
			return
		}
		if fn(m, md.Sequence.Stream) {
			finish(nil)
		}
	}, jetstream.PullMaxMessages(surfacePull), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if jetstream.ErrConsumerDeleted == err || jetstream.ErrNoHeartbeat == err {
			mu.Lock()
			finish(fmt.Errorf("read %s: %w: %w", p.filter, jetsource.ErrUnavailable, err))
			mu.Unlock()
		}
	}))
	if err != nil {
		return fmt.Errorf("read %s: %w", p.filter, err)
	}
	defer cc.Stop()
	tick := time.NewTicker(w.r.cfg.timeout)
	defer tick.Stop()
	last := int64(-1)
	for {
		select {
		case <-done:
			mu.Lock()
			defer mu.Unlock()
			return failure
		case <-ctx.Done():
			mu.Lock()
			finish(ctx.Err())
			mu.Unlock()
			return ctx.Err()
		case <-tick.C:
			if c := count.Load(); c == last {
				mu.Lock()
				finish(nil)
				mu.Unlock()
				return fmt.Errorf("read %s: %w: no message for %v", p.filter, jetsource.ErrUnavailable, w.r.cfg.timeout)
			} else {
				last = c
			}
		}
	}
}

// surfaceJS reads the surface of a table with an ordered consumer that
// delivers the last message of each subject, and keeps of each message
// only its subject, sequence and statehash header: decoding whole events
// costs several times the read itself. A message without the headers of
// an event the runner wrote (ce-specversion 1.0 and ce-statehash) counts
// as a latest event of unknown state, whose aggregate is folded (and the
// fold decodes every event). The read stops at head, the last sequence
// under the table's filter read before.
func (w *writer) surfaceJS(ctx context.Context, p *plan, head uint64) (*surface, error) {
	s := newSurface()
	err := w.consume(ctx, p, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy},
		func(m jetstream.Msg, seq uint64) bool {
			if seq > head {
				return true
			}
			s.apply(p, m.Subject(), seq, m.Headers(), nil, false)
			return seq == head
		})
	if err != nil {
		return nil, fmt.Errorf("the surface of %s: %w", p.filter, err)
	}
	return s, nil
}
