package jetsource_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"mime"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/envelope")

var (
	// fixtureTime is when the fixture events happened.
	fixtureTime = time.Date(2025, time.March, 14, 15, 9, 26, 535897000, time.UTC)
	// fixtureStored is when the stream stored them.
	fixtureStored = time.Date(2025, time.March, 14, 15, 9, 27, 0, time.UTC)
)

// envelopeFixture is one stored message and, for messages written by
// EncodeHeader, the event they were written from.
type envelopeFixture struct {
	name    string
	comment string // leading comment of the headers file
	subject string
	header  nats.Header // as stored; nil: none
	data    []byte
	at      jetsource.Stored
	// event, when set, is the event EncodeHeader wrote header from:
	// DecodeMsg must give it back.
	event *jetsource.Event
}

// fixtureEvents returns the events of the golden fixtures, stored.
func fixtureEvents(t testing.TB) map[string]jetsource.Event {
	t.Helper()
	minimal, err := jetsource.Prepare(jetsource.Event{
		ID:      "evt-0001",
		Subject: subjects.MustParse("users.A.added"),
		Data:    []byte(`{"name":"Ann"}`),
	}, "", fixtureTime)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	minimal.Sequence, minimal.Stream, minimal.Stored = 1, "EVENTS", fixtureStored

	full := jetsource.Event{
		ID:              "evt-0002",
		Source:          "https://example.com/users",
		Type:            "com.example.users.renamed",
		Subject:         subjects.MustParse("users.Zo\u00eb.renamed"),
		Time:            fixtureTime,
		DataContentType: "application/json; charset=utf-8",
		DataSchema:      "https://example.com/schemas/users/renamed-v3.json",
		Data:            []byte(`{"from":"Zoe","to":"Zoë"}`),
		Actor:           `Zoë "the admin" Smith`,
		ClientIP:        "2001:db8::1",
		CorrelationID:   "corr-42",
		CausationID:     "cmd/rename 7",
		TransactionID:   "tx-9",
		SchemaRevision:  3,
		Extensions: map[string]string{
			"tenant":   "Müller & Söhne GmbH",
			"discount": "50% off, 100%25 sure",
			"motto":    "Euro € 😀",
		},
		Sequence: 42, Stream: "EVENTS", Stored: fixtureStored,
	}

	binary := jetsource.Event{
		ID:              "evt-0003",
		Source:          "/uploads",
		Type:            "files.uploaded",
		Subject:         subjects.MustParse("files.F1.uploaded"),
		Time:            fixtureTime,
		DataContentType: "application/octet-stream",
		Data:            []byte{0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 'J', 'S'},
		Sequence:        3, Stream: "EVENTS", Stored: fixtureStored,
	}

	text := jetsource.Event{
		ID:              "evt-0004",
		Source:          "/notes",
		Type:            "notes.written",
		Subject:         subjects.MustParse("notes.N1.written"),
		Time:            fixtureTime,
		DataContentType: "text/plain; charset=utf-8",
		Data:            []byte("Hello, \"world\" — ünïcode\n"),
		Sequence:        4, Stream: "EVENTS", Stored: fixtureStored,
	}
	return map[string]jetsource.Event{"minimal": minimal, "full": full, "binary": binary, "text": text}
}

func envelopeFixtures(t testing.TB) []envelopeFixture {
	t.Helper()
	evs := fixtureEvents(t)
	var fxs []envelopeFixture
	for _, name := range []string{"minimal", "full", "binary", "text"} {
		e := evs[name]
		fxs = append(fxs, envelopeFixture{
			name:    name,
			comment: "Written by EncodeHeader.",
			subject: e.Subject.String(),
			header:  jetsource.EncodeHeader(e),
			data:    e.Data,
			at:      jetsource.Stored{Stream: e.Stream, Sequence: e.Sequence, Time: e.Stored},
			event:   &e,
		})
	}

	fxs = append(fxs, envelopeFixture{
		name:    "noheaders",
		comment: `No headers: the message as nats pub users.A.added '{"name":"Ann"}' stores it.`,
		subject: "users.A.added",
		data:    []byte(`{"name":"Ann"}`),
		at:      jetsource.Stored{Stream: "EVENTS", Sequence: 7, Time: fixtureStored},
	})

	// An event as sdk-go's own NATS binding writes it: ce-datacontenttype,
	// ce-subject, a time in the producer's zone, values not percent-encoded,
	// an extension jetsource does not define.
	ce := cloudevents.New(cloudevents.CloudEventsVersionV1)
	ce.SetID("evt-0005")
	ce.SetSource("/billing")
	ce.SetType("invoices.issued")
	ce.SetSubject("invoices.I9.issued")
	ce.SetTime(fixtureTime.In(time.FixedZone("CET", 3600)))
	ce.SetExtension("actor", "Bea Jones")
	ce.SetExtension("priority", "high")
	ce.SetExtension("schemarevision", 2)
	if err := ce.SetData("application/json", json.RawMessage(`{"total":12.5}`)); err != nil {
		t.Fatalf("SetData: %v", err)
	}
	h, data := sdkBinaryMsg(t, ce)
	fxs = append(fxs, envelopeFixture{
		name:    "sdkgo",
		comment: "Written the way the binary mode of sdk-go's NATS binding writes it.",
		subject: "invoices.I9.issued",
		header:  h,
		data:    data,
		at:      jetsource.Stored{Stream: "EVENTS", Sequence: 8, Time: fixtureStored},
	})
	return fxs
}

// TestEnvelopeGolden checks the encoded headers, the decoded event and its
// structured-mode JSON against testdata/envelope. Run with -update to
// rewrite the files.
func TestEnvelopeGolden(t *testing.T) {
	for _, fx := range envelopeFixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			base := filepath.Join("testdata", "envelope", fx.name)
			checkGolden(t, base+".headers.txt", []byte(formatHeader(fx.comment, fx.header)))

			// Decode the message as the golden file records it.
			h := parseHeader(t, string(readGolden(t, base+".headers.txt")))
			e, err := jetsource.DecodeMsg(fx.subject, h, fx.data, fx.at)
			if err != nil {
				t.Fatalf("DecodeMsg: %v", err)
			}
			if fx.event != nil {
				if d := eventDiff(e, *fx.event); d != "" {
					t.Errorf("DecodeMsg(EncodeHeader(event)) differs from the event:\n%s", d)
				}
			}
			if err := e.Validate(); err != nil {
				t.Errorf("decoded event: Validate: %v", err)
			}

			ce, err := e.ToCloudEvent()
			if err != nil {
				t.Fatalf("ToCloudEvent: %v", err)
			}
			if err := ce.Validate(); err != nil {
				t.Fatalf("ToCloudEvent gave an event the SDK rejects: %v", err)
			}
			b, err := json.Marshal(ce)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			checkGolden(t, base+".event.json", append(b, '\n'))

			// The structured-mode JSON reads back as the same event; it
			// does not carry the stream or the time it stored the event.
			var back cloudevents.Event
			if err := json.Unmarshal(readGolden(t, base+".event.json"), &back); err != nil {
				t.Fatalf("json.Unmarshal of the golden JSON: %v", err)
			}
			got, err := jetsource.FromCloudEvent(back)
			if err != nil {
				t.Fatalf("FromCloudEvent of the golden JSON: %v", err)
			}
			want := e
			want.Stream, want.Stored = "", time.Time{}
			if d := eventDiff(got, want); d != "" {
				t.Errorf("FromCloudEvent of the golden JSON differs from the decoded event:\n%s", d)
			}
		})
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readGolden(t, path)
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -run TestEnvelopeGolden -update to rewrite it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func readGolden(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestEnvelopeGolden -update to write it)", err)
	}
	return b
}

