package jetsource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource/subjects"
)

// Header names of the binary-mode envelope.
const (
	HeaderPrefix      = "ce-"
	HeaderID          = "ce-id"
	HeaderSource      = "ce-source"
	HeaderSpecVersion = "ce-specversion"
	HeaderType        = "ce-type"
	HeaderTime        = "ce-time"
	HeaderDataSchema  = "ce-dataschema"
	HeaderSubject     = "ce-subject"
	HeaderContentType = "Content-Type"
	// HeaderDataContentType is accepted on read as an alternative to
	// Content-Type; it is never written.
	HeaderDataContentType = "ce-datacontenttype"
	// HeaderMsgID is the JetStream de-duplication header; it carries the
	// event id.
	HeaderMsgID = "Nats-Msg-Id"
)

// EncodeHeader maps an event onto NATS headers in CloudEvents binary mode:
// every attribute as a ce-* header with its value percent-encoded, the
// content type as Content-Type (not encoded). The subject is not repeated in a header: it
// is the message subject. The event should have been through [Prepare].
func EncodeHeader(e Event) nats.Header {
	h := make(nats.Header, 12+len(e.Extensions))
	put := func(k, v string) {
		if v != "" {
			h[k] = []string{PercentEncode(v)}
		}
	}
	h[HeaderSpecVersion] = []string{SpecVersion}
	put(HeaderID, e.ID)
	put(HeaderSource, e.Source)
	put(HeaderType, e.Type)
	if !e.Time.IsZero() {
		h[HeaderTime] = []string{e.Time.UTC().Format(time.RFC3339Nano)}
	}
	put(HeaderDataSchema, e.DataSchema)
	if e.DataContentType != "" {
		// A standard header, read by more than CloudEvents readers: as it
		// is (Validate keeps control characters out).
		h[HeaderContentType] = []string{e.DataContentType}
	}
	put(HeaderPrefix+ExtActor, e.Actor)
	put(HeaderPrefix+ExtClientIP, e.ClientIP)
	put(HeaderPrefix+ExtCorrelationID, e.CorrelationID)
	put(HeaderPrefix+ExtCausationID, e.CausationID)
	put(HeaderPrefix+ExtTransactionID, e.TransactionID)
	if e.SchemaRevision > 0 {
		h[HeaderPrefix+ExtSchemaRevision] = []string{strconv.Itoa(e.SchemaRevision)}
	}
	for k, v := range e.Extensions {
		put(HeaderPrefix+k, v)
	}
	return h
}

// Msg returns the NATS message for an event: its subject, the binary-mode
// headers from [EncodeHeader] and the data as the body.
func (e Event) Msg() *nats.Msg {
	return &nats.Msg{Subject: e.Subject.String(), Header: EncodeHeader(e), Data: e.Data}
}

// Stored describes where a message was stored: the stream, its sequence
// there and the stream's timestamp.
type Stored struct {
	Stream   string
	Sequence uint64
	Time     time.Time
}

