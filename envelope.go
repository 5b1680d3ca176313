package jetsource

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
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
// Decoding is lenient where CloudEvents allows it: a message without
// ce-specversion is read as 1.0, and one with ce-specversion 0.3 is read
// as the 1.0 event it maps to (its binary-mode headers are 1.0's but for
// ce-schemaurl, read as the data schema, and ce-datacontentencoding, of
// which base64 is decoded and anything else refused). Percent signs that
// are no escapes are kept, header names may be in any case, and
// extension headers whose names CloudEvents does not allow are ignored.
//
// What cannot be read as an event is refused: another spec version, a
// subject that is no literal subject, a time that is not RFC 3339 (or
// outside the years 0 to 9999), a schema revision that is no non-negative
// 32-bit integer, a value that is not valid UTF-8 once decoded, and data
// that is not valid JSON under a JSON content type. Readers go through
// [DecodeStored], which delivers such a message as a malformed event.
//
// Header names are case-insensitive; of two names that differ only in
// case, the one first in byte order wins. Headers that are no CloudEvents
// attribute (the JetStream ones such as Nats-Expected-Stream) are ignored.
// DecodeMsg reads the headers in one pass without building maps: decoding
// the headers jetsource writes allocates nothing.
//
// It returns an error matching [ErrInvalidSubject] for a subject that is not
// a valid literal subject and [ErrInvalidEvent] for a malformed header.
func DecodeMsg(subject string, h nats.Header, data []byte, at Stored) (Event, error) {
	subj, err := subjects.Parse(subject)
	if err != nil {
		return Event{}, err
	}
	e := Event{Subject: subj, Data: data, Sequence: at.Sequence, Stream: at.Stream, Stored: at.Time}
	// One pass over the headers: each known attribute into its slot,
	// ce-* names that may be extensions aside.
	var slots [numSlots]headerValue
	var extBuf [4]extHeader
	exts := extBuf[:0]
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		slot, ext := classifyHeader(k)
		switch {
		case slot >= 0:
			if sv := &slots[slot]; sv.key == "" || k < sv.key {
				*sv = headerValue{k, vs[0]}
			}
		case ext != "":
			exts = addExtension(exts, ext, k, vs[0])
		}
	}
	var first error
	get := func(slot int) string {
		v := slots[slot].val
		if v == "" {
			return ""
		}
		d, err := PercentDecode(v)
		if err != nil && first == nil {
			first = fmt.Errorf("header %s: %w", slots[slot].key, err)
		}
		return d
	}
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	e.ID = get(slotID)
	e.Source = get(slotSource)
	e.Type = get(slotType)
	e.DataSchema = get(slotDataSchema)
	e.DataContentType = get(slotContentType)
	if e.DataContentType == "" {
		e.DataContentType = get(slotDataContentType)
	}
	e.Actor = get(slotActor)
	e.ClientIP = get(slotClientIP)
	e.CorrelationID = get(slotCorrelationID)
	e.CausationID = get(slotCausationID)
	e.TransactionID = get(slotTransactionID)
	if v := get(slotSchemaRevision); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			fail(fmt.Errorf("header %s%s: %q is not a non-negative 32-bit integer", HeaderPrefix, ExtSchemaRevision, v))
		}
		e.SchemaRevision = int(n)
	}
	if v := get(slotTime); v != "" {
		t, err := parseTime(v)
		if err == nil && (t.UTC().Year() < 0 || t.UTC().Year() > 9999) {
			err = fmt.Errorf("year %d in UTC is outside 0 to 9999", t.UTC().Year())
		}
		if err != nil {
			fail(fmt.Errorf("header %s: %w", HeaderTime, err))
		}
		e.Time = t
	}
	sv := get(slotSpecVersion)
	v03 := sv == specVersion03
	if sv != "" && sv != SpecVersion && !v03 {
		fail(fmt.Errorf("header %s: unsupported spec version %q", HeaderSpecVersion, sv))
	}
	if len(exts) > 1 {
		// In name order, so that the error reported is always the same.
		slices.SortFunc(exts, func(a, b extHeader) int { return strings.Compare(a.name, b.name) })
	}
	var encoding string // CloudEvents 0.3 datacontentencoding
	for _, x := range exts {
		if x.val == "" {
			continue
		}
		v, err := PercentDecode(x.val)
		if err != nil {
			fail(fmt.Errorf("header %s: %w", x.key, err))
		}
		if v03 {
			// The 0.3 attributes that 1.0 renamed or dropped.
			switch x.name {
			case "schemaurl":
				if e.DataSchema == "" {
					e.DataSchema = v
				}
				continue
			case "datacontentencoding":
				encoding = v
				continue
			}
		}
		if v != "" {
			if e.Extensions == nil {
				e.Extensions = make(map[string]string, len(exts))
			}
			e.Extensions[x.name] = v
		}
	}
	msgID := slots[slotMsgID].val
	if !utf8.ValidString(msgID) {
		fail(fmt.Errorf("header %s is not valid UTF-8", HeaderMsgID))
	}
	if !utf8.ValidString(at.Stream) {
		fail(fmt.Errorf("stream name %q is not valid UTF-8", at.Stream))
	}
	if encoding != "" {
		if !strings.EqualFold(encoding, "base64") {
			fail(fmt.Errorf("header %sdatacontentencoding: unsupported encoding %q", HeaderPrefix, encoding))
		} else if d, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data))); err != nil {
			fail(fmt.Errorf("data is not valid base64 under %sdatacontentencoding base64", HeaderPrefix))
		} else {
			e.Data = d
		}
	}
	if first == nil && len(e.Data) > 0 && e.DataContentType != "" && jsonContentType(e.DataContentType) && !json.Valid(e.Data) {
		fail(fmt.Errorf("data is not valid JSON under content type %s", e.DataContentType))
	}
	if first != nil {
		return e, fmt.Errorf("%w: message %s at sequence %d: %v", ErrInvalidEvent, subject, at.Sequence, first)
	}
	// Derive what a plain publish left out.
	if e.ID == "" {
		if msgID != "" {
			e.ID = msgID
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
	if e.DataContentType == "" && len(bytes.TrimSpace(e.Data)) > 0 {
		if json.Valid(e.Data) {
			e.DataContentType = "application/json"
		} else {
			e.DataContentType = "application/octet-stream"
		}
	}
	return e, nil
}

// specVersion03 is the CloudEvents version whose binary-mode headers
// [DecodeMsg] reads as well as 1.0's.
const specVersion03 = "0.3"

// jsonContentType reports whether a content type is a JSON media type
// (application/json, text/json, anything ending in +json), parameters
// and case aside, without allocating.
func jsonContentType(ct string) bool {
	if ct == "application/json" {
		return true
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	const suffix = "+json"
	return strings.EqualFold(ct, "application/json") || strings.EqualFold(ct, "text/json") ||
		len(ct) > len(suffix) && strings.EqualFold(ct[len(ct)-len(suffix):], suffix)
}

// DecodeStored turns a stored message into an event and never fails: what
// [DecodeMsg] refuses comes back as an event whose [Event.Malformed] holds
// the raw subject, headers and the reason, with Sequence, Stream, Stored,
// the raw Data and an ID derived like DecodeMsg derives one
// ("<stream>-<sequence>"). Its Subject is set when the raw subject parses.
// Readers use it so that no message can stop them.
func DecodeStored(subject string, h nats.Header, data []byte, at Stored) Event {
	e, err := DecodeMsg(subject, h, data, at)
	if err == nil {
		return e
	}
	m := Event{Data: data, Sequence: at.Sequence, Stream: at.Stream, Stored: at.Time,
		ID: at.Stream + "-" + strconv.FormatUint(at.Sequence, 10)}
	if s, perr := subjects.Parse(subject); perr == nil {
		m.Subject = s
	}
	m.Malformed = &Malformed{Subject: subject, Header: h, Reason: malformedReason(err)}
	return m
}

// malformedReason is the decoding error without the prefixes that
// repeat what a Malformed already says.
func malformedReason(err error) string {
	r := err.Error()
	if i := strings.Index(r, ": message "); i >= 0 && strings.HasPrefix(r, ErrInvalidEvent.Error()) {
		if j := strings.Index(r[i+len(": message "):], ": "); j >= 0 {
			return r[i+len(": message ")+j+2:]
		}
	}
	return r
}

// parseTime parses an RFC 3339 time as time.Parse(time.RFC3339Nano, v)
// does. The form EncodeHeader writes (UTC, "Z", up to nine fraction
// digits) takes a direct path; anything else goes to time.Parse.
func parseTime(v string) (time.Time, error) {
	// 2006-01-02T15:04:05Z or 2006-01-02T15:04:05.999999999Z
	n := len(v)
	if n < 20 || n > 30 || n == 21 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[n-1] != 'Z' {
		return time.Parse(time.RFC3339Nano, v)
	}
	num := func(s string) (int, bool) {
		x := 0
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			x = x*10 + int(c-'0')
		}
		return x, true
	}
	year, ok1 := num(v[0:4])
	month, ok2 := num(v[5:7])
	day, ok3 := num(v[8:10])
	hour, ok4 := num(v[11:13])
	minute, ok5 := num(v[14:16])
	sec, ok6 := num(v[17:19])
	nsec, ok7 := 0, true
	if n > 20 {
		if v[19] != '.' {
			return time.Parse(time.RFC3339Nano, v)
		}
		frac := v[20 : n-1]
		nsec, ok7 = num(frac)
		for range 9 - len(frac) {
			nsec *= 10
		}
	}
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Parse(time.RFC3339Nano, v)
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), nil
}