// formatHeader renders headers as the golden files hold them: comment
// lines starting with "# ", then one "Key: value" line per value, sorted.
func formatHeader(comment string, h nats.Header) string {
	var b strings.Builder
	for line := range strings.Lines(comment) {
		b.WriteString("# " + strings.TrimSuffix(line, "\n") + "\n")
	}
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	return b.String()
}

// parseHeader reads what formatHeader wrote; no header lines gives nil, as
// for a message published without headers.
func parseHeader(t testing.TB, s string) nats.Header {
	t.Helper()
	var h nats.Header
	for line := range strings.Lines(s) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			t.Fatalf("header line %q: want Key: value", line)
		}
		if h == nil {
			h = nats.Header{}
		}
		h.Add(k, strings.TrimPrefix(v, " "))
	}
	return h
}

// eventDiff lists the fields in which got differs from want, or returns ""
// when they are the same event. Times compare as instants; nil and empty
// data or extensions are the same.
func eventDiff(got, want jetsource.Event) string {
	var d []string
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		same := false
		switch g := g.(type) {
		case time.Time:
			same = g.Equal(w.(time.Time))
		case []byte:
			same = bytes.Equal(g, w.([]byte))
		case map[string]string:
			w := w.(map[string]string)
			same = len(g) == 0 && len(w) == 0 || reflect.DeepEqual(g, w)
		default:
			same = reflect.DeepEqual(g, w)
		}
		if !same {
			d = append(d, fmt.Sprintf("  %s: got %#v, want %#v", name, fieldString(g), fieldString(w)))
		}
	}
	return strings.Join(d, "\n")
}

func fieldString(v any) any {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case subjects.Subject:
		return v.String()
	case time.Time:
		return v.Format(time.RFC3339Nano)
	}
	return v
}

// sdkBinaryWriter writes an event as NATS headers the way the binary mode
// of sdk-go's protocol/nats_jetstream/v2 does: every attribute and extension
// as a ce-* header formatted with fmt.Sprint and not percent-encoded, the
// time as RFC 3339 in the event's own zone, datacontenttype as
// ce-datacontenttype, the subject as ce-subject.
type sdkBinaryWriter struct {
	header nats.Header
	data   []byte
}

func (w *sdkBinaryWriter) Start(context.Context) error {
	w.header = nats.Header{}
	return nil
}

func (w *sdkBinaryWriter) SetAttribute(a spec.Attribute, v any) error {
	s := fmt.Sprint(v)
	if a.Kind() == spec.Time {
		s = v.(time.Time).Format(time.RFC3339Nano)
	}
	w.header.Set("ce-"+a.Name(), s)
	return nil
}

func (w *sdkBinaryWriter) SetExtension(name string, v any) error {
	w.header.Set("ce-"+name, fmt.Sprint(v))
	return nil
}

func (w *sdkBinaryWriter) SetData(r io.Reader) (err error) {
	w.data, err = io.ReadAll(r)
	return err
}

func (w *sdkBinaryWriter) End(context.Context) error { return nil }

// sdkBinaryMsg returns the headers and data of ce as sdk-go writes them in
// binary mode.
func sdkBinaryMsg(t testing.TB, ce cloudevents.Event) (nats.Header, []byte) {
	t.Helper()
	var w sdkBinaryWriter
	enc, err := binding.Write(context.Background(), binding.ToMessage(&ce), nil, &w)
	if err != nil || enc != binding.EncodingBinary {
		t.Fatalf("binding.Write: encoding %v, error %v", enc, err)
	}
	return w.header, w.data
}

// roundTripEvents are valid, stored events whose every attribute survives
// both the binary and the structured mode.
func roundTripEvents(t testing.TB) map[string]jetsource.Event {
	t.Helper()
	evs := fixtureEvents(t)
	base := evs["minimal"]
	with := func(f func(*jetsource.Event)) jetsource.Event {
		e := base.Clone()
		f(&e)
		return e
	}
	evs["no data"] = with(func(e *jetsource.Event) { e.Data, e.DataContentType = nil, "" })
	evs["not stored"] = with(func(e *jetsource.Event) { e.Sequence, e.Stream, e.Stored = 0, "", time.Time{} })
	evs["no time"] = with(func(e *jetsource.Event) { e.Time = time.Time{} })
	evs["vendor JSON type"] = with(func(e *jetsource.Event) { e.DataContentType = "application/vnd.users+json" })
	evs["text/json"] = with(func(e *jetsource.Event) { e.DataContentType = "text/json" })
	evs["JSON scalar data"] = with(func(e *jetsource.Event) { e.Data = []byte(`"Ann"`) })
	evs["empty extensions"] = with(func(e *jetsource.Event) { e.Extensions = map[string]string{} })
	evs["percent-looking values"] = with(func(e *jetsource.Event) {
		e.Actor = "%41%zz%"
		e.CorrelationID = "%"
		e.Extensions = map[string]string{"x1": "%25%2525", "x2": "100%"}
	})
	evs["every printable ASCII byte"] = with(func(e *jetsource.Event) {
		var b []byte
		for c := byte(0x20); c < 0x7f; c++ {
			b = append(b, c)
		}
		e.Actor = string(b)
	})
	evs["C1 controls and surrogate-range runes"] = with(func(e *jetsource.Event) {
		e.Actor = "\u0085\u009f\ud7ff\ue000\U0010ffff"
	})
	evs["id of 256 bytes"] = with(func(e *jetsource.Event) { e.ID = strings.Repeat("é", 128) })
	evs["twenty-character extension name"] = with(func(e *jetsource.Event) {
		e.Extensions = map[string]string{"abcdefghij0123456789": "v"}
	})
	evs["one-token subject"] = with(func(e *jetsource.Event) { e.Subject = subjects.MustParse("heartbeat") })
	evs["large schema revision"] = with(func(e *jetsource.Event) { e.SchemaRevision = 1<<31 - 1 })
	evs["sequence above 2^53"] = with(func(e *jetsource.Event) { e.Sequence = 1<<64 - 1 })
	return evs
}

