package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// batchAck is the server's answer to the commit of an atomic batch.
type batchAck struct {
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	Count    int                 `json:"count"`
	Error    *jetstream.APIError `json:"error"`
}

// publishAtomic sends msgs as one JetStream atomic batch (the stream
// stores all of them, contiguously and invisibly to readers until
// complete, or none) and returns the sequence of the first. Every message
// but the last is a plain publish; a problem with any of them abandons the
// batch and is reported in the answer to the last one, the commit.
func publishAtomic(ctx context.Context, nc *nats.Conn, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) == 0 {
		return 0, errors.New("projections: empty batch")
	}
	id := nats.NewInbox()[len(nats.InboxPrefix):]
	n := len(msgs)
	for i, m := range msgs {
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < n-1 {
			if err := nc.PublishMsg(m); err != nil {
				return 0, err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		resp, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return 0, err
		}
		var ack batchAck
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return 0, fmt.Errorf("projections: batch commit: bad answer %q: %w", resp.Data, err)
		}
		if ack.Error != nil {
			return 0, ack.Error
		}
		if ack.Count != n || ack.Sequence < uint64(n) {
			return 0, fmt.Errorf("projections: batch commit stored %d of %d messages", ack.Count, n)
		}
		return ack.Sequence - uint64(n) + 1, nil
	}
	return 0, nil
}
