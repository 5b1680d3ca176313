package jetsource_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
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