func TestEncodeHeaderDecodeMsgRoundTrip(t *testing.T) {
	for name, e := range roundTripEvents(t) {
		t.Run(name, func(t *testing.T) {
			if err := e.Validate(); err != nil {
				t.Fatalf("test event is not valid: %v", err)
			}
			h := jetsource.EncodeHeader(e)
			checkHeaderValues(t, h)
			if _, ok := h[jetsource.HeaderSubject]; ok {
				t.Errorf("EncodeHeader wrote %s; the message subject is the subject", jetsource.HeaderSubject)
			}
			if got := h.Get(jetsource.HeaderSpecVersion); got != jetsource.SpecVersion {
				t.Errorf("%s = %q, want %q", jetsource.HeaderSpecVersion, got, jetsource.SpecVersion)
			}
			at := jetsource.Stored{Stream: e.Stream, Sequence: e.Sequence, Time: e.Stored}
			got, err := jetsource.DecodeMsg(e.Subject.String(), h, e.Data, at)
			if err != nil {
				t.Fatalf("DecodeMsg: %v", err)
			}
			if e.Time.IsZero() {
				// DecodeMsg derives a missing time from the stream.
				e.Time = e.Stored
			}
			if d := eventDiff(got, e); d != "" {
				t.Errorf("DecodeMsg(EncodeHeader(e)) differs from e:\n%s", d)
			}
		})
	}
}

// checkHeaderValues checks that every value is fit for a NATS header as
// the binding asks: printable ASCII, no space, no double quote.
// checkHeaderValues checks that ce-* values are percent-encoded and that
// the rest (Content-Type) hold printable ASCII only.
func checkHeaderValues(t testing.TB, h nats.Header) {
	t.Helper()
	for k, vs := range h {
		encoded := strings.HasPrefix(strings.ToLower(k), jetsource.HeaderPrefix)
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < ' ' || c >= 0x7f || (encoded && (c == ' ' || c == '"')) {
					t.Errorf("header %s: value %q holds byte %#02x", k, v, c)
					break
				}
			}
		}
	}
}

func TestMsg(t *testing.T) {
	e := fixtureEvents(t)["full"]
	m := e.Msg()
	if m.Subject != e.Subject.String() {
		t.Errorf("Subject = %q, want %q", m.Subject, e.Subject)
	}
	if !reflect.DeepEqual(m.Header, jetsource.EncodeHeader(e)) {
		t.Errorf("Header = %v, want EncodeHeader(e) = %v", m.Header, jetsource.EncodeHeader(e))
	}
	if !bytes.Equal(m.Data, e.Data) {
		t.Errorf("Data = %q, want %q", m.Data, e.Data)
	}
}

func TestCloudEventJSONRoundTrip(t *testing.T) {
	evs := roundTripEvents(t)
	with := func(name string, _ string, f func(*jetsource.Event)) {
		e := evs["minimal"].Clone()
		f(&e)
		evs[name] = e
	}
	with("source with escapes", "", func(e *jetsource.Event) {
		e.Source = "/users%20service/Zo%C3%AB"
	})
	for name, e := range evs {
		t.Run(name, func(t *testing.T) {
			ce, err := e.ToCloudEvent()
			if err != nil {
				t.Fatalf("ToCloudEvent: %v", err)
			}
			if err := ce.Validate(); err != nil {
				t.Fatalf("SDK Validate: %v", err)
			}
			b, err := json.Marshal(ce)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			var back cloudevents.Event
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", b, err)
			}
			got, err := jetsource.FromCloudEvent(back)
			if err != nil {
				t.Fatalf("FromCloudEvent(%s): %v", b, err)
			}
			want := e
			want.Stream, want.Stored = "", time.Time{}
			if d := eventDiff(got, want); d != "" {
				t.Errorf("FromCloudEvent(json(ToCloudEvent(e))) differs from e:\n%s\njson: %s", d, b)
			}
		})
	}
}

// TestDecodeMsgSDKBinary decodes events as sdk-go's NATS binding writes
// them in binary mode. Their values hold nothing that reads as a percent
// escape: a producer that does not percent-encode cannot be told apart
// from one that does.
func TestDecodeMsgSDKBinary(t *testing.T) {
	evs := fixtureEvents(t)
	full := evs["full"]
	full.Extensions = map[string]string{"tenant": "Müller & Söhne GmbH", "motto": "Euro € 😀", "discount": "50% off"}
	for name, e := range map[string]jetsource.Event{
		"minimal": evs["minimal"],
		"full":    full,
		"binary":  evs["binary"],
		"text":    evs["text"],
	} {
		t.Run(name, func(t *testing.T) {
			ce, err := e.ToCloudEvent()
			if err != nil {
				t.Fatalf("ToCloudEvent: %v", err)
			}
			h, data := sdkBinaryMsg(t, ce)
			at := jetsource.Stored{Stream: e.Stream, Sequence: e.Sequence, Time: e.Stored}
			got, err := jetsource.DecodeMsg(e.Subject.String(), h, data, at)
			if err != nil {
				t.Fatalf("DecodeMsg(%v): %v", h, err)
			}
			if d := eventDiff(got, e); d != "" {
				t.Errorf("DecodeMsg of sdk-go's headers %v differs from the event:\n%s", h, d)
			}
		})
	}
}

