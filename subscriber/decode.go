package subscriber

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// decode turns a delivered message into an event exactly as
// [jetsource.DecodeMsg] does. Decoding is most of what the subscriber
// adds to each delivery, so the headers jetsource itself writes take a
// fast path: every header name spelled as [jetsource.EncodeHeader] spells
// it, every value plain printable ASCII without a percent sign (so
// percent-decoding changes nothing), no extension attributes. Anything
// else, and anything the fast path would reject, goes to DecodeMsg, so
// errors and unusual events are DecodeMsg's own. Tests check that both
// paths agree, including on fuzzed input.
func decode(subject string, h nats.Header, data []byte, at jetsource.Stored) (jetsource.Event, error) {
	if e, ok := fastDecode(subject, h, data, at); ok {
		return e, nil
	}
	return jetsource.DecodeMsg(subject, h, data, at)
}

// fastDecode decodes the common case, or reports false.
func fastDecode(subject string, h nats.Header, data []byte, at jetsource.Stored) (jetsource.Event, bool) {
	var e jetsource.Event
	var msgID, tm, spec string
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		var dst *string
		switch k {
		case jetsource.HeaderID:
			dst = &e.ID
		case jetsource.HeaderSource:
			dst = &e.Source
		case jetsource.HeaderType:
			dst = &e.Type
		case jetsource.HeaderDataSchema:
			dst = &e.DataSchema
		case jetsource.HeaderContentType:
			dst = &e.DataContentType
		case jetsource.HeaderTime:
			dst = &tm
		case jetsource.HeaderSpecVersion:
			dst = &spec
		case jetsource.HeaderMsgID:
			dst = &msgID
		case "ce-" + jetsource.ExtActor:
			dst = &e.Actor
		case "ce-" + jetsource.ExtClientIP:
			dst = &e.ClientIP
		case "ce-" + jetsource.ExtCorrelationID:
			dst = &e.CorrelationID
		case "ce-" + jetsource.ExtCausationID:
			dst = &e.CausationID
		case "ce-" + jetsource.ExtTransactionID:
			dst = &e.TransactionID
		default:
			// Another spelling of a name read above, an extension, or a
			// JetStream header that only shares its prefix: not the common
			// case. Other headers are not read at all.
			if len(k) >= 3 && strings.EqualFold(k[:3], "ce-") || strings.EqualFold(k, jetsource.HeaderContentType) ||
				len(k) >= 5 && strings.EqualFold(k[:5], "nats-") && (!strings.HasPrefix(k, "Nats-") || strings.EqualFold(k, jetsource.HeaderMsgID)) {
				return e, false
			}
			continue
		}
		if !plain(v) {
			return e, false
		}
		*dst = v
	}
	if spec != "" && spec != jetsource.SpecVersion || !utf8.ValidString(at.Stream) {
		return e, false
	}
	if tm != "" {
		t, err := time.Parse(time.RFC3339Nano, tm)
		if err != nil || t.UTC().Year() < 0 || t.UTC().Year() > 9999 {
			return e, false
		}
		e.Time = t
	}
	subj, err := subjects.Parse(subject)
	if err != nil {
		return e, false
	}
	e.Subject, e.Data, e.Sequence, e.Stream, e.Stored = subj, data, at.Sequence, at.Stream, at.Time
	// Derive what a plain publish left out, as DecodeMsg does.
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
		e.Type = jetsource.TypeFromSubject(subj)
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
	return e, true
}

// plain reports a value of printable ASCII without a percent sign: one
// that percent-decoding leaves as it is.
func plain(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '%' {
			return false
		}
	}
	return true
}
