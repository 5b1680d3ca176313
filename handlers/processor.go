package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Store is what the command pipeline needs of an event store: reads for
// decisions and conditional appends. A [jetsource.Store] is one.
type Store interface {
	Reader
	Append(ctx context.Context, e jetsource.Event, opts ...jetsource.AppendOption) (jetsource.Ack, error)
	AppendBatch(ctx context.Context, events []jetsource.Event, opts ...jetsource.AppendOption) ([]jetsource.Ack, error)
}

// Sender sends commands and returns their results. A [*Processor] executes
// them in-process, a [*Client] over the bus; follow-on commands are issued
// through this interface.
type Sender interface {
	Send(ctx context.Context, name string, payload any, opts ...SendOption) (Result, error)
}

var (
	_ Sender = (*Processor)(nil)
	_ Sender = (*Client)(nil)
)

// Processor executes commands: for each, it decodes and checks the
// payload, lets the command's handler decide on the events its query
// selects, and records the decided events on the condition that nothing
// matching the query was stored after the read. When that condition fails
// it decides again, after a short random wait, up to a limit. It is safe
// for concurrent use.
type Processor struct {
	store       Store
	reader      Reader
	registry    *Registry
	schemas     *jetsource.Schemas
	middleware  []Middleware
	maxAttempts int
	backoffMin  time.Duration
	backoffMax  time.Duration
	logger      *slog.Logger
	serialize   bool
	serial      serial
}

// NewProcessor returns a processor of the commands in the registry on the
// store.
//
// Options: [WithMaxAttempts], [WithBackoff], [WithSchemas], [WithReader],
// [WithMiddleware], [WithSerialBoundaries], [WithLogger]. It returns an error matching
// [ErrInvalidOption] for a nil store or registry or a bad option.
func NewProcessor(store Store, registry *Registry, opts ...Option) (*Processor, error) {
	if store == nil || registry == nil {
		return nil, fmt.Errorf("%w: NewProcessor needs a store and a registry", ErrInvalidOption)
	}
	p := &Processor{store: store, reader: store, registry: registry, maxAttempts: 10, backoffMin: time.Millisecond, backoffMax: 100 * time.Millisecond, serialize: true}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(p); err != nil {
			return nil, err
		}
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Registry returns the processor's registry.
func (p *Processor) Registry() *Registry { return p.registry }

// Send builds a command from a name, a payload (JSON-encoded unless it is
// already a json.RawMessage or []byte of JSON; nil: no payload) and the
// options, and executes it.
//
// It returns an error matching [ErrInvalidCommand] when the command cannot
// be built, and [ErrUnknownCommand] (with a result of [StatusError]) when
// no handler is registered for the name. Every other outcome, rejections
// and conflicts included, is in the result.
func (p *Processor) Send(ctx context.Context, name string, payload any, opts ...SendOption) (Result, error) {
	cmd, err := buildCommand(name, payload, opts)
	if err != nil {
		return Result{}, err
	}
	if _, ok := p.registry.Handler(name); !ok {
		r := p.Execute(ctx, cmd)
		return r, fmt.Errorf("%w: %s", ErrUnknownCommand, name)
	}
	return p.Execute(ctx, cmd), nil
}

// buildCommand builds a command with a payload and send options.
func buildCommand(name string, payload any, opts []SendOption) (Command, error) {
	cmd := Command{Name: name}
	if err := ValidName(name); err != nil {
		return cmd, err
	}
	data, err := encodePayload(payload)
	if err != nil {
		return cmd, err
	}
	cmd.Data = data
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cmd); err != nil {
			return cmd, err
		}
	}
	if cmd.ID == "" {
		cmd.ID = jetsource.NewID()
	}
	return cmd, cmd.Validate()
}

func encodePayload(payload any) (json.RawMessage, error) {
	var data []byte
	switch v := payload.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		data = v
	case []byte:
		data = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: encode payload: %w", ErrInvalidCommand, err)
		}
		return b, nil
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: the payload is not JSON", ErrInvalidCommand)
	}
	return data, nil
}