func TestDecodeMsg(t *testing.T) {
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 9, Time: fixtureStored}
	subj := subjects.MustParse("users.A.added")
	// derived is the event DecodeMsg makes of a message with no headers
	// and no data on users.A.added.
	derived := jetsource.Event{
		ID: "EVENTS-9", Source: "/streams/EVENTS", Type: "users.added", Subject: subj,
		Time: fixtureStored, Sequence: 9, Stream: "EVENTS", Stored: fixtureStored,
	}
	with := func(f func(*jetsource.Event)) jetsource.Event {
		e := derived
		f(&e)
		return e
	}
	annJSON := []byte(`{"name":"Ann"}`)
	tests := []struct {
		name   string
		header nats.Header
		data   []byte
		want   jetsource.Event
	}{
		{
			name: "OK/no headers, no data",
			want: derived,
		},
		{
			name: "OK/no headers, JSON data",
			data: annJSON,
			want: with(func(e *jetsource.Event) { e.Data, e.DataContentType = annJSON, "application/json" }),
		},
		{
			name: "OK/no headers, other data",
			data: []byte("Ann"),
			want: with(func(e *jetsource.Event) { e.Data, e.DataContentType = []byte("Ann"), "application/octet-stream" }),
		},
		{
			name: "OK/no headers, blank data",
			data: []byte(" \r\n\t"),
			want: with(func(e *jetsource.Event) { e.Data = []byte(" \r\n\t") }),
		},
		{
			name:   "OK/empty header",
			header: nats.Header{},
			want:   derived,
		},
		{
			name:   "OK/Nats-Msg-Id is the id",
			header: nats.Header{"Nats-Msg-Id": {"order 7"}},
			want:   with(func(e *jetsource.Event) { e.ID = "order 7" }),
		},
		{
			name:   "OK/ce-id wins over Nats-Msg-Id",
			header: nats.Header{"Nats-Msg-Id": {"dedup-1"}, "ce-id": {"evt-1"}},
			want:   with(func(e *jetsource.Event) { e.ID = "evt-1" }),
		},
		{
			name:   "OK/ce-datacontenttype instead of Content-Type",
			header: nats.Header{"ce-datacontenttype": {"text/plain"}},
			data:   annJSON,
			want:   with(func(e *jetsource.Event) { e.Data, e.DataContentType = annJSON, "text/plain" }),
		},
		{
			name:   "OK/Content-Type wins over ce-datacontenttype",
			header: nats.Header{"ce-datacontenttype": {"text/plain"}, "Content-Type": {"application/json"}},
			data:   annJSON,
			want:   with(func(e *jetsource.Event) { e.Data, e.DataContentType = annJSON, "application/json" }),
		},
		{
			name:   "OK/unknown extension kept",
			header: nats.Header{"ce-priority": {"high"}, "ce-traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
			want: with(func(e *jetsource.Event) {
				e.Extensions = map[string]string{"priority": "high", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			}),
		},
		{
			name:   "OK/extension name lower-cased",
			header: nats.Header{"ce-Priority": {"high"}},
			want:   with(func(e *jetsource.Event) { e.Extensions = map[string]string{"priority": "high"} }),
		},
		{
			name:   "OK/extension value percent-decoded",
			header: nats.Header{"ce-tenant": {"M%C3%BCller%20%26%20S%C3%B6hne"}},
			want:   with(func(e *jetsource.Event) { e.Extensions = map[string]string{"tenant": "Müller & Söhne"} }),
		},
		{
			name: "OK/headers that are no extension ignored",
			header: nats.Header{
				"ce-trace-id":                   {"dash"},
				"ce-" + strings.Repeat("a", 21): {"too long"},
				"ce-":                           {"no name"},
				"ce-Ünï":                        {"not ASCII"},
				"X-Custom":                      {"not ce"},
				"Nats-Expected-Last-Sequence":   {"3"},
			},
			want: derived,
		},
		{
			name:   "OK/ce-subject ignored",
			header: nats.Header{"ce-subject": {"orders.O1.placed"}},
			want:   derived,
		},
		{
			name:   "OK/ce-sequence ignored",
			header: nats.Header{"ce-sequence": {"99"}},
			want:   derived,
		},
		{
			name: "OK/attributes percent-decoded",
			header: nats.Header{
				"ce-id": {"evt%201"}, "ce-source": {"/users%20service"}, "ce-type": {"users.added%E2%9C%93"},
				"ce-dataschema": {"https://example.com/s%22.json"}, "Content-Type": {"application/json;%20charset=utf-8"},
				"ce-actor": {"Zo%C3%AB"}, "ce-clientip": {"%3A%3A1"}, "ce-correlationid": {"c%251"},
				"ce-causationid": {"x%2Fy"}, "ce-transactionid": {"t%7E1"},
			},
			want: with(func(e *jetsource.Event) {
				e.ID, e.Source, e.Type = "evt 1", "/users service", "users.added✓"
				e.DataSchema, e.DataContentType = `https://example.com/s".json`, "application/json; charset=utf-8"
				e.Actor, e.ClientIP, e.CorrelationID, e.CausationID, e.TransactionID = "Zoë", "::1", "c%1", "x/y", "t~1"
			}),
		},
		{
			name:   "OK/lower-case percent escapes",
			header: nats.Header{"ce-actor": {"Zo%c3%ab"}},
			want:   with(func(e *jetsource.Event) { e.Actor = "Zoë" }),
		},
		{
			name:   "OK/values not percent-encoded",
			header: nats.Header{"ce-actor": {`Ann "A" Smith`}, "ce-tenant": {"Müller GmbH"}},
			want: with(func(e *jetsource.Event) {
				e.Actor, e.Extensions = `Ann "A" Smith`, map[string]string{"tenant": "Müller GmbH"}
			}),
		},
		{
			name:   "OK/lone percent signs kept",
			header: nats.Header{"ce-actor": {"100%"}, "ce-causationid": {"%zz"}, "ce-correlationid": {"%4"}},
			want:   with(func(e *jetsource.Event) { e.Actor, e.CausationID, e.CorrelationID = "100%", "%zz", "%4" }),
		},
		{
			name:   "OK/ce-time with offset",
			header: nats.Header{"ce-time": {"2025-03-14T16:09:26.535897+01:00"}},
			want:   with(func(e *jetsource.Event) { e.Time = fixtureTime }),
		},
		{
			name:   "OK/ce-specversion and ce-schemarevision",
			header: nats.Header{"ce-specversion": {"1.0"}, "ce-schemarevision": {"12"}},
			want:   with(func(e *jetsource.Event) { e.SchemaRevision = 12 }),
		},
		{
			name:   "OK/unnecessary percent escapes in ce-time",
			header: nats.Header{"ce-time": {"2025-03-14T15%3A09%3A26.535897Z"}},
			want:   with(func(e *jetsource.Event) { e.Time = fixtureTime }),
		},
		{
			name:   "OK/header names are case-insensitive",
			header: nats.Header{"Ce-Id": {"evt-1"}, "CE-TYPE": {"users.created"}, "content-type": {"text/plain"}},
			data:   annJSON,
			want: with(func(e *jetsource.Event) {
				e.ID, e.Type, e.Data, e.DataContentType = "evt-1", "users.created", annJSON, "text/plain"
			}),
		},
		{
			name:   "OK/empty extension value is no extension",
			header: nats.Header{"ce-priority": {""}},
			want:   derived,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jetsource.DecodeMsg(subj.String(), tt.header, tt.data, at)
			if err != nil {
				t.Fatalf("DecodeMsg: %v", err)
			}
			if d := eventDiff(got, tt.want); d != "" {
				t.Errorf("DecodeMsg(%v, %q):\n%s", tt.header, tt.data, d)
			}
		})
	}
}

