package subscriber

import (
	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
)

// decode turns a delivered message into an event: it is
// [jetsource.DecodeMsg], which reads the headers in one pass and decodes
// the headers jetsource writes without allocating.
func decode(subject string, h nats.Header, data []byte, at jetsource.Stored) (jetsource.Event, error) {
	return jetsource.DecodeMsg(subject, h, data, at)
}
