package jetsource

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource/subjects"
)

// SpecVersion is the CloudEvents specification version of every event.
const SpecVersion = "1.0"

// Names of the CloudEvents extension attributes that jetsource defines.
const (
	ExtActor          = "actor"
	ExtClientIP       = "clientip"
	ExtCorrelationID  = "correlationid"
	ExtCausationID    = "causationid"
	ExtSchemaRevision = "schemarevision"
	ExtTransactionID  = "transactionid"
	// ExtSequence carries the stream sequence in structured-mode output.
	// It is never stored as a header: the stream assigns it.
	ExtSequence = "sequence"
)

// DefaultSource is the source of events that name none.
const DefaultSource = "/jetsource"

// Event is one fact, stored on a NATS subject. Its fields are the
// CloudEvents context attributes plus the extensions that jetsource defines;
// Sequence, Stream and Stored are set by the store.
type Event struct {
	// ID identifies the event; it is also the message id the stream uses
	// for de-duplication. Empty: the store generates one on append.
	ID string
	// Source identifies the context in which the event happened.
	// Empty: the store's default source.
	Source string
	// Type names the kind of event. Empty: derived from the subject with
	// [TypeFromSubject].
	Type string
	// Subject is the NATS subject the event is stored on; it is also the
	// CloudEvents subject attribute.
	Subject subjects.Subject
	// Time is when the event happened. Zero: the time of the append.
	Time time.Time
	// DataContentType is the media type of Data. Empty with data present:
	// application/json.
	DataContentType string
	// DataSchema optionally points to the schema Data adheres to.
	DataSchema string
	// Data is the event payload.
	Data []byte

	// Actor is who caused the event (a user or service name).
	Actor string
	// ClientIP is the address of the client that caused the event.
	ClientIP string
	// CorrelationID ties together all events of one conversation.
	CorrelationID string
	// CausationID is the id of the event or command that caused this one.
	CausationID string
	// SchemaRevision is the revision of the data's schema (0: unset).
	SchemaRevision int
	// TransactionID groups events appended in one transaction.
	TransactionID string
	// Extensions holds any other CloudEvents extension attributes.
	Extensions map[string]string

	// Sequence is the stream sequence, set once the event is stored.
	Sequence uint64
	// Stream is the name of the stream that stored the event.
	Stream string
	// Stored is when the stream stored the event.
	Stored time.Time

	// Malformed is set by readers on a stored message that could not be
	// decoded into an event (see [DecodeStored]). Such an event carries
	// Sequence, Stream, Stored, an ID derived from them and the raw Data;
	// its Subject is set only when the raw subject is a valid subject.
	// Readers deliver it instead of stopping; folds and projections skip
	// it, durable workers dead-letter it.
	Malformed *Malformed
}

// Malformed is the raw material of a stored message that is no valid
// event, and why.
type Malformed struct {
	// Subject is the message's subject as stored.
	Subject string
	// Header holds the message's headers as stored.
	Header nats.Header
	// Reason tells why the message is no valid event.
	Reason string
}

// MalformedError returns nil for a valid event and, for a malformed one,
// an error matching [ErrMalformed] that names its subject, sequence and
// reason.
func (e Event) MalformedError() error {
	if e.Malformed == nil {
		return nil
	}
	return fmt.Errorf("%w: message %q at sequence %d of %s: %s", ErrMalformed, e.Malformed.Subject, e.Sequence, e.Stream, e.Malformed.Reason)
}

// Aggregate returns the aggregate the event belongs to: its subject without
// the last token.
func (e Event) Aggregate() subjects.Subject { return e.Subject.Aggregate() }

// Name returns the event name: the last token of the subject.
func (e Event) Name() string { return e.Subject.Event() }

// TypeFromSubject derives an event type from a subject: its first token and
// its last token joined by a dot, so users.A.added has type users.added.
// A one-token subject is its own type.
func TypeFromSubject(s subjects.Subject) string {
	n := s.NumTokens()
	if n < 2 {
		return s.String()
	}
	return s.Token(0) + "." + s.Token(n-1)
}