// daysIn returns the number of days of a month (1 to 12).
func daysIn(m time.Month, year int) int {
	switch {
	case m == time.February && year%4 == 0 && (year%100 != 0 || year%400 == 0):
		return 29
	case m == time.February:
		return 28
	case m == time.April || m == time.June || m == time.September || m == time.November:
		return 30
	}
	return 31
}

// The attributes DecodeMsg reads, each from one header.
const (
	slotID = iota
	slotSource
	slotType
	slotDataSchema
	slotContentType
	slotDataContentType
	slotActor
	slotClientIP
	slotCorrelationID
	slotCausationID
	slotTransactionID
	slotSchemaRevision
	slotTime
	slotSpecVersion
	slotMsgID
	numSlots
)

// slotHeaders are the header names of the slots, in lower case.
var slotHeaders = [numSlots]string{
	slotID:              HeaderID,
	slotSource:          HeaderSource,
	slotType:            HeaderType,
	slotDataSchema:      HeaderDataSchema,
	slotContentType:     "content-type",
	slotDataContentType: HeaderDataContentType,
	slotActor:           HeaderPrefix + ExtActor,
	slotClientIP:        HeaderPrefix + ExtClientIP,
	slotCorrelationID:   HeaderPrefix + ExtCorrelationID,
	slotCausationID:     HeaderPrefix + ExtCausationID,
	slotTransactionID:   HeaderPrefix + ExtTransactionID,
	slotSchemaRevision:  HeaderPrefix + ExtSchemaRevision,
	slotTime:            HeaderTime,
	slotSpecVersion:     HeaderSpecVersion,
	slotMsgID:           "nats-msg-id",
}

