package embeddedtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Shape is one message that some NATS client might publish to the event
// stream and that is no well-formed event, or only barely one.
type Shape struct {
	// Name says what is wrong with the message.
	Name string
	// Msg is the message; its subject starts with the root given to
	// [MalformedShapes].
	Msg *nats.Msg
}

// MalformedShapes returns the catalogue of foreign messages every reader
// must survive, each on a subject under root (such as "users"): a
// catalogue test publishes them between good events and checks that every
// reader goes on past them. Some are valid events read leniently, most
// cannot be decoded; none may stop a reader.
func MalformedShapes(root string) []Shape {
	msg := func(subject string, h nats.Header, data string) *nats.Msg {
		return &nats.Msg{Subject: root + "." + subject, Header: h, Data: []byte(data)}
	}
	return []Shape{
		{"spec version 0.3", msg("m1.added", nats.Header{"ce-specversion": {"0.3"}, "ce-id": {"m1"}, "ce-type": {"x"}, "ce-source": {"/s"}}, `{"a":1}`)},
		{"unknown spec version", msg("m2.added", nats.Header{"ce-specversion": {"2.0"}}, `{"a":1}`)},
		{"JSON content type, body not JSON", msg("m3.added", nats.Header{"Content-Type": {"application/json"}}, `{"name":`)},
		{"no content type, binary body", msg("m4.added", nil, "\xff\xfe\x00\x01not json")},
		{"wildcard token in the subject", msg("*.added", nil, `{"a":1}`)},
		{"time not RFC 3339", msg("m6.added", nats.Header{"ce-time": {"yesterday"}}, `{}`)},
		{"time past year 9999", msg("m7.added", nats.Header{"ce-time": {"10000-01-01T00:00:00Z"}}, `{}`)},
		{"schema revision not a number", msg("m8.added", nats.Header{"ce-schemarevision": {"two"}}, `{}`)},
		{"negative schema revision", msg("m9.added", nats.Header{"ce-schemarevision": {"-1"}}, `{}`)},
		{"bad percent-encoding", msg("m10.added", nats.Header{"ce-id": {"%zz"}}, `{}`)},
		{"id not UTF-8 once decoded", msg("m11.added", nats.Header{"ce-id": {"%ff%fe"}}, `{}`)},
		{"message id not UTF-8", msg("m12.added", nats.Header{"Nats-Msg-Id": {"\xff\xfe-1"}}, `{}`)},
		{"JSON content type, empty body", msg("m13.added", nats.Header{"Content-Type": {"application/json"}}, ``)},
		{"JSON that is no object", msg("m14.added", nats.Header{"Content-Type": {"application/json"}}, `[1,2,3]`)},
		{"control characters in the actor", msg("m15.added", nats.Header{"ce-actor": {"a%0Ab"}}, `{}`)},
		{"extension header with a bad name", msg("m16.added", nats.Header{"ce-Bad_Name!": {"x"}}, `{}`)},
		{"large body", msg("m17.added", nats.Header{"Content-Type": {"text/plain"}}, strings.Repeat("x", 64<<10))},
	}
}

// PublishMalformed publishes every shape of [MalformedShapes] under root
// to the stream through JetStream, so each is stored before it returns,
// and returns the shapes in the order stored with their stream sequences.
func PublishMalformed(tb testing.TB, nc *nats.Conn, root string) ([]Shape, []uint64) {
	tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shapes := MalformedShapes(root)
	seqs := make([]uint64, len(shapes))
	for i, s := range shapes {
		ack, err := js.PublishMsg(ctx, s.Msg)
		if err != nil {
			tb.Fatalf("publish malformed shape %q on %s: %v", s.Name, s.Msg.Subject, err)
		}
		seqs[i] = ack.Sequence
	}
	return shapes, seqs
}