func TestDecodeMsgErrors(t *testing.T) {
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 9, Time: fixtureStored}
	tests := []struct {
		name    string
		subject string // "": users.A.added
		header  nats.Header
		want    error
		mention string // the error names this
		data    string // "": {}
	}{
		{name: "ErrInvalidSubject/empty", subject: "-", want: jetsource.ErrInvalidSubject},
		{name: "ErrInvalidSubject/wildcard", subject: "users.*.added", want: jetsource.ErrInvalidSubject},
		{name: "ErrInvalidSubject/full wildcard", subject: ">", want: jetsource.ErrInvalidSubject},
		{name: "ErrInvalidSubject/empty token", subject: "users..added", want: jetsource.ErrInvalidSubject},
		{name: "ErrInvalidSubject/space", subject: "users.A B.added", want: jetsource.ErrInvalidSubject},
		{
			name:   "ErrInvalidEvent/ce-time not RFC 3339",
			header: nats.Header{"ce-time": {"2025-03-14 15:09:26"}}, want: jetsource.ErrInvalidEvent, mention: "ce-time",
		},
		{
			name:   "ErrInvalidEvent/ce-time without zone",
			header: nats.Header{"ce-time": {"2025-03-14T15:09:26"}}, want: jetsource.ErrInvalidEvent, mention: "ce-time",
		},
		{
			name:   "ErrInvalidEvent/ce-time out of range",
			header: nats.Header{"ce-time": {"2025-13-01T00:00:00Z"}}, want: jetsource.ErrInvalidEvent, mention: "ce-time",
		},
		{
			name:   "ErrInvalidEvent/ce-time beyond year 9999 in UTC",
			header: nats.Header{"ce-time": {"9999-12-31T23:59:59-01:00"}}, want: jetsource.ErrInvalidEvent, mention: "ce-time",
		},
		{
			name:   "ErrInvalidEvent/ce-schemarevision not a number",
			header: nats.Header{"ce-schemarevision": {"three"}}, want: jetsource.ErrInvalidEvent, mention: "ce-schemarevision",
		},
		{
			name:   "ErrInvalidEvent/negative ce-schemarevision",
			header: nats.Header{"ce-schemarevision": {"-1"}}, want: jetsource.ErrInvalidEvent, mention: "ce-schemarevision",
		},
		{
			name:   "ErrInvalidEvent/ce-schemarevision a fraction",
			header: nats.Header{"ce-schemarevision": {"1.5"}}, want: jetsource.ErrInvalidEvent, mention: "ce-schemarevision",
		},
		{
			name:   "ErrInvalidEvent/ce-schemarevision above int32",
			header: nats.Header{"ce-schemarevision": {"2147483648"}}, want: jetsource.ErrInvalidEvent, mention: "ce-schemarevision",
		},
		{
			name:   "ErrInvalidEvent/unsupported ce-specversion",
			header: nats.Header{"ce-specversion": {"0.2"}}, want: jetsource.ErrInvalidEvent, mention: "ce-specversion",
		},
		{
			name:   "ErrInvalidEvent/0.3 content encoding other than base64",
			header: nats.Header{"ce-specversion": {"0.3"}, "ce-datacontentencoding": {"gzip"}}, want: jetsource.ErrInvalidEvent, mention: "datacontentencoding",
		},
		{
			name:   "ErrInvalidEvent/0.3 base64 content encoding of data that is not base64",
			header: nats.Header{"ce-specversion": {"0.3"}, "ce-datacontentencoding": {"base64"}}, want: jetsource.ErrInvalidEvent, mention: "base64", data: "{not base64",
		},
		{
			name:   "ErrInvalidEvent/JSON content type, data not JSON",
			header: nats.Header{"Content-Type": {"application/json"}}, want: jetsource.ErrInvalidEvent, mention: "not valid JSON", data: `{"name":`,
		},
		{
			name:   "ErrInvalidEvent/JSON media type with parameters, data not JSON",
			header: nats.Header{"Content-Type": {"Application/Cloudevents+JSON; charset=utf-8"}}, want: jetsource.ErrInvalidEvent, mention: "not valid JSON", data: `x`,
		},
		{
			name:   "ErrInvalidEvent/ce-datacontenttype JSON, data not JSON",
			header: nats.Header{"ce-datacontenttype": {"text/json"}}, want: jetsource.ErrInvalidEvent, mention: "not valid JSON", data: "\xff",
		},
		{
			name:   "ErrInvalidEvent/future ce-specversion",
			header: nats.Header{"ce-specversion": {"2.0"}}, want: jetsource.ErrInvalidEvent, mention: "ce-specversion",
		},
		{
			name:   "ErrInvalidEvent/invalid UTF-8 after percent-decoding",
			header: nats.Header{"ce-id": {"%FF"}}, want: jetsource.ErrInvalidEvent, mention: "ce-id",
		},
		{
			name:   "ErrInvalidEvent/overlong UTF-8 after percent-decoding",
			header: nats.Header{"ce-source": {"%C0%A0"}}, want: jetsource.ErrInvalidEvent, mention: "ce-source",
		},
		{
			name:   "ErrInvalidEvent/truncated UTF-8 after percent-decoding",
			header: nats.Header{"ce-actor": {"%E2%82"}}, want: jetsource.ErrInvalidEvent, mention: "ce-actor",
		},
		{
			name:   "ErrInvalidEvent/invalid UTF-8 content type",
			header: nats.Header{"Content-Type": {"text/plain%FF"}}, want: jetsource.ErrInvalidEvent, mention: "Content-Type",
		},
		{
			name:   "ErrInvalidEvent/invalid UTF-8 extension",
			header: nats.Header{"ce-tenant": {"%ED%A0%80"}}, want: jetsource.ErrInvalidEvent, mention: "ce-tenant",
		},
		{
			name:   "ErrInvalidEvent/invalid UTF-8 not percent-encoded",
			header: nats.Header{"ce-actor": {"Zo\xeb"}}, want: jetsource.ErrInvalidEvent, mention: "ce-actor",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject := tt.subject
			switch subject {
			case "":
				subject = "users.A.added"
			case "-":
				subject = ""
			}
			data := tt.data
			if data == "" {
				data = `{}`
			}
			_, err := jetsource.DecodeMsg(subject, tt.header, []byte(data), at)
			checkSentinel(t, err, tt.want)
			if err != nil && !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not name %s", err, tt.mention)
			}
		})
	}
}

// sentinels are the errors of validation; an error should match one.
var sentinels = []error{jetsource.ErrInvalidSubject, jetsource.ErrInvalidEvent, jetsource.ErrInvalidData}

// checkSentinel checks that err matches want and none of the other
// validation sentinels.
func checkSentinel(t testing.TB, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("error nil, want %v", want)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%q, %v) = %v, want %v", err, s, got, !got)
		}
	}
}

func TestPercentEncode(t *testing.T) {
	var printable []byte
	for c := byte('!'); c <= '~'; c++ {
		if c != '"' && c != '%' {
			printable = append(printable, c)
		}
	}
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"plain", "users.added", "users.added"},
		{"printable ASCII unchanged", string(printable), string(printable)},
		{"space", "a b", "a%20b"},
		{"double quote", `say "hi"`, "say%20%22hi%22"},
		{"percent", "100%", "100%25"},
		{"percent escape", "%25", "%2525"},
		{"non-ASCII", "Zoë", "Zo%C3%AB"},
		{"binding example", "Euro € 😀", "Euro%20%E2%82%AC%20%F0%9F%98%80"},
		{"controls", "t\tn\nr\rz\x00d\x7f", "t%09n%0Ar%0Dz%00d%7F"},
		{"C1 control", "\u0085", "%C2%85"},
		{"CJK", "日本", "%E6%97%A5%E6%9C%AC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := jetsource.PercentEncode(tt.in)
			if got != tt.want {
				t.Errorf("PercentEncode(%q) = %q, want %q", tt.in, got, tt.want)
			}
			back, err := jetsource.PercentDecode(got)
			if err != nil || back != tt.in {
				t.Errorf("PercentDecode(%q) = %q, %v, want %q", got, back, err, tt.in)
			}
		})
	}
}

