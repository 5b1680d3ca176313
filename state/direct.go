package state

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
)

const codeStreamNotFound = 10059

// direct reads a stream with stream info and direct gets, the requests
// the server answers from its subject index and the blocks that hold the
// messages asked for, without a consumer.
type direct struct {
	nc       *nats.Conn
	stream   string
	getSubj  string
	infoSubj string
}

func newDirect(js jetstream.JetStream, stream string) *direct {
	prefix := "$JS.API."
	if p := js.Options().APIPrefix; p != "" {
		prefix = p
		if p[len(p)-1] != '.' {
			prefix += "."
		}
	}
	return &direct{nc: js.Conn(), stream: stream, getSubj: prefix + "DIRECT.GET." + stream, infoSubj: prefix + "STREAM.INFO." + stream}
}

// counts is what stream info tells about the subjects under a filter.
type counts struct {
	// events is the number of stored events matching the filter.
	events uint64
	// head is the stream's last sequence, read before the counts: every
	// event at or before it is counted.
	head uint64
	// exact is true when the counts can be compared with a snapshot's:
	// the stream never removes events (no deletes, purges, limits or
	// TTLs) and the answer was not cut short.
	exact bool
	// direct is true when the stream allows direct gets.
	direct bool
}

// info asks the stream for the event counts of the subjects under filter.
func (d *direct) info(ctx context.Context, filter string) (counts, error) {
	body, _ := json.Marshal(map[string]any{"subjects_filter": filter})
	resp, err := d.nc.RequestWithContext(ctx, d.infoSubj, body)
	if err != nil {
		return counts{}, fmt.Errorf("state: stream info %s: %w", d.stream, unavailable(err))
	}
	var r struct {
		Config struct {
			Retention   string `json:"retention"`
			MaxMsgs     int64  `json:"max_msgs"`
			MaxBytes    int64  `json:"max_bytes"`
			MaxAge      int64  `json:"max_age"`
			MaxPerSubj  int64  `json:"max_msgs_per_subject"`
			DenyDelete  bool   `json:"deny_delete"`
			DenyPurge   bool   `json:"deny_purge"`
			AllowMsgTTL bool   `json:"allow_msg_ttl"`
			AllowDirect bool   `json:"allow_direct"`
		} `json:"config"`
		State struct {
			LastSeq  uint64            `json:"last_seq"`
			Subjects map[string]uint64 `json:"subjects"`
		} `json:"state"`
		Total  int                 `json:"total"`
		Offset int                 `json:"offset"`
		Limit  int                 `json:"limit"`
		Error  *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return counts{}, fmt.Errorf("state: stream info %s: %w", d.stream, err)
	}
	if r.Error != nil {
		if r.Error.ErrorCode == codeStreamNotFound {
			return counts{}, fmt.Errorf("%w: %s: %w", jetsource.ErrStreamNotFound, d.stream, r.Error)
		}
		return counts{}, fmt.Errorf("state: stream info %s: %w", d.stream, r.Error)
	}
	c := counts{head: r.State.LastSeq, direct: r.Config.AllowDirect}
	for _, n := range r.State.Subjects {
		c.events += n
	}
	cfg := r.Config
	c.exact = cfg.Retention == "limits" && cfg.MaxMsgs <= 0 && cfg.MaxBytes <= 0 && cfg.MaxAge <= 0 && cfg.MaxPerSubj <= 0 &&
		cfg.DenyDelete && cfg.DenyPurge && !cfg.AllowMsgTTL && r.Offset == 0 && (r.Limit == 0 || r.Total <= r.Limit)
	return c, nil
}