// DecodeMsg turns a stored message into an event. Missing attributes are
// derived, so a message published with no headers at all is a valid event:
//   - id: the Nats-Msg-Id header, else "<stream>-<sequence>";
//   - source: "/streams/<stream>";
//   - type: [TypeFromSubject];
//   - time: the stream's timestamp;
//   - content type: application/json when the data is valid JSON, else
//     application/octet-stream (nothing for empty data).
//
// It returns an error matching [ErrInvalidSubject] for a subject that is not
// a valid literal subject and [ErrInvalidEvent] for a malformed header.
func DecodeMsg(subject string, h nats.Header, data []byte, at Stored) (Event, error) {
	subj, err := subjects.Parse(subject)
	if err != nil {
		return Event{}, err
	}
	e := Event{Subject: subj, Data: data, Sequence: at.Sequence, Stream: at.Stream, Stored: at.Time}
	// Header names are case-insensitive: index them in lower case. Of two
	// names differing only in case, the one first in byte order wins.
	lower := make(map[string]string, len(h))
	orig := make(map[string]string, len(h))
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
		d, err := PercentDecode(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", orig[k], err))
		}
		return d
	}
	e.ID = get(HeaderID)
	e.Source = get(HeaderSource)
	e.Type = get(HeaderType)
	e.DataSchema = get(HeaderDataSchema)
	e.DataContentType = get("content-type")
	if e.DataContentType == "" {
		e.DataContentType = get(HeaderDataContentType)
	}
	e.Actor = get(HeaderPrefix + ExtActor)
	e.ClientIP = get(HeaderPrefix + ExtClientIP)
	e.CorrelationID = get(HeaderPrefix + ExtCorrelationID)
	e.CausationID = get(HeaderPrefix + ExtCausationID)
	e.TransactionID = get(HeaderPrefix + ExtTransactionID)
	if v := get(HeaderPrefix + ExtSchemaRevision); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("header %s%s: %q is not a non-negative 32-bit integer", HeaderPrefix, ExtSchemaRevision, v))
		}
		e.SchemaRevision = int(n)
	}
	if v := get(HeaderTime); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err == nil && (t.UTC().Year() < 0 || t.UTC().Year() > 9999) {
			err = fmt.Errorf("year %d in UTC is outside 0 to 9999", t.UTC().Year())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", HeaderTime, err))
		}
		e.Time = t
	}
	if sv := get(HeaderSpecVersion); sv != "" && sv != SpecVersion {
		errs = append(errs, fmt.Errorf("header %s: unsupported spec version %q", HeaderSpecVersion, sv))
	}
	for lk := range lower {
		if !strings.HasPrefix(lk, HeaderPrefix) {
			continue
		}
		name := lk[len(HeaderPrefix):]
		if _, reserved := reservedAttributes[name]; reserved || validExtensionName(name) != nil {
			continue
		}
		if v := get(lk); v != "" {
			if e.Extensions == nil {
				e.Extensions = map[string]string{}
			}
			e.Extensions[name] = v
		}
	}
	if id := lower[strings.ToLower(HeaderMsgID)]; !utf8.ValidString(id) {
		errs = append(errs, fmt.Errorf("header %s is not valid UTF-8", HeaderMsgID))
	}
	if !utf8.ValidString(at.Stream) {
		errs = append(errs, fmt.Errorf("stream name %q is not valid UTF-8", at.Stream))
	}
	if len(errs) > 0 {
		return e, fmt.Errorf("%w: message %s at sequence %d: %v", ErrInvalidEvent, subject, at.Sequence, errs[0])
	}
	// Derive what a plain publish left out.
	if e.ID == "" {
		if id := lower[strings.ToLower(HeaderMsgID)]; id != "" {
			e.ID = id
		} else {
			e.ID = at.Stream + "-" + strconv.FormatUint(at.Sequence, 10)
		}
	}
	if e.Source == "" {
		e.Source = "/streams/" + at.Stream
	}
	if e.Type == "" {
		e.Type = TypeFromSubject(subj)
	}
	if e.Time.IsZero() {
		e.Time = at.Time
	}
	if e.DataContentType == "" && len(bytes.TrimSpace(data)) > 0 {
		if json.Valid(data) {
			e.DataContentType = "application/json"
		} else {
			e.DataContentType = "application/octet-stream"
		}
	}
	return e, nil
}

// PercentEncode encodes a header value as the CloudEvents NATS binding
// asks: space, double quote, percent, and every byte outside printable ASCII
// become %XX.
func PercentEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsPercent(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexdigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsPercent(c) {
			b = append(b, '%', hexdigits[c>>4], hexdigits[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func needsPercent(c byte) bool { return c <= ' ' || c >= 0x7f || c == '"' || c == '%' }

// PercentDecode reverses [PercentEncode]. A percent sign that is not
// followed by two hex digits is kept as it is, so values written by
// producers that do not percent-encode still read back; the result must be
// valid UTF-8.
func PercentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("value %q is not valid UTF-8", s)
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, c)
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("value %q does not decode to valid UTF-8", s)
	}
	return string(b), nil
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