// headerValue is the first value of a header and the header's name as
// spelled in the message ("": absent).
type headerValue struct{ key, val string }

// extHeader is a header that may carry an extension attribute: its
// lower-case name without the prefix, its spelling and its first value.
type extHeader struct{ name, key, val string }

// addExtension records an extension header; of two spellings of one
// name, the first in byte order wins.
func addExtension(exts []extHeader, name, key, val string) []extHeader {
	for i := range exts {
		if exts[i].name == name {
			if key < exts[i].key {
				exts[i].key, exts[i].val = key, val
			}
			return exts
		}
	}
	return append(exts, extHeader{name, key, val})
}

// classifyHeader tells what a header name carries: the index of its slot,
// or (slot -1) the name of the extension it may carry, or nothing (slot
// -1, ""). Names compare as [strings.ToLower] makes them.
func classifyHeader(k string) (slot int, ext string) {
	// The spellings EncodeHeader and JetStream use, without folding.
	switch k {
	case HeaderID:
		return slotID, ""
	case HeaderSource:
		return slotSource, ""
	case HeaderType:
		return slotType, ""
	case HeaderTime:
		return slotTime, ""
	case HeaderSpecVersion:
		return slotSpecVersion, ""
	case HeaderContentType:
		return slotContentType, ""
	case HeaderMsgID:
		return slotMsgID, ""
	case HeaderPrefix + ExtActor:
		return slotActor, ""
	case HeaderPrefix + ExtTransactionID:
		return slotTransactionID, ""
	case HeaderPrefix + ExtCorrelationID:
		return slotCorrelationID, ""
	case HeaderPrefix + ExtCausationID:
		return slotCausationID, ""
	case "Nats-Expected-Stream", "Nats-Expected-Last-Subject-Sequence", "Nats-Expected-Last-Subject-Sequence-Subject",
		"Nats-Expected-Last-Sequence", "Nats-Batch-Id", "Nats-Batch-Sequence", "Nats-Batch-Commit", "Nats-TTL":
		return -1, ""
	}
	ascii := true
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		// Unicode case mapping can turn a non-ASCII name into an ASCII
		// one (the Kelvin sign K lower-cases to k): rare, so allocate.
		return classifyLower(strings.ToLower(k))
	}
	if len(k) >= len(HeaderPrefix) && foldASCII(k[:len(HeaderPrefix)], HeaderPrefix) {
		for slot, name := range slotHeaders {
			if slot != slotContentType && slot != slotMsgID && foldASCII(k, name) {
				return slot, ""
			}
		}
		name := k[len(HeaderPrefix):]
		if hasUpperASCII(name) {
			if !extensionNameFold(name) {
				return -1, ""
			}
			name = strings.ToLower(name)
		}
		return extensionSlot(name)
	}
	switch {
	case foldASCII(k, "content-type"):
		return slotContentType, ""
	case foldASCII(k, "nats-msg-id"):
		return slotMsgID, ""
	}
	return -1, ""
}

// classifyLower is classifyHeader for a name already in lower case.
func classifyLower(lk string) (slot int, ext string) {
	for slot, name := range slotHeaders {
		if lk == name {
			return slot, ""
		}
	}
	if name, ok := strings.CutPrefix(lk, HeaderPrefix); ok {
		return extensionSlot(name)
	}
	return -1, ""
}

// extensionSlot returns a lower-case name that is a valid extension name
// and no reserved attribute as an extension, or nothing.
func extensionSlot(name string) (int, string) {
	if !extensionNameFold(name) || hasUpperASCII(name) {
		return -1, ""
	}
	if _, reserved := reservedAttributes[name]; reserved {
		return -1, ""
	}
	return -1, name
}

// extensionNameFold reports whether name is a valid extension name once in
// lower case: 1 to 20 ASCII letters and digits.
func extensionNameFold(name string) bool {
	if name == "" || len(name) > 20 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i] | 0x20
		if (c < 'a' || c > 'z') && (name[i] < '0' || name[i] > '9') {
			return false
		}
	}
	return true
}

// foldASCII reports whether the ASCII string s equals the lower-case
// lower once s is in lower case.
func foldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
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
	// The common case, plain ASCII without a percent sign, in one scan.
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return s, nil
	}
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
