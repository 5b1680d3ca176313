package handlers

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource"
)

// Header names of a command message on the bus. They are the CloudEvents
// binary-mode names of the matching event attributes, and their values are
// percent-encoded as an event's are ([jetsource.PercentEncode]).
const (
	// HeaderCommandID carries the command id, the idempotency key.
	HeaderCommandID = jetsource.HeaderID
	// HeaderActor carries who issues the command.
	HeaderActor = jetsource.HeaderPrefix + jetsource.ExtActor
	// HeaderCorrelationID carries the id of the conversation.
	HeaderCorrelationID = jetsource.HeaderPrefix + jetsource.ExtCorrelationID
	// HeaderCausationID carries the id of the event or command that caused
	// this command.
	HeaderCausationID = jetsource.HeaderPrefix + jetsource.ExtCausationID
	// HeaderDeadline carries the instant (RFC 3339, UTC, nanoseconds)
	// after which the sender no longer waits for the command's result: a
	// [Server] does not start a command whose deadline has passed, and
	// does not record its events after it. The clocks of senders and
	// workers are assumed to agree (NTP).
	HeaderDeadline = "Jetsource-Deadline"
)

// ExtCommand is the CloudEvents extension that names, on each event a
// command records, the command that recorded it.
const ExtCommand = "command"

// Limits of command names and ids.
const (
	MaxNameLen = 64
	MaxIDLen   = 128
)

// Command is one request to change the system: a name, a JSON payload and
// the metadata that travels to the events it records.
type Command struct {
	// Name selects the handler, such as InsertUser.
	Name string `json:"name"`
	// ID identifies the command; it is the idempotency key: a command
	// sent again with the same id is not executed twice. Empty: a new
	// random id.
	ID string `json:"id,omitempty"`
	// Data is the JSON payload. Empty: JSON null.
	Data json.RawMessage `json:"data,omitempty"`
	// Actor is who issues the command; it becomes the actor of its events.
	Actor string `json:"actor,omitempty"`
	// CorrelationID ties together the commands and events of one
	// conversation. Empty: the command id.
	CorrelationID string `json:"correlationid,omitempty"`
	// CausationID is the id of the event or command that caused this
	// command, if any. (The events the command records carry the command
	// id as their causation id.)
	CausationID string `json:"causationid,omitempty"`
}

// ValidName reports whether name can name a command: 1 to [MaxNameLen]
// ASCII letters, digits, '_' and '-', so that it is one subject token.
//
// It returns an error matching [ErrInvalidCommand] otherwise.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: command name %q must be 1 to %d characters", ErrInvalidCommand, name, MaxNameLen)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: command name %q may hold only letters, digits, '_' and '-'", ErrInvalidCommand, name)
		}
	}
	return nil
}

// validID checks an id, an actor or a correlation or causation id: valid
// UTF-8 without control characters, at most max bytes.
func validAttr(what, v string, max int) error {
	switch {
	case len(v) > max:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidCommand, what, max)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidCommand, what)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: %s contains a control character", ErrInvalidCommand, what)
	}
	return nil
}

// Validate checks the command: its name ([ValidName]), its id (at most
// [MaxIDLen] bytes), its metadata (no control characters, valid UTF-8)
// and that Data, when present, is JSON.
//
// It returns an error matching [ErrInvalidCommand].
func (c Command) Validate() error {
	if err := ValidName(c.Name); err != nil {
		return err
	}
	if strings.TrimSpace(c.ID) == "" && c.ID != "" {
		return fmt.Errorf("%w: command id is blank", ErrInvalidCommand)
	}
	for _, a := range [...]struct {
		what, v string
	}{{"command id", c.ID}, {"actor", c.Actor}, {"correlation id", c.CorrelationID}, {"causation id", c.CausationID}} {
		limit := 256
		if a.what == "command id" {
			limit = MaxIDLen
		}
		if err := validAttr(a.what, a.v, limit); err != nil {
			return err
		}
	}
	if len(c.Data) > 0 && !json.Valid(c.Data) {
		return fmt.Errorf("%w: the payload of %s is not JSON", ErrInvalidCommand, c.Name)
	}
	return nil
}

// Header returns the command's metadata as NATS headers (only those set),
// percent-encoded.
func (c Command) Header() nats.Header {
	h := nats.Header{}
	put := func(k, v string) {
		if v != "" {
			h[k] = []string{jetsource.PercentEncode(v)}
		}
	}
	put(HeaderCommandID, c.ID)
	put(HeaderActor, c.Actor)
	put(HeaderCorrelationID, c.CorrelationID)
	put(HeaderCausationID, c.CausationID)
	if len(c.Data) > 0 {
		h[jetsource.HeaderContentType] = []string{"application/json"}
	}
	return h
}

// CommandFromMsg decodes a command message of the bus: the name is the
// part of the subject after prefix and a dot, the metadata comes from the
// headers ([HeaderCommandID], [HeaderActor], [HeaderCorrelationID],
// [HeaderCausationID]), the payload is the body. The command is validated.
//
// It returns an error matching [ErrInvalidCommand] for a subject outside
// the prefix, a header that is not percent-encoded correctly, or a command
// that fails [Command.Validate].
func CommandFromMsg(prefix, subject string, h nats.Header, data []byte) (Command, error) {
	name, ok := strings.CutPrefix(subject, prefix+".")
	if !ok || name == "" {
		return Command{}, fmt.Errorf("%w: subject %q is not under %s.", ErrInvalidCommand, subject, prefix)
	}
	c := Command{Name: name, Data: data}
	for _, f := range [...]struct {
		key string
		dst *string
	}{{HeaderCommandID, &c.ID}, {HeaderActor, &c.Actor}, {HeaderCorrelationID, &c.CorrelationID}, {HeaderCausationID, &c.CausationID}} {
		v := h.Get(f.key)
		if v == "" {
			continue
		}
		d, err := jetsource.PercentDecode(v)
		if err != nil {
			return Command{}, fmt.Errorf("%w: header %s: %w", ErrInvalidCommand, f.key, err)
		}
		*f.dst = d
	}
	if err := c.Validate(); err != nil {
		return Command{}, err
	}
	return c, nil
}

// eventID is the id of the i-th event a command records: derived from the
// command, so that a retried command's events carry the same ids and the
// stream's de-duplication recognises them.
func eventID(c Command, i int) string {
	return fmt.Sprintf("%s:%s:%d", c.Name, c.ID, i)
}