func TestPercentDecode(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            bool
	}{
		{name: "OK/no escapes", in: "users.added", want: "users.added"},
		{name: "OK/lone percent", in: "%", want: "%"},
		{name: "OK/trailing percent", in: "100%", want: "100%"},
		{name: "OK/not hex", in: "%zz", want: "%zz"},
		{name: "OK/one hex digit", in: "%4", want: "%4"},
		{name: "OK/one hex digit then text", in: "%4g", want: "%4g"},
		{name: "OK/percent before escape", in: "%%41", want: "%A"},
		{name: "OK/unnecessary escapes", in: "%41%42", want: "AB"},
		{name: "OK/lower-case hex", in: "Zo%c3%ab", want: "Zoë"},
		{name: "OK/mixed-case hex", in: "Zo%C3%Ab", want: "Zoë"},
		{name: "OK/escaped percent not decoded twice", in: "%2541", want: "%41"},
		{name: "OK/raw space and quote", in: `a "b"`, want: `a "b"`},
		{name: "OK/raw non-ASCII", in: "Zoë", want: "Zoë"},
		{name: "OK/mixed", in: "100%zz%20%", want: "100%zz %"},
		{name: "OK/binding example", in: "Euro%20%E2%82%AC%20%F0%9F%98%80", want: "Euro € 😀"},
		{name: "error/invalid byte", in: "%FF", err: true},
		{name: "error/overlong space", in: "%C0%A0", err: true},
		{name: "error/truncated sequence", in: "%E2%82", err: true},
		{name: "error/surrogate", in: "%ED%A0%80", err: true},
		{name: "error/escaped continuation byte", in: "Zo%AB", err: true},
		{name: "error/raw invalid UTF-8", in: "Zo\xeb", err: true},
		{name: "error/raw invalid UTF-8 with an escape", in: "Zo\xeb%20", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jetsource.PercentDecode(tt.in)
			if tt.err {
				if err == nil {
					t.Errorf("PercentDecode(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("PercentDecode(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("PercentDecode(%q) = %q is not valid UTF-8", tt.in, got)
			}
		})
	}
}

// referenceDecodeMsg is the plain, map-based statement of what DecodeMsg
// does: index the headers by lower-case name (of two spellings the first
// in byte order wins), percent-decode the attributes, derive the missing
// ones. DecodeMsg reads the headers in one pass without maps; the tests
// below check that both agree, on cases and on fuzzed input. Extensions
// are visited in name order, so that the first error is deterministic.
func referenceDecodeMsg(subject string, h nats.Header, data []byte, at jetsource.Stored) (jetsource.Event, error) {
	subj, err := subjects.Parse(subject)
	if err != nil {
		return jetsource.Event{}, err
	}
	e := jetsource.Event{Subject: subj, Data: data, Sequence: at.Sequence, Stream: at.Stream, Stored: at.Time}
	lower := map[string]string{}
	orig := map[string]string{}
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		lk := strings.ToLower(k)
		if o, dup := orig[lk]; dup && o < k {
			continue
		}
		lower[lk], orig[lk] = vs[0], k
	}
	var errs []error
	get := func(k string) string {
		v := lower[k]
		if v == "" {
			return ""
		}
		d, err := jetsource.PercentDecode(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", orig[k], err))
		}
		return d
	}
	e.ID = get("ce-id")
	e.Source = get("ce-source")
	e.Type = get("ce-type")
	e.DataSchema = get("ce-dataschema")
	e.DataContentType = get("content-type")
	if e.DataContentType == "" {
		e.DataContentType = get("ce-datacontenttype")
	}
	e.Actor = get("ce-actor")
	e.ClientIP = get("ce-clientip")
	e.CorrelationID = get("ce-correlationid")
	e.CausationID = get("ce-causationid")
	e.TransactionID = get("ce-transactionid")
	if v := get("ce-schemarevision"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("header ce-schemarevision: %q is not a non-negative 32-bit integer", v))
		}
		e.SchemaRevision = int(n)
	}
	if v := get("ce-time"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err == nil && (t.UTC().Year() < 0 || t.UTC().Year() > 9999) {
			err = fmt.Errorf("year %d in UTC is outside 0 to 9999", t.UTC().Year())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("header ce-time: %w", err))
		}
		e.Time = t
	}
	sv := get("ce-specversion")
	if sv != "" && sv != "1.0" && sv != "0.3" {
		errs = append(errs, fmt.Errorf("header ce-specversion: unsupported spec version %q", sv))
	}
	encoding := ""
	for _, lk := range slices.Sorted(maps.Keys(lower)) {
		name, ok := strings.CutPrefix(lk, "ce-")
		if !ok || referenceReserved[name] || !referenceExtensionName(name) {
			continue
		}
		v := get(lk)
		if sv == "0.3" && name == "schemaurl" {
			if e.DataSchema == "" {
				e.DataSchema = v
			}
			continue
		}
		if sv == "0.3" && name == "datacontentencoding" {
			encoding = v
			continue
		}
		if v != "" {
			if e.Extensions == nil {
				e.Extensions = map[string]string{}
			}
			e.Extensions[name] = v
		}
	}
	if id := lower["nats-msg-id"]; !utf8.ValidString(id) {
		errs = append(errs, fmt.Errorf("header Nats-Msg-Id is not valid UTF-8"))
	}
	if !utf8.ValidString(at.Stream) {
		errs = append(errs, fmt.Errorf("stream name %q is not valid UTF-8", at.Stream))
	}
	if encoding != "" {
		if strings.ToLower(encoding) != "base64" {
			errs = append(errs, fmt.Errorf("header ce-datacontentencoding: unsupported encoding %q", encoding))
		} else if d, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data))); err != nil {
			errs = append(errs, fmt.Errorf("data is not valid base64 under ce-datacontentencoding base64"))
		} else {
			e.Data = d
		}
	}
	if len(errs) == 0 && len(e.Data) > 0 && e.DataContentType != "" {
		if mt, _, _ := mime.ParseMediaType(e.DataContentType); (mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")) && !json.Valid(e.Data) {
			errs = append(errs, fmt.Errorf("data is not valid JSON under content type %s", e.DataContentType))
		}
	}
	if len(errs) > 0 {
		return e, fmt.Errorf("%w: message %s at sequence %d: %v", jetsource.ErrInvalidEvent, subject, at.Sequence, errs[0])
	}
	if e.ID == "" {
		if id := lower["nats-msg-id"]; id != "" {
			e.ID = id
		} else {
			e.ID = at.Stream + "-" + strconv.FormatUint(at.Sequence, 10)
		}
	}
	if e.Source == "" {
		e.Source = "/streams/" + at.Stream
	}
	if e.Type == "" {
		e.Type = jetsource.TypeFromSubject(subj)
	}
	if e.Time.IsZero() {
		e.Time = at.Time
	}
	if e.DataContentType == "" && len(bytes.TrimSpace(e.Data)) > 0 {
		if json.Valid(e.Data) {
			e.DataContentType = "application/json"
		} else {
			e.DataContentType = "application/octet-stream"
		}
	}
	return e, nil
}