// next returns the first event matching filter at or after sequence from;
// ok is false when there is none.
func (d *direct) next(ctx context.Context, filter string, from uint64) (e jetsource.Event, ok bool, err error) {
	body, _ := json.Marshal(map[string]any{"next_by_subj": filter, "seq": from})
	resp, err := d.nc.RequestWithContext(ctx, d.getSubj, body)
	if err != nil {
		return e, false, fmt.Errorf("state: direct get: %w", unavailable(err))
	}
	if st := resp.Header.Get("Status"); st != "" {
		if st == "404" {
			return e, false, nil
		}
		return e, false, fmt.Errorf("state: direct get: status %s %s", st, resp.Header.Get("Description"))
	}
	e, err = decode(resp)
	return e, err == nil, err
}

// batch returns up to n events matching filter from sequence from on, in
// sequence order, with one batched direct get.
func (d *direct) batch(ctx context.Context, filter string, from uint64, n int) ([]jetsource.Event, error) {
	body, _ := json.Marshal(map[string]any{"next_by_subj": filter, "seq": from, "batch": n})
	return d.streamGet(ctx, body)
}

// errTooMany is a multi_last request that matched more subjects than the
// server answers at once.
var errTooMany = errors.New("state: too many subjects for one batched direct get")

// lastPerSubject returns, in sequence order, the last event of each
// subject matching filter among the events from sequence from to upTo.
func (d *direct) lastPerSubject(ctx context.Context, filter string, from, upTo uint64) ([]jetsource.Event, error) {
	body, _ := json.Marshal(map[string]any{"multi_last": []string{filter}, "seq": from, "up_to_seq": upTo})
	return d.streamGet(ctx, body)
}

// stream_ sends a batched direct get and collects the events it answers
// with until the end-of-batch marker, in sequence order.
func (d *direct) streamGet(ctx context.Context, body []byte) ([]jetsource.Event, error) {
	inbox := d.nc.NewInbox()
	sub, err := d.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("state: direct get: %w", unavailable(err))
	}
	defer sub.Unsubscribe()
	if err := d.nc.PublishRequest(d.getSubj, inbox, body); err != nil {
		return nil, fmt.Errorf("state: direct get: %w", unavailable(err))
	}
	var out []jetsource.Event
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("state: direct get: %w", unavailable(err))
		}
		switch st := m.Header.Get("Status"); st {
		case "":
			e, err := decode(m)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
			continue
		case "204":
			slices.SortFunc(out, func(a, b jetsource.Event) int { return cmp.Compare(a.Sequence, b.Sequence) })
			return out, nil
		case "404":
			return nil, nil
		case "413":
			return nil, errTooMany
		case "503":
			return nil, fmt.Errorf("%w: no direct get responder for stream %s", jetsource.ErrUnavailable, d.stream)
		default:
			return nil, fmt.Errorf("state: direct get: status %s %s", st, m.Header.Get("Description"))
		}
	}
}

// decode turns a direct get answer into an event. A stored message that
// is no valid event comes back as a malformed event ([jetsource.DecodeStored])
// whose headers are those it was stored with; only an answer without a
// sequence is an error.
func decode(m *nats.Msg) (jetsource.Event, error) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return jetsource.Event{}, fmt.Errorf("state: direct get: bad sequence header %q", m.Header.Get(jetstream.SequenceHeader))
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
	e := jetsource.DecodeStored(m.Header.Get(jetstream.SubjectHeader), m.Header, m.Data,
		jetsource.Stored{Stream: m.Header.Get(jetstream.StreamHeader), Sequence: seq, Time: ts})
	if e.Malformed != nil {
		// The headers the direct get added are no part of the message.
		h := maps.Clone(e.Malformed.Header)
		for _, k := range directHeaders {
			delete(h, k)
		}
		e.Malformed.Header = h
	}
	return e, nil
}

// directHeaders are the headers a direct get adds to a stored message.
var directHeaders = []string{jetstream.StreamHeader, jetstream.SequenceHeader, jetstream.TimeStampHeaer,
	jetstream.SubjectHeader, "Nats-Num-Pending", "Nats-Last-Sequence", "Nats-UpTo-Sequence"}
