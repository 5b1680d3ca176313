package subscriber

import (
	"reflect"
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

func sameDecode(t *testing.T, subject string, h nats.Header, data []byte, at jetsource.Stored) {
	t.Helper()
	want, werr := jetsource.DecodeMsg(subject, h, data, at)
	got, gerr := decode(subject, h, data, at)
	if !reflect.DeepEqual(got, want) || (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("headers %q:\ndecode:    %+v, %v\nDecodeMsg: %+v, %v", h, got, gerr, want, werr)
	}
}

func TestFastPathTakesWhatJetsourceWrites(t *testing.T) {
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 9, Time: time.Unix(1700000000, 0).UTC()}
	if _, ok := fastDecode("users.A.added", storedHeaders(t), []byte(`{"a":1}`), at); !ok {
		t.Fatal("the fast path refused the headers jetsource writes")
	}
	if _, ok := fastDecode("users.A.added", nil, []byte(`{"a":1}`), at); !ok {
		t.Fatal("the fast path refused a message without headers")
	}
}

// decode must give exactly what jetsource.DecodeMsg gives.
func TestDecodeMatchesDecodeMsg(t *testing.T) {
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 9, Time: time.Unix(1700000000, 0).UTC()}
	with := func(k, v string) nats.Header {
		h := storedHeaders(t)
		h[k] = []string{v}
		return h
	}
	cases := []struct {
		name string
		h    nats.Header
		data string
	}{
		{"NoHeaders", nil, `{"a":1}`},
		{"NoHeadersBinary", nil, "\x00\x01"},
		{"NoHeadersNoData", nil, ""},
		{"Stored", storedHeaders(t), `{"a":1}`},
		{"IDFromMsgID", nats.Header{"Nats-Msg-Id": {"m-1"}, "Nats-Expected-Stream": {"EVENTS"}}, `{}`},
		{"IDFromLowerCaseMsgID", nats.Header{"nats-msg-id": {"m-2"}, "NATS-EXPECTED-STREAM": {"EVENTS"}}, `{}`},
		{"ShortNatsLikeKeys", nats.Header{"nats-": {"x"}, "Nats": {"y"}, "ce": {"z"}}, `{}`},
		{"Extension", with("ce-tenant", "t1"), `{}`},
		{"ReservedExtension", with("ce-sequence", "4"), `{}`},
		{"UpperCaseID", with("CE-ID", "other"), `{}`},
		{"PercentEncoded", with("ce-actor", "ann%20lee"), `{}`},
		{"NonASCII", with("ce-actor", "zoë"), `{}`},
		{"BadTime", with("ce-time", "yesterday"), `{}`},
		{"ZeroTime", with("ce-time", "0001-01-01T00:00:00Z"), `{}`},
		{"YearOutOfRange", with("ce-time", "9999-12-31T23:00:00-05:00"), `{}`},
		{"BadSpecVersion", with("ce-specversion", "0.3"), `{}`},
		{"EmptyID", with("ce-id", ""), `{}`},
		{"ContentTypeWithSpace", with("Content-Type", "application/json; charset=utf-8"), `{}`},
		{"DataContentTypeHeader", with("ce-datacontenttype", "text/plain"), `x`},
		{"SchemaRevision", with("ce-schemarevision", "2"), `{}`},
		{"NoValues", nats.Header{"ce-id": {}}, `{}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { sameDecode(t, "users.A.added", c.h, []byte(c.data), at) })
	}
	t.Run("BadSubject", func(t *testing.T) { sameDecode(t, "users.*", storedHeaders(t), nil, at) })
	t.Run("BadStreamName", func(t *testing.T) {
		sameDecode(t, "users.A.added", storedHeaders(t), nil, jetsource.Stored{Stream: "\xff", Sequence: 1})
	})
}

// Keys the fuzzer picks from, so that it often stays on the fast path.
var fuzzKeys = []string{"ce-id", "ce-source", "ce-type", "ce-time", "ce-specversion", "ce-dataschema", "Content-Type",
	"ce-actor", "ce-clientip", "ce-correlationid", "ce-causationid", "ce-transactionid", "ce-schemarevision",
	"ce-datacontenttype", "ce-subject", "ce-x1", "Nats-Msg-Id", "nats-msg-id", "Nats-Expected-Stream", "content-type", "X-Other"}

func FuzzDecodeMatchesDecodeMsg(f *testing.F) {
	f.Add("users.A.added", uint8(0), "evt-1", uint8(16), "m-1", "Nats-Batch-Id", "b", []byte(`{}`))                   // id and msg id
	f.Add("users.A.added", uint8(3), "2024-02-29T12:00:00.5+01:00", uint8(6), "text/plain", "ce-x", "y", []byte(`x`)) // time, content type, extension
	f.Add("users.A.added", uint8(3), "yesterday", uint8(4), "1.0", "CE-ID", "z", []byte(nil))                         // bad time, case variant
	f.Add("a", uint8(7), "%41%zz", uint8(17), "\xff", "Nats-", "", []byte(`{`))                                       // bad subject, percent, bad UTF-8
	f.Fuzz(func(t *testing.T, subject string, p1 uint8, v1 string, p2 uint8, v2 string, k3, v3 string, data []byte) {
		h := storedHeaders(t)
		if p1&0x80 != 0 {
			h = nats.Header{}
		}
		h[fuzzKeys[int(p1&0x7f)%len(fuzzKeys)]] = []string{v1}
		h[fuzzKeys[int(p2)%len(fuzzKeys)]] = []string{v2}
		h[k3] = append(h[k3], v3)
		sameDecode(t, subject, h, data, jetsource.Stored{Stream: "S", Sequence: 1, Time: time.Unix(1, 0).UTC()})
	})
}