// Execute executes one command and returns its result; it never panics on
// a handler's panic either (the command then fails with [StatusError]).
//
//   - A command that fails [Command.Validate] is rejected; a name with no
//     handler fails ([StatusError], "unknown command").
//   - A payload that breaks the command's schema ([WithSchemas]) is
//     rejected with the violation as the reason. Nothing is read.
//   - Commands of a [Bounded] handler with the same boundary run one at a
//     time in this processor ([WithSerialBoundaries]).
//   - The handler decides. If the events it read include events recorded
//     by this very command (same command id and name: a retry of a command
//     that was executed), the result is the original one with Duplicate
//     set and nothing is written.
//   - A rejection from the handler ([Reject]) is [StatusRejected], any other
//     error [StatusError].
//   - The events get the command's metadata and are appended with the
//     condition that nothing matching the decision's filters was stored
//     after its read position: one event with [jetsource.Store.Append],
//     several as one transaction with [jetsource.Store.AppendBatch]. Their
//     ids derive from the command's name and id, so that the stream's
//     de-duplication catches a retried command whose events lie outside
//     its own query.
//   - On a conflict the command is decided again after a random wait,
//     up to the maximum attempts ([WithMaxAttempts]); then the result is
//     [StatusConflict].
//   - When ctx has ended (a command's deadline passed) before the command
//     starts or before its events are appended, nothing is appended and
//     the result is an error carrying ctx's cause.
func (p *Processor) Execute(ctx context.Context, cmd Command) (res Result) {
	if cmd.ID == "" {
		cmd.ID = jetsource.NewID()
	}
	if err := cmd.Validate(); err != nil {
		if errors.Is(err, ErrInvalidCommand) && ValidName(cmd.Name) != nil {
			return failed(cmd, fmt.Errorf("%w: %s", ErrUnknownCommand, cmd.Name))
		}
		return rejected(cmd, err)
	}
	if cmd.CorrelationID == "" {
		cmd.CorrelationID = cmd.ID
	}
	h, ok := p.registry.Handler(cmd.Name)
	if !ok {
		return failed(cmd, fmt.Errorf("%w: %s", ErrUnknownCommand, cmd.Name))
	}
	if p.schemas != nil {
		if err := p.schemas.Validate(jetsource.Event{Type: cmd.Name, Data: cmd.Data}); err != nil {
			return rejected(cmd, fmt.Errorf("payload: %w", err))
		}
	}
	if ctx.Err() != nil {
		// The sender's deadline passed (or the worker is stopping):
		// starting now could record events nobody waits for.
		return failed(cmd, fmt.Errorf("%w: %s not started: %w", ErrCommandFailed, cmd.Name, context.Cause(ctx)))
	}
	defer func() {
		if v := recover(); v != nil {
			p.logger.Error("command handler panicked", "command", cmd.Name, "id", cmd.ID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			res = failed(cmd, fmt.Errorf("%w: the handler of %s panicked: %v", ErrCommandFailed, cmd.Name, v))
		}
	}()
	if b, ok := h.(Bounded); ok && p.serialize {
		filters, err := b.Query(cmd)
		var re *RejectedError
		switch {
		case errors.As(err, &re):
			return rejected(cmd, err)
		case err != nil:
			return failed(cmd, err)
		case len(filters) > 0:
			unlock, err := p.serial.lock(ctx, boundaryKey(filters))
			if err != nil {
				return failed(cmd, err)
			}
			defer unlock()
		}
	}
	for _, mw := range slices.Backward(p.middleware) {
		h = mw(h)
	}
	for attempt := 1; ; attempt++ {
		res, ce := p.attempt(ctx, h, cmd)
		res.Attempts = attempt
		if ce == nil {
			return res
		}
		if attempt >= p.maxAttempts {
			p.logger.Debug("command conflict, attempts exhausted", "command", cmd.Name, "id", cmd.ID, "attempts", attempt, "conflict", ce)
			return res
		}
		p.logger.Debug("command conflict, deciding again", "command", cmd.Name, "id", cmd.ID, "attempt", attempt, "conflict", ce)
		if err := p.wait(ctx, attempt); err != nil {
			r := failed(cmd, err)
			r.Attempts = attempt
			return r
		}
	}
}

// wait sleeps before attempt+1: a random duration up to the attempt's
// limit, which doubles from backoffMin up to backoffMax.
func (p *Processor) wait(ctx context.Context, attempt int) error {
	if p.backoffMax <= 0 {
		return ctx.Err()
	}
	limit := p.backoffMin << min(attempt-1, 30)
	if limit > p.backoffMax || limit <= 0 {
		limit = p.backoffMax
	}
	d := p.backoffMin
	if limit > p.backoffMin {
		d += rand.N(limit - p.backoffMin)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// attempt decides and appends once. A conflict returns the conflict result
// and the conflict.
func (p *Processor) attempt(ctx context.Context, h Handler, cmd Command) (Result, *jetsource.ConflictError) {
	t := &tap{r: p.reader, cmd: cmd}
	d, err := h.Handle(ctx, t, cmd)
	if seen := t.recorded(); len(seen) > 0 {
		return Result{Status: StatusAccepted, Command: cmd.Name, ID: cmd.ID, Sequences: p.original(ctx, cmd, seen), Duplicate: true}, nil
	}
	var re *RejectedError
	switch {
	case errors.As(err, &re):
		return rejected(cmd, err), nil
	case err != nil:
		return failed(cmd, err), nil
	case len(d.Events) == 0:
		return Result{Status: StatusAccepted, Command: cmd.Name, ID: cmd.ID}, nil
	case len(d.Events) > jetsource.MaxBatch:
		return failed(cmd, fmt.Errorf("%w: %s decided %d events, at most %d fit one transaction", jetsource.ErrBatchTooLarge, cmd.Name, len(d.Events), jetsource.MaxBatch)), nil
	}
	if ctx.Err() != nil {
		// Decided too late: the sender's deadline passed meanwhile.
		return failed(cmd, fmt.Errorf("%w: %s: events not recorded: %w", ErrCommandFailed, cmd.Name, context.Cause(ctx))), nil
	}
	events := make([]jetsource.Event, len(d.Events))
	for i, e := range d.Events {
		events[i] = stamp(e, cmd, i)
	}
	// The events' ids derive from the command id: a redelivered command
	// that decides other data meets the events stored the first time.
	opts := []jetsource.AppendOption{jetsource.StoredWins()}
	filters := boundary(d.Filters, len(events))
	if len(filters) > 0 {
		opts = append(opts, jetsource.ExpectNoneAfter(d.Position, filters...))
	}
	var seqs []uint64
	dup := true
	if len(events) == 1 {
		ack, err := p.store.Append(ctx, events[0], opts...)
		if err != nil {
			return p.appendFailed(cmd, d, err)
		}
		seqs, dup = []uint64{ack.Sequence}, ack.Duplicate
	} else {
		opts = append(opts, jetsource.WithTransactionID(cmd.Name+":"+cmd.ID))
		acks, err := p.store.AppendBatch(ctx, events, opts...)
		if err != nil {
			return p.appendFailed(cmd, d, err)
		}
		seqs = make([]uint64, len(acks))
		for i, a := range acks {
			seqs[i] = a.Sequence
			dup = dup && a.Duplicate
		}
	}
	return Result{Status: StatusAccepted, Command: cmd.Name, ID: cmd.ID, Sequences: seqs, Duplicate: dup}, nil
}

func (p *Processor) appendFailed(cmd Command, d Decision, err error) (Result, *jetsource.ConflictError) {
	var ce *jetsource.ConflictError
	if errors.As(err, &ce) {
		r := Result{Status: StatusConflict, Command: cmd.Name, ID: cmd.ID, Error: ce.Error(),
			Conflict: &Conflict{Filter: ce.Filter, Position: d.Position, Current: ce.Current}}
		return r, ce
	}
	return failed(cmd, fmt.Errorf("%s: events not recorded: %w", cmd.Name, err)), nil
}

// stamp gives the i-th event of a command the command's metadata.
func stamp(e jetsource.Event, cmd Command, i int) jetsource.Event {
	if e.ID == "" {
		e.ID = eventID(cmd, i)
	}
	if e.Actor == "" {
		e.Actor = cmd.Actor
	}
	if e.CorrelationID == "" {
		e.CorrelationID = cmd.CorrelationID
	}
	e.CausationID = cmd.ID
	e.Extensions = maps.Clone(e.Extensions)
	if e.Extensions == nil {
		e.Extensions = map[string]string{}
	}
	e.Extensions[ExtCommand] = cmd.Name
	return e
}

// boundary returns the canonical filters of a decision, at most one more
// than there are events (the most conditions one transaction carries):
// filters beyond that are replaced by one filter that covers them, which
// makes the condition stricter, never weaker.
func boundary(filters []subjects.Filter, events int) []subjects.Filter {
	fs := subjects.Canonical(filters...)
	limit := events + 1
	for len(fs) > limit {
		keep := fs[:limit-1]
		fs = subjects.Canonical(append(slices.Clone(keep), cover(fs[limit-1:]))...)
		if len(fs) > limit { // the cover joined only the tail: cover all
			fs = []subjects.Filter{cover(fs)}
		}
	}
	return fs
}

// cover returns a filter matching every subject the filters match: their
// common leading tokens followed by >.
func cover(fs []subjects.Filter) subjects.Filter {
	toks := make([][]string, len(fs))
	shortest := -1
	for i, f := range fs {
		toks[i] = f.Tokens()
		if shortest < 0 || len(toks[i]) < shortest {
			shortest = len(toks[i])
		}
	}
	var prefix []string
	for i := 0; i < shortest-1; i++ {
		t := toks[0][i]
		same := t != ">"
		for _, ts := range toks[1:] {
			same = same && ts[i] == t
		}
		if !same {
			break
		}
		prefix = append(prefix, t)
	}
	f, err := subjects.ParseFilter(strings.Join(append(prefix, ">"), "."))
	if err != nil {
		return subjects.All()
	}
	return f
}

// tap is the reader a handler gets: it notes the events recorded by the
// command being executed, which make the execution a duplicate.
type tap struct {
	r   Reader
	cmd Command

	mu   sync.Mutex
	seqs map[uint64]string
}

func (t *tap) Read(ctx context.Context, q jetsource.Query) iter.Seq2[jetsource.Event, error] {
	return func(yield func(jetsource.Event, error) bool) {
		for e, err := range t.r.Read(ctx, q) {
			if err == nil && e.CausationID == t.cmd.ID && e.Extensions[ExtCommand] == t.cmd.Name {
				t.mu.Lock()
				if t.seqs == nil {
					t.seqs = map[uint64]string{}
				}
				t.seqs[e.Sequence] = e.ID
				t.mu.Unlock()
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

// recorded returns the events of the command that were read: their ids
// by sequence.
func (t *tap) recorded() map[uint64]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.seqs)
}

// original returns the sequences of all events a command recorded before,
// given some of them. A read across several filters may end between the
// events of one transaction, so the events are found from the first one
// on: they are contiguous and their ids count up from the command's first
// event id. Events with ids of the decider's own are returned as seen.
func (p *Processor) original(ctx context.Context, cmd Command, seen map[uint64]string) []uint64 {
	seqs := slices.Sorted(maps.Keys(seen))
	var first uint64
	prefix := eventID(cmd, 0)
	prefix = prefix[:len(prefix)-1]
	for _, seq := range seqs {
		rest, ok := strings.CutPrefix(seen[seq], prefix)
		i, err := strconv.Atoi(rest)
		if ok && err == nil && i >= 0 && uint64(i) < seq && eventID(cmd, i) == seen[seq] {
			first = seq - uint64(i)
			break
		}
	}
	if first == 0 {
		return seqs
	}
	var all []uint64
	for e, err := range p.reader.Read(ctx, jetsource.Query{FromSequence: first, Limit: jetsource.MaxBatch}) {
		if err != nil || e.Sequence != first+uint64(len(all)) || e.ID != eventID(cmd, len(all)) {
			break
		}
		all = append(all, e.Sequence)
	}
	if len(all) < len(seqs) {
		return seqs
	}
	return all
}
