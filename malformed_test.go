package jetsource_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
)

func TestDecodeStoredMalformed(t *testing.T) {
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 7, Time: time.Unix(1, 0)}
	cases := []struct {
		name, subject string
		h             nats.Header
		wantSubject   bool
	}{
		{"WildcardToken", "users.*.added", nil, false},
		{"BadSpecVersion", "users.A.added", nats.Header{"ce-specversion": {"9.9"}}, true},
		{"BadTime", "users.A.added", nats.Header{"ce-time": {"yesterday"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := jetsource.DecodeStored(c.subject, c.h, []byte("x"), at)
			if e.Malformed == nil {
				t.Fatalf("not marked malformed: %+v", e)
			}
			if e.Sequence != 7 || e.Stream != "EVENTS" || e.ID != "EVENTS-7" || string(e.Data) != "x" || e.Malformed.Subject != c.subject {
				t.Errorf("raw material lost: %+v", e)
			}
			if got := !e.Subject.IsZero(); got != c.wantSubject {
				t.Errorf("subject set = %v, want %v", got, c.wantSubject)
			}
			if err := e.MalformedError(); !errors.Is(err, jetsource.ErrMalformed) || e.Malformed.Reason == "" {
				t.Errorf("MalformedError() = %v, reason %q", err, e.Malformed.Reason)
			}
		})
	}
	ok := jetsource.DecodeStored("users.A.added", nil, []byte(`{}`), at)
	if ok.Malformed != nil || ok.MalformedError() != nil {
		t.Errorf("a valid message came back malformed: %+v", ok.Malformed)
	}
}

// CloudEvents 0.3 binary-mode messages read as the 1.0 events they map
// to: schemaurl is the data schema, base64 content encoding is decoded.
func TestDecodeMsgSpecVersion03(t *testing.T) {
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 3, Time: time.Unix(1, 0).UTC()}
	h := nats.Header{"ce-specversion": {"0.3"}, "ce-id": {"e-1"}, "ce-source": {"/legacy"}, "ce-type": {"users.added"},
		"ce-schemaurl": {"https://example.com/user.json"}, "ce-datacontentencoding": {"base64"},
		"Content-Type": {"application/json"}, "ce-tenant": {"t1"}}
	e, err := jetsource.DecodeMsg("users.A.added", h, []byte("eyJhIjoxfQ=="), at)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "e-1" || e.Source != "/legacy" || e.Type != "users.added" || e.DataSchema != "https://example.com/user.json" ||
		string(e.Data) != `{"a":1}` || e.DataContentType != "application/json" || len(e.Extensions) != 1 || e.Extensions["tenant"] != "t1" {
		t.Fatalf("got %+v", e)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("a 0.3 event read as an invalid 1.0 event: %v", err)
	}
	// Without a content encoding the body is the data, as in 1.0.
	delete(h, "ce-datacontentencoding")
	if e, err := jetsource.DecodeMsg("users.A.added", h, []byte(`{"b":2}`), at); err != nil || string(e.Data) != `{"b":2}` {
		t.Fatalf("got %q, %v", e.Data, err)
	}
}

// Every shape of the catalogue is either a valid event or a malformed one
// that keeps its raw material, and DecodeStored never fails.
func TestDecodeStoredCatalogue(t *testing.T) {
	valid := map[string]bool{
		"spec version 0.3": true, "no content type, binary body": true, "bad percent-encoding": true,
		"JSON content type, empty body": true, "JSON that is no object": true, "control characters in the actor": true,
		"extension header with a bad name": true, "large body": true,
	}
	for i, s := range embeddedtest.MalformedShapes("users") {
		t.Run(s.Name, func(t *testing.T) {
			at := jetsource.Stored{Stream: "EVENTS", Sequence: uint64(i + 1), Time: time.Unix(1, 0)}
			e := jetsource.DecodeStored(s.Msg.Subject, s.Msg.Header, s.Msg.Data, at)
			if got := e.Malformed == nil; got != valid[s.Name] {
				t.Fatalf("valid = %v, want %v (malformed: %+v)", got, valid[s.Name], e.Malformed)
			}
			if e.Sequence != at.Sequence || e.ID == "" {
				t.Fatalf("sequence or id lost: %+v", e)
			}
			if e.Malformed != nil && (e.Malformed.Subject != s.Msg.Subject || e.Malformed.Reason == "" || string(e.Data) != string(s.Msg.Data)) {
				t.Fatalf("raw material lost: %+v", e.Malformed)
			}
		})
	}
}
