package subscriber

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// storedHeaders returns the headers of an event as jetsource appends it:
// the envelope plus the JetStream publish headers the stream keeps.
func storedHeaders(tb testing.TB) nats.Header {
	tb.Helper()
	e, err := jetsource.Prepare(jetsource.Event{Subject: subjects.MustParse("users.A.added"), Data: []byte(`{"a":1}`),
		Actor: "ann", CorrelationID: "c-1", TransactionID: "tx"}, "", time.Unix(1700000000, 5).UTC())
	if err != nil {
		tb.Fatal(err)
	}
	h := jetsource.EncodeHeader(e)
	h.Set("Nats-Msg-Id", e.ID)
	h.Set("Nats-Expected-Stream", "EVENTS")
	h.Set("Nats-Expected-Last-Subject-Sequence", "3")
	h.Set("Nats-Expected-Last-Subject-Sequence-Subject", "users.A.>")
	h.Set("Nats-Batch-Id", "b")
	return h
}

// The decoding rules themselves are tested (and fuzzed against a plain
// reference decoder) in the root package: FuzzDecodeMsgMatchesReference.
// This checks what the subscriber gets from a stored event.
func TestDecodeStoredEvent(t *testing.T) {
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 9, Time: time.Unix(1700000000, 0).UTC()}
	e := decode("users.A.added", storedHeaders(t), []byte(`{"a":1}`), at)
	if e.Malformed != nil {
		t.Fatal(e.MalformedError())
	}
	if e.Actor != "ann" || e.CorrelationID != "c-1" || e.TransactionID != "tx" || e.Type != "users.added" ||
		e.Sequence != 9 || e.Stream != "EVENTS" || e.DataContentType != "application/json" || !e.Time.Equal(time.Unix(1700000000, 5)) {
		t.Fatalf("decode gave %+v", e)
	}
	if m := decode("users.*", storedHeaders(t), nil, at); m.Malformed == nil || !errors.Is(m.MalformedError(), jetsource.ErrMalformed) {
		t.Fatalf("decode accepted a wildcard subject: %+v", m)
	}
}