// referenceReserved are the CloudEvents attribute names that are never
// extensions.
var referenceReserved = map[string]bool{
	"id": true, "source": true, "specversion": true, "type": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
	"actor": true, "clientip": true, "correlationid": true, "causationid": true,
	"schemarevision": true, "transactionid": true, "sequence": true,
}

func referenceExtensionName(name string) bool {
	if name == "" || len(name) > 20 {
		return false
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// storedHeaders returns the headers of an event as jetsource stores it:
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
	h.Set("Nats-Batch-Sequence", "4")
	return h
}

// sameAsReference fails unless DecodeMsg and referenceDecodeMsg give the
// same event (also the partial one that comes with an error) and the same
// error.
func sameAsReference(t *testing.T, subject string, h nats.Header, data []byte, at jetsource.Stored) {
	t.Helper()
	want, werr := referenceDecodeMsg(subject, h, data, at)
	got, gerr := jetsource.DecodeMsg(subject, h, data, at)
	if !reflect.DeepEqual(got, want) || (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("headers %q:\nDecodeMsg: %+v, %v\nreference: %+v, %v", h, got, gerr, want, werr)
	}
	if werr != nil && !errors.Is(gerr, jetsource.ErrInvalidEvent) && !errors.Is(gerr, jetsource.ErrInvalidSubject) {
		t.Fatalf("error %v matches no sentinel", gerr)
	}
}

// TestDecodeMsgMatchesReference checks DecodeMsg against the plain
// statement of its rules, on the headers jetsource writes and on every
// unusual spelling, value and error.
func TestDecodeMsgMatchesReference(t *testing.T) {
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 9, Time: time.Unix(1700000000, 0).UTC()}
	with := func(kv ...string) nats.Header {
		h := storedHeaders(t)
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = []string{kv[i+1]}
		}
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
		{"NoHeadersSpaces", nil, " \n"},
		{"Stored", storedHeaders(t), `{"a":1}`},
		{"IDFromMsgID", nats.Header{"Nats-Msg-Id": {"m-1"}, "Nats-Expected-Stream": {"EVENTS"}}, `{}`},
		{"IDFromLowerCaseMsgID", nats.Header{"nats-msg-id": {"m-2"}, "NATS-EXPECTED-STREAM": {"EVENTS"}}, `{}`},
		{"TwoSpellingsOfMsgID", nats.Header{"nats-msg-id": {"m-2"}, "Nats-Msg-Id": {"m-3"}}, `{}`},
		{"ShortNatsLikeKeys", nats.Header{"nats-": {"x"}, "Nats": {"y"}, "ce": {"z"}, "ce-": {"w"}}, `{}`},
		{"Extension", with("ce-tenant", "t1"), `{}`},
		{"ExtensionUpperCase", with("CE-Tenant", "t1"), `{}`},
		{"ExtensionTwoSpellings", with("ce-tenant", "t1", "CE-TENANT", "t2", "Ce-Tenant", "t3"), `{}`},
		{"ExtensionEmptyValue", with("ce-tenant", ""), `{}`},
		{"ExtensionTooLong", with("ce-abcdefghijklmnopqrstu", "x"), `{}`},
		{"ExtensionBadName", with("ce-ten_ant", "x", "ce-tën", "y"), `{}`},
		{"ExtensionsBadValues", with("ce-aa", "%FF", "ce-bb", "%C0%A0", "ce-cc", "ok"), `{}`},
		{"ReservedExtension", with("ce-sequence", "4", "ce-subject", "x.y", "ce-data", "z"), `{}`},
		{"KelvinSign", with("ce-\u212Aey", "k1"), `{}`},
		{"DottedCapitalI", with("CE-\u0130D", "other", "ce-\u0130d", "other2"), `{}`},
		{"UpperCaseID", with("CE-ID", "other"), `{}`},
		{"EmptyUpperCaseID", with("CE-ID", ""), `{}`},
		{"UpperCaseContentType", with("CONTENT-TYPE", "text/plain"), `x`},
		{"PercentEncoded", with("ce-actor", "ann%20lee"), `{}`},
		{"PercentEncodedContentType", with("Content-Type", "text%2Fplain"), `x`},
		{"NonASCII", with("ce-actor", "zoë"), `{}`},
		{"BadUTF8", with("ce-actor", "zo\xeb"), `{}`},
		{"BadUTF8MsgID", with("Nats-Msg-Id", "\xff"), `{}`},
		{"BadTime", with("ce-time", "yesterday"), `{}`},
		{"TimeNoFraction", with("ce-time", "2025-03-14T15:09:26Z"), `{}`},
		{"TimeOneFractionDigit", with("ce-time", "2025-03-14T15:09:26.5Z"), `{}`},
		{"TimeTenFractionDigits", with("ce-time", "2025-03-14T15:09:26.1234567891Z"), `{}`},
		{"TimeOffset", with("ce-time", "2025-03-14T15:09:26.5+01:00"), `{}`},
		{"TimeLeapDay", with("ce-time", "2024-02-29T00:00:00Z"), `{}`},
		{"TimeNoLeapDay", with("ce-time", "2100-02-29T00:00:00Z"), `{}`},
		{"TimeDay31OfApril", with("ce-time", "2025-04-31T00:00:00Z"), `{}`},
		{"TimeHour24", with("ce-time", "2025-04-30T24:00:00Z"), `{}`},
		{"TimeLeapSecond", with("ce-time", "2016-12-31T23:59:60Z"), `{}`},
		{"TimeLowerCase", with("ce-time", "2025-03-14t15:09:26z"), `{}`},
		{"TimeSignInFraction", with("ce-time", "2025-03-14T15:09:26.-5Z"), `{}`},
		{"TimeDotWithoutFraction", with("ce-time", "2025-03-14T15:09:26.Z"), `{}`},
		{"ZeroTime", with("ce-time", "0001-01-01T00:00:00Z"), `{}`},
		{"YearOutOfRange", with("ce-time", "9999-12-31T23:00:00-05:00"), `{}`},
		{"BadSpecVersion", with("ce-specversion", "0.2"), `{}`},
		{"SpecVersion03", with("ce-specversion", "0.3", "ce-schemaurl", "https://example.com/s"), `{}`},
		{"SpecVersion03DataSchemaWins", with("ce-specversion", "0.3", "ce-schemaurl", "https://a/s", "ce-dataschema", "https://b/s"), `{}`},
		{"SpecVersion03Base64", with("ce-specversion", "0.3", "ce-datacontentencoding", "Base64"), `eyJhIjoxfQ==`},
		{"SpecVersion03Base64Binary", with("ce-specversion", "0.3", "ce-datacontentencoding", "base64", "Content-Type", "application/octet-stream"), `AAH/`},
		{"SpecVersion03BadBase64", with("ce-specversion", "0.3", "ce-datacontentencoding", "base64"), `{}`},
		{"SpecVersion03OtherEncoding", with("ce-specversion", "0.3", "ce-datacontentencoding", "7bit"), `{}`},
		{"SchemaURLIn10IsAnExtension", with("ce-schemaurl", "https://example.com/s"), `{}`},
		{"JSONContentTypeNotJSON", with("Content-Type", "application/json"), `{"a":`},
		{"JSONContentTypeSpaces", with("Content-Type", "application/json"), " \n"},
		{"JSONSuffixNotJSON", with("Content-Type", "application/vnd.x+json;v=1"), `x`},
		{"TextJSONUpperCaseNotJSON", with("Content-Type", "TEXT/JSON"), `x`},
		{"JSONContentTypeNoData", with("Content-Type", "application/json"), ``},
		{"BadContentTypeSyntaxNotJSON", with("Content-Type", "application/json;;"), `x`},
		{"EmptyID", with("ce-id", ""), `{}`},
		{"ContentTypeWithSpace", with("Content-Type", "application/json; charset=utf-8"), `{}`},
		{"DataContentTypeHeader", with("ce-datacontenttype", "text/plain"), `x`},
		{"BadContentTypeThenDataContentType", with("Content-Type", "%FF", "ce-datacontenttype", "text/plain"), `x`},
		{"SchemaRevision", with("ce-schemarevision", "2"), `{}`},
		{"SchemaRevisionTooLarge", with("ce-schemarevision", "2147483648"), `{}`},
		{"SchemaRevisionNegative", with("ce-schemarevision", "-3"), `{}`},
		{"ManyErrors", with("ce-time", "x", "ce-source", "%FF", "ce-schemarevision", "y", "ce-specversion", "2"), `{}`},
		{"NoValues", nats.Header{"ce-id": {}, "CE-ID": {"x"}}, `{}`},
		{"SeveralValues", nats.Header{"ce-id": {"a", "b"}}, `{}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { sameAsReference(t, "users.A.added", c.h, []byte(c.data), at) })
	}
	t.Run("BadSubject", func(t *testing.T) { sameAsReference(t, "users.*", storedHeaders(t), nil, at) })
	t.Run("BadStreamName", func(t *testing.T) {
		sameAsReference(t, "users.A.added", storedHeaders(t), nil, jetsource.Stored{Stream: "\xff", Sequence: 1})
	})
}

// Keys the fuzzer picks from: every attribute in its usual and in other
// spellings, extensions and JetStream headers.
var fuzzKeys = []string{"ce-id", "ce-source", "ce-type", "ce-time", "ce-specversion", "ce-dataschema", "Content-Type",
	"ce-actor", "ce-clientip", "ce-correlationid", "ce-causationid", "ce-transactionid", "ce-schemarevision",
	"ce-datacontenttype", "ce-subject", "ce-x1", "Nats-Msg-Id", "nats-msg-id", "Nats-Expected-Stream", "content-type",
	"X-Other", "CE-ID", "Ce-Time", "CE-X1", "ce-\u212A", "Nats-Batch-Id"}

// FuzzDecodeMsgMatchesReference checks that DecodeMsg gives exactly what
// referenceDecodeMsg gives, on headers close to those jetsource writes.
func FuzzDecodeMsgMatchesReference(f *testing.F) {
	f.Add("users.A.added", uint8(0), "evt-1", uint8(16), "m-1", "Nats-Batch-Id", "b", []byte(`{}`))                              // id and msg id
	f.Add("users.A.added", uint8(3), "2024-02-29T12:00:00.5+01:00", uint8(6), "text/plain", "ce-x", "y", []byte(`x`))            // time, content type, extension
	f.Add("users.A.added", uint8(3), "yesterday", uint8(4), "1.0", "CE-ID", "z", []byte(nil))                                    // bad time, case variant
	f.Add("a", uint8(7), "%41%zz", uint8(17), "\xff", "Nats-", "", []byte(`{`))                                                  // bad subject, percent, bad UTF-8
	f.Add("users.A.added", uint8(0x80|21), "x", uint8(23), "%FF", "cE-X1", "%C0", []byte(` `))                                   // no stored headers, spellings of one extension
	f.Add("users.A.added", uint8(24), "k", uint8(15), "v", "ce-\u0130d", "i", []byte(`{}`))                                      // Unicode case mapping
	f.Add("users.A.added", uint8(3), "2024-02-29T23:59:59.000000001Z", uint8(3), "2023-02-29T00:00:00Z", "x", "", []byte(`{}`))  // leap day; no such day
	f.Add("users.A.added", uint8(3), "1900-02-29T00:00:00Z", uint8(3), "2000-02-29T24:00:00Z", "y", "", []byte(`{}`))            // century years; hour 24
	f.Add("users.A.added", uint8(3), "2025-12-31T23:59:60Z", uint8(3), "2025-06-31T00:00:00.1234567890Z", "z", "", []byte(`{}`)) // leap second; day 31 of June, ten fraction digits
	f.Add("users.A.added", uint8(3), "2025-01-01t00:00:00z", uint8(3), "0000-01-01T00:00:00.5Z", "w", "", []byte(`{}`))          // lower-case t and z; year 0
	f.Fuzz(func(t *testing.T, subject string, p1 uint8, v1 string, p2 uint8, v2 string, k3, v3 string, data []byte) {
		h := storedHeaders(t)
		if p1&0x80 != 0 {
			h = nats.Header{}
		}
		h[fuzzKeys[int(p1&0x7f)%len(fuzzKeys)]] = []string{v1}
		h[fuzzKeys[int(p2)%len(fuzzKeys)]] = []string{v2}
		h[k3] = append(h[k3], v3)
		sameAsReference(t, subject, h, data, jetsource.Stored{Stream: "S", Sequence: 1, Time: time.Unix(1, 0).UTC()})
	})
}

// BenchmarkDecodeMsg decodes an event as jetsource stores it (11 headers,
// JetStream's included).
func BenchmarkDecodeMsg(b *testing.B) {
	h, data := storedHeaders(b), []byte(`{"a":1}`)
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 7, Time: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jetsource.DecodeMsg("users.A.added", h, data, at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeMsgReference is the map-based decoding, for comparison.
func BenchmarkDecodeMsgReference(b *testing.B) {
	h, data := storedHeaders(b), []byte(`{"a":1}`)
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 7, Time: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := referenceDecodeMsg("users.A.added", h, data, at); err != nil {
			b.Fatal(err)
		}
	}
}
