package subscriber

import (
	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
)

// decode turns a delivered message into an event: it is
// [jetsource.DecodeStored], which never fails. A message that is no valid
// event comes back with [jetsource.Event.Malformed] set; the subscriber
// dead-letters it without calling the handler.
func decode(subject string, h nats.Header, data []byte, at jetsource.Stored) jetsource.Event {
	return jetsource.DecodeStored(subject, h, data, at)
}
