package jetsource_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
)

func FuzzPercent(f *testing.F) {
	seeds := []string{
		"",                                // empty
		"users.added",                     // nothing to encode
		"Ann Smith",                       // space
		`say "hi"`,                        // double quotes
		"100%",                            // lone percent
		"%25",                             // looks encoded already
		"%zz%4%",                          // percent signs that are no escapes
		"Zoë",                             // two-byte UTF-8
		"Euro € 😀",                        // the binding's example: three- and four-byte UTF-8
		"\t\r\n\x00\x7f",                  // ASCII controls
		"\u0085\u2028",                    // C1 control, line separator
		"!#$&'()*+,-./:;<=>?@[\\]^_`{|}~", // printable punctuation kept as it is
		"\xff\xfe",                        // invalid UTF-8: only decoding is checked
		"Zo%C3%AB",                        // encoded text as input
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Decoding anything never panics; what it accepts is UTF-8.
		if d, err := jetsource.PercentDecode(s); err == nil && !utf8.ValidString(d) {
			t.Errorf("PercentDecode(%q) = %q, not valid UTF-8", s, d)
		}
		if !utf8.ValidString(s) {
			return
		}
		enc := jetsource.PercentEncode(s)
		for i := 0; i < len(enc); i++ {
			c := enc[i]
			if c <= ' ' || c >= 0x7f || c == '"' {
				t.Fatalf("PercentEncode(%q) = %q holds byte %#02x", s, enc, c)
			}
			if c == '%' && (i+2 >= len(enc) || !isUpperHex(enc[i+1]) || !isUpperHex(enc[i+2])) {
				t.Fatalf("PercentEncode(%q) = %q: %% at %d is not an upper-case escape", s, enc, i)
			}
		}
		if !strings.ContainsAny(s, " \"%") && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }) && enc != s {
			t.Errorf("PercentEncode(%q) = %q, want it unchanged", s, enc)
		}
		dec, err := jetsource.PercentDecode(enc)
		if err != nil || dec != s {
			t.Fatalf("PercentDecode(PercentEncode(%q)) = %q, %v", s, dec, err)
		}
	})
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func FuzzDecodeMsg(f *testing.F) {
	type seed struct {
		subject, stream                                string
		seq                                            uint64
		id, source, typ, tm, ct, dct, rev, spec, msgID string
		extKey, extVal                                 string
		data                                           []byte
	}
	seeds := []seed{
		// A message published with no headers.
		{subject: "users.A.added", stream: "EVENTS", seq: 7, data: []byte(`{"name":"Ann"}`)},
		// A message written by EncodeHeader, every attribute set.
		{subject: "users.A.added", stream: "EVENTS", seq: 1, id: "evt-1", source: "/users", typ: "users.added",
			tm: "2025-03-14T15:09:26.535897Z", ct: "application/json;%20charset=utf-8", rev: "3", spec: "1.0",
			extKey: "ce-tenant", extVal: "M%C3%BCller", data: []byte(`{"name":"Ann"}`)},
		// As sdk-go writes it: ce-datacontenttype, raw values, a zone.
		{subject: "invoices.I9.issued", stream: "EVENTS", seq: 8, id: "evt-5", source: "/billing", typ: "invoices.issued",
			tm: "2025-03-14T16:09:26.5+01:00", dct: "application/json", spec: "1.0",
			extKey: "ce-actor", extVal: "Bea Jones", data: []byte(`{"total":12.5}`)},
		// Nats-Msg-Id as the id, binary data.
		{subject: "files.F1.put", stream: "FILES", seq: 3, msgID: "upload 3", data: []byte{0, 0xff, 0x80}},
		// Percent signs that are no escapes.
		{subject: "users.A.added", stream: "EVENTS", seq: 2, id: "%", source: "%zz", typ: "%4", extKey: "ce-x", extVal: "100%"},
		// Percent escapes of invalid UTF-8: an error.
		{subject: "users.A.added", stream: "EVENTS", seq: 2, id: "%FF", extKey: "ce-x", extVal: "%C0%A0"},
		// Raw invalid UTF-8 (refused).
		{subject: "users.A.added", stream: "EVENTS", seq: 2, source: "/a\xff"},
		// Malformed time, revision and spec version.
		{subject: "users.A.added", stream: "EVENTS", seq: 2, tm: "yesterday", rev: "-1", spec: "0.3"},
		// A time in year 10000 in UTC (refused).
		{subject: "users.A.added", stream: "EVENTS", seq: 2, tm: "9999-12-31T23:59:59-01:00"},
		// The zero time: the stream's time instead.
		{subject: "users.A.added", stream: "EVENTS", seq: 2, tm: "0001-01-01T00:00:00Z"},
		// A revision with a sign and leading zeros.
		{subject: "users.A.added", stream: "EVENTS", seq: 2, rev: "+007"},
		// Invalid subjects.
		{subject: "users.*.added", stream: "EVENTS", seq: 2},
		{subject: "", stream: "EVENTS", seq: 2},
		// A one-token subject.
		{subject: "heartbeat", stream: "EVENTS", seq: 2},
		// An upper-case extension header, and one that is an attribute.
		{subject: "users.A.added", stream: "EVENTS", seq: 2, extKey: "CE-Priority", extVal: "high"},
		{subject: "users.A.added", stream: "EVENTS", seq: 2, extKey: "ce-subject", extVal: "other.B.c"},
		// An empty extension value (dropped).
		{subject: "users.A.added", stream: "EVENTS", seq: 2, extKey: "ce-x", extVal: ""},
		// Control characters once decoded.
		{subject: "users.A.added", stream: "EVENTS", seq: 2, id: "a%0Ab", extKey: "ce-x", extVal: "%00"},
		// Whitespace-only data: no content type.
		{subject: "users.A.added", stream: "", seq: 0, data: []byte(" \n")},
	}
	for _, s := range seeds {
		f.Add(s.subject, s.stream, s.seq, s.id, s.source, s.typ, s.tm, s.ct, s.dct, s.rev, s.spec, s.msgID, s.extKey, s.extVal, s.data)
	}
	at := func(stream string, seq uint64) jetsource.Stored {
		return jetsource.Stored{Stream: stream, Sequence: seq, Time: fixtureStored}
	}
	f.Fuzz(func(t *testing.T, subject, stream string, seq uint64, id, source, typ, tm, ct, dct, rev, spec, msgID, extKey, extVal string, data []byte) {
		h := nats.Header{}
		if extKey != "" {
			h[extKey] = []string{extVal}
		}
		for k, v := range map[string]string{
			jetsource.HeaderID: id, jetsource.HeaderSource: source, jetsource.HeaderType: typ,
			jetsource.HeaderTime: tm, jetsource.HeaderContentType: ct, jetsource.HeaderDataContentType: dct,
			jetsource.HeaderPrefix + jetsource.ExtSchemaRevision: rev, jetsource.HeaderSpecVersion: spec,
			jetsource.HeaderMsgID: msgID,
		} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		e, err := jetsource.DecodeMsg(subject, h, data, at(stream, seq))
		if err != nil {
			return
		}
		if e.Subject.String() != subject || e.Sequence != seq || e.Stream != stream {
			t.Fatalf("DecodeMsg(%q, seq %d, stream %q) gave subject %q, seq %d, stream %q", subject, seq, stream, e.Subject, e.Sequence, e.Stream)
		}
		if e.ID == "" || e.Source == "" || e.Type == "" || e.Time.IsZero() {
			t.Fatalf("DecodeMsg left a required attribute empty: %+v", e)
		}
		if broken := decodeInvariant(e); broken != "" {
			t.Fatalf("decoded event breaks an invariant: %s", broken)
		}

		// Re-encoding the event and decoding it again gives the same event.
		h2 := jetsource.EncodeHeader(e)
		checkHeaderValues(t, h2)
		e2, err := jetsource.DecodeMsg(subject, h2, data, at(stream, seq))
		if err != nil {
			t.Fatalf("DecodeMsg(EncodeHeader(e)) of %v: %v\nfirst headers: %v", h2, err, h)
		}
		if d := eventDiff(e2, e); d != "" {
			t.Fatalf("DecodeMsg(EncodeHeader(e)) differs from e:\n%s\nfirst headers: %v\nsecond headers: %v", d, h, h2)
		}
	})
}

// decodeInvariant names what keeps a decoded event from re-encoding to
// itself, or returns "".
func decodeInvariant(e jetsource.Event) string {
	values := []string{e.ID, e.Source, e.Type, e.DataSchema, e.DataContentType, e.Actor, e.ClientIP, e.CorrelationID, e.CausationID, e.TransactionID}
	for _, v := range e.Extensions {
		values = append(values, v)
		if v == "" {
			return "an empty extension value, which EncodeHeader would drop"
		}
	}
	for _, v := range values {
		if !utf8.ValidString(v) {
			return "invalid UTF-8 in an attribute"
		}
	}
	if y := e.Time.UTC().Year(); y < 0 || y > 9999 {
		return "a time outside the years 0 to 9999 in UTC"
	}
	return ""
}
