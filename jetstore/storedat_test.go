package jetstore

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// FuzzStoredAt checks the allocation-free reply-subject parser against
// nats.go's own: whenever storedAt accepts a reply subject, Metadata
// accepts it too and reads the same stream, sequence and time.
func FuzzStoredAt(f *testing.F) {
	for _, seed := range []string{
		"$JS.ACK.EVENTS.cons.1.42.7.1732550000000000000.0",                  // v1 form
		"$JS.ACK.hub.ACCHASH.EVENTS.cons.1.42.7.1732550000000000000.0.rand", // v2 form with a domain and a token
		"$JS.ACK._.ACCHASH.EVENTS.cons.2.9.9.5.3",                           // v2 without domain
		"$JS.ACK.EVENTS.cons.1.x.7.1.0",                                     // not a number
		"$JS.ACK.EVENTS.cons.1.18446744073709551616.7.1.0",                  // overflows
		"$JS.ACK..cons.1.1.1.1.0",                                           // empty stream
		"_INBOX.abc",                                                        // not an ack subject
		"$JS.ACK.EVENTS.cons.1.1.1",                                         // too short
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		at, ok := storedAt(reply)
		if !ok {
			return
		}
		md, err := (&nats.Msg{Subject: "x", Reply: reply, Sub: &nats.Subscription{}}).Metadata()
		if err != nil {
			t.Fatalf("storedAt accepted %q, Metadata refused it: %v", reply, err)
		}
		if md.Stream != at.Stream || md.Sequence.Stream != at.Sequence || !md.Timestamp.Equal(at.Time) {
			t.Fatalf("%q: storedAt %+v, Metadata stream %q seq %d time %v", reply, at, md.Stream, md.Sequence.Stream, md.Timestamp)
		}
	})
}