// NewID returns a random event id (128 bits, hex encoded).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Prepare fills in the defaults of an event about to be appended (id,
// source, type, time, content type) and validates it. It returns the
// prepared event; the argument is not modified.
//
// It returns an error matching [ErrInvalidSubject] when the subject is
// missing or has fewer than two tokens, [ErrInvalidEvent] for a bad
// attribute or extension, and [ErrInvalidData] for data that does not
// match a JSON content type.
func Prepare(e Event, defaultSource string, now time.Time) (Event, error) {
	if e.Subject.IsZero() {
		return e, fmt.Errorf("%w: event has no subject", ErrInvalidSubject)
	}
	if e.Subject.NumTokens() < 2 {
		return e, fmt.Errorf("%w: %q: an event subject needs an aggregate and an event name (at least two tokens)", ErrInvalidSubject, e.Subject.String())
	}
	if e.ID == "" {
		e.ID = NewID()
	}
	if e.Source == "" {
		e.Source = defaultSource
		if e.Source == "" {
			e.Source = DefaultSource
		}
	}
	if e.Type == "" {
		e.Type = TypeFromSubject(e.Subject)
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	if e.DataContentType == "" && len(e.Data) > 0 {
		e.DataContentType = "application/json"
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	return e, nil
}

// Validate checks the attributes and data of an event: required attributes
// present, extension names valid, attribute values free of control
// characters, and JSON data valid under a JSON content type.
func (e Event) Validate() error {
	switch {
	case e.Subject.IsZero():
		return fmt.Errorf("%w: event has no subject", ErrInvalidSubject)
	case strings.TrimSpace(e.ID) == "":
		return fmt.Errorf("%w: id is empty", ErrInvalidEvent)
	case strings.TrimSpace(e.Source) == "":
		return fmt.Errorf("%w: source is empty", ErrInvalidEvent)
	case strings.TrimSpace(e.Type) == "":
		return fmt.Errorf("%w: type is empty", ErrInvalidEvent)
	case e.SchemaRevision < 0 || e.SchemaRevision > math.MaxInt32:
		return fmt.Errorf("%w: schema revision %d is outside 0 to %d", ErrInvalidEvent, e.SchemaRevision, math.MaxInt32)
	case !e.Time.IsZero() && (e.Time.UTC().Year() < 0 || e.Time.UTC().Year() > 9999):
		return fmt.Errorf("%w: time %v is outside the years 0 to 9999", ErrInvalidEvent, e.Time)
	}
	if u, err := url.Parse(e.Source); err != nil || u.String() != e.Source {
		return fmt.Errorf("%w: source %q is not a URI reference (escape spaces and non-ASCII characters)", ErrInvalidEvent, e.Source)
	}
	if e.DataSchema != "" {
		if u, err := url.Parse(e.DataSchema); err != nil || !u.IsAbs() {
			return fmt.Errorf("%w: data schema %q is not an absolute URI", ErrInvalidEvent, e.DataSchema)
		}
	}
	if len(e.ID) > 256 {
		return fmt.Errorf("%w: id is longer than 256 bytes", ErrInvalidEvent)
	}
	for _, a := range [...]struct{ name, v string }{
		{"id", e.ID}, {"source", e.Source}, {"type", e.Type}, {"dataschema", e.DataSchema},
		{"datacontenttype", e.DataContentType}, {ExtActor, e.Actor}, {ExtClientIP, e.ClientIP},
		{ExtCorrelationID, e.CorrelationID}, {ExtCausationID, e.CausationID}, {ExtTransactionID, e.TransactionID},
	} {
		if strings.ContainsFunc(a.v, isControl) {
			return fmt.Errorf("%w: attribute %s contains a control character", ErrInvalidEvent, a.name)
		}
		if trimmedByReaders[a.name] && strings.TrimSpace(a.v) != a.v {
			// CloudEvents readers trim these: stored as given, they would
			// read back different.
			return fmt.Errorf("%w: attribute %s %q has leading or trailing spaces", ErrInvalidEvent, a.name, a.v)
		}
		if !utf8.ValidString(a.v) {
			return fmt.Errorf("%w: attribute %s is not valid UTF-8", ErrInvalidEvent, a.name)
		}
	}
	for name, v := range e.Extensions {
		if err := validExtensionName(name); err != nil {
			return err
		}
		if _, reserved := reservedAttributes[name]; reserved {
			return fmt.Errorf("%w: extension %q is a reserved attribute name", ErrInvalidEvent, name)
		}
		if strings.ContainsFunc(v, isControl) {
			return fmt.Errorf("%w: extension %s contains a control character", ErrInvalidEvent, name)
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: extension %s is not valid UTF-8", ErrInvalidEvent, name)
		}
	}
	if e.DataContentType != "" {
		mt := "application/json" // the common case needs no parsing
		if e.DataContentType != mt {
			var err error
			if mt, _, err = mime.ParseMediaType(e.DataContentType); err != nil {
				return fmt.Errorf("%w: content type %q: %v", ErrInvalidEvent, e.DataContentType, err)
			}
		}
		if isJSONMediaType(mt) && len(e.Data) > 0 && !json.Valid(e.Data) {
			return fmt.Errorf("%w: data is not valid JSON under content type %s", ErrInvalidData, e.DataContentType)
		}
	}
	return nil
}

// trimmedByReaders are the attributes CloudEvents SDKs trim when they set
// them.
var trimmedByReaders = map[string]bool{"id": true, "type": true, "datacontenttype": true, "dataschema": true}

var reservedAttributes = map[string]struct{}{
	"id": {}, "source": {}, "specversion": {}, "type": {}, "subject": {}, "time": {},
	"datacontenttype": {}, "dataschema": {}, "data": {}, "data_base64": {},
	ExtActor: {}, ExtClientIP: {}, ExtCorrelationID: {}, ExtCausationID: {},
	ExtSchemaRevision: {}, ExtTransactionID: {}, ExtSequence: {},
}

func validExtensionName(name string) error {
	if name == "" || len(name) > 20 {
		return fmt.Errorf("%w: extension name %q must be 1 to 20 characters", ErrInvalidEvent, name)
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("%w: extension name %q may hold only lower-case letters and digits", ErrInvalidEvent, name)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func isJSONMediaType(mt string) bool {
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// ToCloudEvent converts the event to a CloudEvents SDK event. A stored
// event carries its stream sequence as the extension "sequence".
func (e Event) ToCloudEvent() (cloudevents.Event, error) {
	ce := cloudevents.New(SpecVersion)
	ce.SetID(e.ID)
	ce.SetSource(e.Source)
	ce.SetType(e.Type)
	ce.SetSubject(e.Subject.String())
	if !e.Time.IsZero() {
		ce.SetTime(e.Time)
	}
	if e.DataSchema != "" {
		ce.SetDataSchema(e.DataSchema)
	}
	if e.DataContentType != "" {
		ce.SetDataContentType(e.DataContentType)
	}
	if len(e.Data) > 0 {
		mt, _, _ := mime.ParseMediaType(e.DataContentType)
		if isJSONMediaType(mt) || strings.HasPrefix(mt, "text/") {
			ce.DataEncoded = bytes.Clone(e.Data)
		} else {
			ce.DataEncoded = bytes.Clone(e.Data)
			ce.DataBase64 = true
		}
	}
	set := func(name, v string) {
		if v != "" {
			ce.SetExtension(name, v)
		}
	}
	set(ExtActor, e.Actor)
	set(ExtClientIP, e.ClientIP)
	set(ExtCorrelationID, e.CorrelationID)
	set(ExtCausationID, e.CausationID)
	set(ExtTransactionID, e.TransactionID)
	if e.SchemaRevision > 0 {
		ce.SetExtension(ExtSchemaRevision, int32(e.SchemaRevision))
	}
	for k, v := range e.Extensions {
		ce.SetExtension(k, v)
	}
	if e.Sequence > 0 {
		ce.SetExtension(ExtSequence, strconv.FormatUint(e.Sequence, 10))
	}
	if err := ce.Validate(); err != nil {
		return ce, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return ce, nil
}

// FromCloudEvent converts a CloudEvents SDK event into an event. The
// CloudEvents subject must be a valid NATS subject; it is where the event
// is stored. The "sequence" extension, if present, sets Sequence.
func FromCloudEvent(ce cloudevents.Event) (Event, error) {
	if err := ce.Validate(); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	subj, err := subjects.Parse(ce.Subject())
	if err != nil {
		return Event{}, err
	}
	e := Event{
		ID: ce.ID(), Source: ce.Source(), Type: ce.Type(), Subject: subj, Time: ce.Time(),
		DataContentType: ce.DataContentType(), DataSchema: ce.DataSchema(), Data: bytes.Clone(ce.Data()),
	}
	for name, v := range ce.Extensions() {
		s := fmt.Sprint(v)
		switch name {
		case ExtActor:
			e.Actor = s
		case ExtClientIP:
			e.ClientIP = s
		case ExtCorrelationID:
			e.CorrelationID = s
		case ExtCausationID:
			e.CausationID = s
		case ExtTransactionID:
			e.TransactionID = s
		case ExtSchemaRevision:
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return Event{}, fmt.Errorf("%w: schema revision %q is not a non-negative integer", ErrInvalidEvent, s)
			}
			e.SchemaRevision = n
		case ExtSequence:
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return Event{}, fmt.Errorf("%w: sequence %q is not a number", ErrInvalidEvent, s)
			}
			e.Sequence = n
		default:
			if e.Extensions == nil {
				e.Extensions = map[string]string{}
			}
			e.Extensions[name] = s
		}
	}
	return e, nil
}

// Clone returns a deep copy of the event.
func (e Event) Clone() Event {
	e.Data = bytes.Clone(e.Data)
	e.Extensions = maps.Clone(e.Extensions)
	return e
}
