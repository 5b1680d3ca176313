package subscriber

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource/subjects"
)

// Headers a dead letter carries besides the event's own (its ce-*
// attributes and Content-Type). The event's Nats-* headers are dropped:
// they hold the original publish's expectations and batch markers, and
// the original Nats-Msg-Id travels as HeaderMsgID.
const (
	// HeaderError is the handler's error (or the decoding error), control
	// characters replaced by spaces, at most 1024 bytes.
	HeaderError = "Jetsource-Error"
	// HeaderDeliveries is how many times the event was delivered.
	HeaderDeliveries = "Jetsource-Deliveries"
	// HeaderStream is the stream the event is stored in.
	HeaderStream = "Jetsource-Stream"
	// HeaderSequence is the event's sequence in that stream.
	HeaderSequence = "Jetsource-Sequence"
	// HeaderSubject is the event's subject.
	HeaderSubject = "Jetsource-Subject"
	// HeaderConsumer is the durable that gave up on the event.
	HeaderConsumer = "Jetsource-Consumer"
	// HeaderTime is when the event was dead-lettered (RFC 3339, UTC).
	HeaderTime = "Jetsource-Dead-Lettered"
	// HeaderMsgID is the event's original Nats-Msg-Id, if it had one.
	HeaderMsgID = "Jetsource-Msg-Id"
	// HeaderMalformed is set on the dead letter of a message that is no
	// valid event (see [jetsource.Event.Malformed]): why it could not be
	// decoded. Its headers and body are kept as stored.
	HeaderMalformed = "Jetsource-Malformed"
	// HeaderStack is the stack of a handler that panicked ([ErrPanic]),
	// one frame after another separated by " | ", at most 8 KiB.
	HeaderStack = "Jetsource-Stack"
)

const (
	maxErrorHeader = 1024
	maxStackHeader = 8 << 10
)

// deadLetter stores a copy of the delivery on the dead-letter subject and
// waits for the stream's acknowledgement. Its message id is
// <durable>.<stream>.<sequence>, so a dead letter stored twice (a crash
// between the store and the Term) is kept once within the dead-letter
// stream's duplicate window.
func (s *Subscriber) deadLetter(ctx context.Context, d *delivery, cause error) error {
	meta := d.meta
	src := d.msg.Headers()
	h := make(nats.Header, len(src)+8)
	for k, v := range src {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		h[k] = v
	}
	if id := src.Get("Nats-Msg-Id"); id != "" {
		h.Set(HeaderMsgID, id)
	}
	h.Set(HeaderError, headerSafe(cause.Error(), maxErrorHeader))
	h.Set(HeaderDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
	h.Set(HeaderStream, meta.Stream)
	h.Set(HeaderSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
	h.Set(HeaderSubject, d.msg.Subject())
	h.Set(HeaderConsumer, s.durable)
	h.Set(HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
	if d.malformed != "" {
		h.Set(HeaderMalformed, headerSafe(d.malformed, maxErrorHeader))
	}
	if pe := (*PanicError)(nil); errors.As(cause, &pe) {
		h.Set(HeaderStack, headerSafe(stackLine(pe.Stack), maxStackHeader))
	}
	msg := &nats.Msg{Subject: s.DeadLetterSubject(d.msg.Subject()), Header: h, Data: d.msg.Data()}
	id := s.durable + "." + meta.Stream + "." + strconv.FormatUint(meta.Sequence.Stream, 10)
	if _, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("subscriber: dead letter %s: %w", msg.Subject, mapErr(err))
	}
	return nil
}

// headerSafe makes s a valid header value: control characters become
// spaces, and it is cut to at most n bytes at a rune boundary.
func headerSafe(s string, n int) string {
	b := []rune(s)
	for i, r := range b {
		if r < ' ' || r == 0x7f {
			b[i] = ' '
		}
	}
	out := string(b)
	if len(out) > n {
		cut := n
		for cut > 0 && !utf8RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut]
	}
	return strings.TrimSpace(out)
}

// stackLine puts a stack on one line: the frames separated by " | ".
func stackLine(stack []byte) string {
	lines := strings.Split(strings.TrimSpace(string(stack)), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, " | ")
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// provisionDeadLetter makes sure the dead-letter stream exists and
// captures <prefix>.>.
func (s *Subscriber) provisionDeadLetter(ctx context.Context, replicas int) error {
	want := s.o.deadLetter + ".>"
	wantF, err := subjects.ParseFilter(want)
	if err != nil {
		return invalid("dead-letter prefix: %w", err)
	}
	for attempt := 0; ; attempt++ {
		st, err := s.js.Stream(ctx, s.o.dlqStream)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			cfg := jetstream.StreamConfig{
				Name:        s.o.dlqStream,
				Description: "jetsource dead letters",
				Subjects:    []string{want},
				Storage:     jetstream.FileStorage,
				Retention:   jetstream.LimitsPolicy,
				Replicas:    max(replicas, 1),
				Duplicates:  2 * time.Minute,
				AllowDirect: true,
			}
			_, err = s.js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt < 3 {
				continue // created meanwhile by another instance
			}
			if err != nil {
				return fmt.Errorf("subscriber: create dead-letter stream %s: %w", s.o.dlqStream, mapErr(err))
			}
			return nil
		case err != nil:
			return fmt.Errorf("subscriber: dead-letter stream %s: %w", s.o.dlqStream, mapErr(err))
		}
		cfg := st.CachedInfo().Config
		for _, ss := range cfg.Subjects {
			if f, err := subjects.ParseFilter(ss); err == nil && f.Covers(wantF) {
				return nil
			}
		}
		cfg.Subjects = append(cfg.Subjects, want)
		if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("subscriber: add %s to dead-letter stream %s: %w", want, s.o.dlqStream, mapErr(err))
		}
		return nil
	}
}
