package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

// Defaults of [WithFoldConcurrency] and of the number of changed rows
// whose aggregates are folded together before their events are appended.
const (
	DefaultFoldConcurrency = 16
	foldBatch              = 1024
)

// changeJob is a row whose state hash differs from its aggregate's
// latest event: its aggregate must be folded to know the patch.
type changeJob struct {
	pd    pending
	row   row
	state any    // the aggregate's state, once folded
	seq   uint64 // the sequence of its last event
	err   error
}

// queueChange holds a changed row until enough are queued to fold their
// aggregates together.
func (w *writer) queueChange(ctx context.Context, pd pending, r row) error {
	w.changes = append(w.changes, changeJob{pd: pd, row: r})
	if len(w.changes) < foldBatch {
		return nil
	}
	return w.flushChanges(ctx)
}

// flushChanges folds the aggregates of the queued rows, at most
// [WithFoldConcurrency] at once, then writes their changed events in the
// order of the rows.
func (w *writer) flushChanges(ctx context.Context) error {
	jobs := w.changes
	w.changes = w.changes[:0]
	if len(jobs) == 0 {
		return nil
	}
	sem := make(chan struct{}, w.r.cfg.foldConcurrency)
	var wg sync.WaitGroup
	for i := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			j := &jobs[i]
			j.state, j.seq, j.err = w.fold(ctx, j.row.aggregate)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range jobs {
		if err := w.change(ctx, &jobs[i]); err != nil {
			return err
		}
		jobs[i] = changeJob{} // let the row go
	}
	return nil
}

// change writes the merge patch that turns the folded state of a job's
// aggregate into the row's, if there is a difference.
func (w *writer) change(ctx context.Context, j *changeJob) error {
	pd, row := j.pd, j.row
	p := pd.p
	if j.err != nil {
		return &RowError{Table: p.t.Table, Row: pd.num, Key: pd.key, Err: fmt.Errorf("fold %s: %w", row.aggregate, j.err)}
	}
	old := asObject(j.state)
	if c, err := canonicalState(old); err == nil && stateHash(c) == row.hash {
		w.counts.Unchanged++
		return nil
	}
	if row.state == nil {
		st, err := decodeState(row.data)
		if err != nil {
			return &RowError{Table: p.t.Table, Row: pd.num, Key: pd.key, Err: err}
		}
		row.state = st
	}
	patch := diff(old, row.state)
	if len(patch) == 0 {
		w.counts.Unchanged++
		return nil
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return &RowError{Table: p.t.Table, Row: pd.num, Key: pd.key, Err: err}
	}
	pd.kind = kindChanged
	e, err := w.event(p, row.aggregate, ChangedType, j.seq, row.hash, data)
	if err != nil {
		return &RowError{Table: p.t.Table, Row: pd.num, Key: pd.key, Err: err}
	}
	return w.append(ctx, pd, e, j.seq)
}

// fold returns the state of an aggregate, its events folded by JSON merge
// patch ([state.MergeReducer]), and the sequence of its last event. With
// [WithJetStream] it reads the aggregate's events with batched direct
// gets; otherwise, or when the stream does not allow direct gets, with
// [state.Load] through the store.
func (w *writer) fold(ctx context.Context, aggregate string) (any, uint64, error) {
	agg, err := subjects.Parse(aggregate)
	if err != nil {
		return nil, 0, err
	}
	if w.direct != nil {
		s, seq, ok, err := w.direct.fold(ctx, agg, w.r.cfg.timeout)
		if ok || err != nil {
			return s, seq, err
		}
	}
	return state.Load(ctx, w.r.store, state.MergeReducer(), agg, state.WithTimeout(w.r.cfg.timeout))
}

// directFolder reads an aggregate's events with batched direct gets: one
// request per aggregate (per 1000 events), answered from the stream's
// subject index, instead of a consumer per aggregate.
type directFolder struct {
	nc     *nats.Conn
	stream string
	get    string
}

func newDirectFolder(js jetstream.JetStream, stream string) *directFolder {
	prefix := "$JS.API."
	if p := js.Options().APIPrefix; p != "" {
		prefix = p
		if p[len(p)-1] != '.' {
			prefix += "."
		}
	}
	return &directFolder{nc: js.Conn(), stream: stream, get: prefix + "DIRECT.GET." + stream}
}

const directBatch = 1000

// fold folds the events of the aggregate; ok is false when the stream
// does not answer direct gets (the caller reads another way).
func (d *directFolder) fold(ctx context.Context, agg subjects.Subject, timeout time.Duration) (s any, seq uint64, ok bool, err error) {
	filter, err := jetsource.AggregateFilter(agg)
	if err != nil {
		return nil, 0, false, err
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	r := state.MergeReducer()
	s = r.Initial()
	from := uint64(1)
	for {
		body, _ := json.Marshal(map[string]any{"next_by_subj": filter.String(), "seq": from, "batch": directBatch})
		evs, pending, ok, err := d.request(ctx, body)
		if err != nil || !ok {
			return nil, 0, ok, err
		}
		for _, e := range evs {
			if s, err = r.Apply(s, e); err != nil {
				return nil, 0, true, fmt.Errorf("%w: event %s at sequence %d: %w", state.ErrReducer, e.Subject, e.Sequence, err)
			}
			seq = e.Sequence
			from = e.Sequence + 1
		}
		// The events stored while the aggregate is read count too: the
		// append that follows is conditional on seq, the last one folded.
		if len(evs) == 0 || pending == 0 {
			return s, seq, true, nil
		}
	}
}

// request sends one batched direct get and collects the events it
// answers with; pending is the number of matching events after them as
// the end-of-batch marker tells it.
func (d *directFolder) request(ctx context.Context, body []byte) (evs []jetsource.Event, pending uint64, ok bool, err error) {
	inbox := d.nc.NewInbox()
	sub, err := d.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, 0, false, fmt.Errorf("%w: direct get: %w", jetsource.ErrUnavailable, err)
	}
	defer sub.Unsubscribe()
	if err := d.nc.PublishRequest(d.get, inbox, body); err != nil {
		return nil, 0, false, fmt.Errorf("%w: direct get: %w", jetsource.ErrUnavailable, err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, false, ctx.Err()
			}
			return nil, 0, false, fmt.Errorf("%w: direct get: %w", jetsource.ErrUnavailable, err)
		}
		switch st := m.Header.Get("Status"); st {
		case "":
			seq, perr := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
			if perr != nil {
				return nil, 0, false, fmt.Errorf("direct get: bad sequence header %q", m.Header.Get(jetstream.SequenceHeader))
			}
			ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
			e, err := jetsource.DecodeMsg(m.Header.Get(jetstream.SubjectHeader), m.Header, m.Data,
				jetsource.Stored{Stream: m.Header.Get(jetstream.StreamHeader), Sequence: seq, Time: ts})
			if err != nil {
				return nil, 0, true, err
			}
			evs = append(evs, e)
		case "204":
			pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return evs, pending, true, nil
		case "404":
			return nil, 0, true, nil
		case "503":
			return nil, 0, false, nil // no direct gets on this stream
		default:
			return nil, 0, false, fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
		}
	}
}
