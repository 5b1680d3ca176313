package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/subjects"
	"github.com/jetsource/jetsource/subscriber"
)

// RuleError is one problem of a rule file. It matches [ErrInvalidRules]
// and its own Err (such as [ErrUnknownCommand] or [ErrInvalidExpression]).
type RuleError struct {
	// File is the file's name as given.
	File string
	// Line and Column locate the problem (0 when unknown).
	Line, Column int
	// Field is the path of the offending field, such as
	// handlers[0].do.payload.user (empty for the whole file).
	Field string
	// Err says what is wrong.
	Err error
}

// Error returns "file:line:column: field: problem".
func (e *RuleError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns [ErrInvalidRules] and Err.
func (e *RuleError) Unwrap() []error { return []error{ErrInvalidRules, e.Err} }

// Start tells where a rule's durable worker begins when it is created.
type Start string

const (
	// StartNew: the worker reacts to the events stored after it was
	// first started (the default).
	StartNew Start = "new"
	// StartAll: the worker also reacts to every matching event already
	// in the stream.
	StartAll Start = "all"
)

// Rule is one handler of a rule file, compiled: the events it reacts to
// and what it does, either sending a command built from a payload
// template or calling a [Reaction] registered in Go. [ParseRules] and
// [LoadRules] build rules; the fields describe the rule as loaded and are
// read by [NewReactor].
type Rule struct {
	// Name names the rule; its durable worker is handler-<Name>.
	Name string
	// On are the subject filters of the events the rule reacts to.
	On []subjects.Filter
	// Entities, when set, restrict the rule to the aggregates (the
	// event's subject without its last token) matching one of them.
	Entities []subjects.Filter
	// Command is the command sent (do rules).
	Command string
	// Go is the name of the [Reaction] called (go rules).
	Go string
	// Webhook is where the events are POSTed (webhook rules).
	Webhook *Webhook
	// Flag is the feature flag that gates the rule (empty: none).
	Flag string
	// WhenOff is what the worker does while Flag is off.
	WhenOff flags.Mode
	// MaxDeliver is how many times an event is handled before it is
	// dead-lettered (0: the subscriber's default).
	MaxDeliver int
	// Backoff is the retry schedule (empty: the subscriber's default).
	Backoff []time.Duration
	// Concurrency is the number of events handled at once (0: the
	// subscriber's default).
	Concurrency int
	// Start is where a new durable worker begins.
	Start Start
	// File and Line locate the rule in its file.
	File string
	Line int

	when         *vm.Program
	whenSrc      string
	entitiesWhen *vm.Program
	entitiesSrc  string
	payload      *Template
	reaction     Reaction
}

// Outcome is what a rule did with one event.
type Outcome struct {
	// Matched is true when the event passed on, entities and when.
	Matched bool
	// Sent is true when a command was sent (for a go rule: at least one
	// through the [Sender] it was given).
	Sent bool
	// Result is the result of the command of a do rule.
	Result Result
}

// Match reports whether the rule applies to the event: its subject
// matches one of On, its aggregate one of Entities (if any) and the
// entities and when expressions (if any) yield true. A null result counts
// as false.
//
// It returns an error matching [ErrInvalidExpression] when an expression
// fails on the event or yields something other than a boolean or null.
func (r *Rule) Match(e jetsource.Event) (bool, error) {
	_, ok, err := r.match(e)
	return ok, err
}

func (r *Rule) match(e jetsource.Event) (*ruleEnv, bool, error) {
	if !matchAny(r.On, e.Subject) {
		return nil, false, nil
	}
	if len(r.Entities) > 0 && !matchAny(r.Entities, e.Subject.Aggregate()) {
		return nil, false, nil
	}
	env := newRuleEnv(e)
	for _, c := range [...]struct {
		prog *vm.Program
		src  string
		what string
	}{{r.entitiesWhen, r.entitiesSrc, "entities.when"}, {r.when, r.whenSrc, "when"}} {
		if c.prog == nil {
			continue
		}
		ok, err := evalBool(c.prog, &env)
		if err != nil {
			return nil, false, fmt.Errorf("%w: rule %s: %s %q: %w", ErrInvalidExpression, r.Name, c.what, c.src, err)
		}
		if !ok {
			return nil, false, nil
		}
	}
	return &env, true, nil
}

func matchAny(fs []subjects.Filter, s subjects.Subject) bool {
	if s.IsZero() {
		return false
	}
	for _, f := range fs {
		if f.Match(s) {
			return true
		}
	}
	return false
}

// Render returns the payload a do rule sends for the event (nil for a go
// rule or a do rule without payload).
//
// It returns an error matching [ErrInvalidExpression] when an expression
// of the template fails on the event.
func (r *Rule) Render(e jetsource.Event) (json.RawMessage, error) {
	if r.payload == nil {
		return nil, nil
	}
	env := newRuleEnv(e)
	return r.payload.render(&env)
}

// React handles one event as the rule says. An event the rule does not
// match ([Rule.Match]) is done with at once. For a match, a do rule
// renders its payload and sends its command through send; a go rule calls
// its [Reaction] with send. Either way every command sent carries:
//
//   - the command id [FollowOnID](rule, event id, n) for the n-th command
//     sent for the event (from 0), so that handling the event again sends
//     the same ids and the command pipeline executes each once;
//   - the event's id as causation id;
//   - the event's correlation id (its id if it has none) as correlation id;
//   - the actor handler:<rule>.
//
// Options a Reaction passes to Send come after these and override them.
//
// The error tells the worker what to do with the event: nil to
// acknowledge it, an error to retry it later, an error matching
// [subscriber.ErrPermanent] to dead-letter it at once. A rejected command
// is a business outcome: React returns it in the Outcome with a nil error.
// A conflict or an error result, and an error of send (such as
// [jetsource.ErrUnavailable] or [ErrUnknownCommand] when no worker serves
// the command yet), are returned for a retry. An expression that fails on
// the event ([ErrInvalidExpression]) or a command that cannot be built
// ([ErrInvalidCommand]) is permanent. A go rule returns its Reaction's
// error.
func (r *Rule) React(ctx context.Context, e jetsource.Event, send Sender) (Outcome, error) {
	if send == nil {
		return Outcome{}, fmt.Errorf("%w: nil sender", ErrInvalidOption)
	}
	env, ok, err := r.match(e)
	if err != nil {
		return Outcome{}, subscriber.Permanent(err)
	}
	if !ok {
		return Outcome{}, nil
	}
	if r.Webhook != nil {
		return r.reactWebhook(ctx, e)
	}
	fs := &followOn{send: send, rule: r.Name, event: e}
	if r.Go != "" {
		if r.reaction == nil {
			return Outcome{Matched: true}, subscriber.Permanent(fmt.Errorf("%w: %s", ErrUnknownReaction, r.Go))
		}
		err := r.reaction.React(ctx, e, fs)
		return Outcome{Matched: true, Sent: fs.n.Load() > 0}, err
	}
	var payload json.RawMessage
	if r.payload != nil {
		if payload, err = r.payload.render(env); err != nil {
			return Outcome{Matched: true}, subscriber.Permanent(fmt.Errorf("rule %s: payload: %w", r.Name, err))
		}
	}
	res, err := fs.Send(ctx, r.Command, payload)
	out := Outcome{Matched: true, Sent: true, Result: res}
	switch {
	case errors.Is(err, ErrInvalidCommand):
		return out, subscriber.Permanent(fmt.Errorf("rule %s: %w", r.Name, err))
	case err != nil:
		return out, fmt.Errorf("rule %s: %w", r.Name, err)
	}
	switch res.Status {
	case StatusAccepted, StatusRejected:
		return out, nil
	}
	return out, fmt.Errorf("rule %s: %w", r.Name, res.Err())
}

// FollowOnID returns the id of the n-th command (from 0) a rule sends for
// an event: "<rule>:<event id>" for the first, "<rule>#<n>:<event id>"
// for the others. When that would be longer than [MaxIDLen], or the event
// id holds a control character, the event id is replaced by "~" and the
// first 32 hex digits of its SHA-256. Rule names hold no ':', '#' or '~',
// so different (rule, event, n) never share an id.
func FollowOnID(rule, eventID string, n int) string {
	prefix := rule
	if n > 0 {
		prefix += "#" + strconv.Itoa(n)
	}
	if len(prefix)+1+len(eventID) <= MaxIDLen && validAttr("event id", eventID, MaxIDLen) == nil && eventID != "" && strings.TrimSpace(eventID) != "" {
		return prefix + ":" + eventID
	}
	sum := sha256.Sum256([]byte(eventID))
	return prefix + "~" + hex.EncodeToString(sum[:16])
}

// followOn is the Sender a rule sends through: it stamps every command
// with the follow-on metadata of the triggering event.
type followOn struct {
	send  Sender
	rule  string
	event jetsource.Event
	n     atomic.Int64
}

func (f *followOn) Send(ctx context.Context, name string, payload any, opts ...SendOption) (Result, error) {
	n := int(f.n.Add(1) - 1)
	corr := f.event.CorrelationID
	if corr == "" {
		corr = f.event.ID
	}
	all := make([]SendOption, 0, 4+len(opts))
	all = append(all, WithCommandID(FollowOnID(f.rule, f.event.ID, n)), WithActor("handler:"+f.rule))
	if corr != "" {
		all = append(all, WithCorrelationID(corr))
	}
	if f.event.ID != "" {
		all = append(all, WithCausationID(f.event.ID))
	}
	return f.send.Send(ctx, name, payload, append(all, opts...)...)
}

// ruleEnv is what rule expressions see: the variable event.
type ruleEnv struct {
	Event eventEnv `expr:"event"`
}

// eventEnv is the event as expressions see it.
type eventEnv struct {
	ID              string            `expr:"id" json:"id"`
	Source          string            `expr:"source" json:"source"`
	Type            string            `expr:"type" json:"type"`
	Subject         string            `expr:"subject" json:"subject"`
	Tokens          []string          `expr:"tokens" json:"tokens"`
	Aggregate       string            `expr:"aggregate" json:"aggregate"`
	Name            string            `expr:"name" json:"name"`
	Time            time.Time         `expr:"time" json:"time"`
	DataContentType string            `expr:"datacontenttype" json:"datacontenttype,omitempty"`
	Data            any               `expr:"data" json:"data"`
	Actor           string            `expr:"actor" json:"actor,omitempty"`
	CorrelationID   string            `expr:"correlationid" json:"correlationid,omitempty"`
	CausationID     string            `expr:"causationid" json:"causationid,omitempty"`
	TransactionID   string            `expr:"transactionid" json:"transactionid,omitempty"`
	Extensions      map[string]string `expr:"extensions" json:"extensions,omitempty"`
	Sequence        int               `expr:"sequence" json:"sequence,omitempty"`
	Stream          string            `expr:"stream" json:"stream,omitempty"`
}

func newRuleEnv(e jetsource.Event) ruleEnv {
	ext := make(map[string]string, len(e.Extensions)+6)
	maps.Copy(ext, e.Extensions)
	for k, v := range map[string]string{
		jetsource.ExtActor: e.Actor, jetsource.ExtClientIP: e.ClientIP, jetsource.ExtCorrelationID: e.CorrelationID,
		jetsource.ExtCausationID: e.CausationID, jetsource.ExtTransactionID: e.TransactionID,
	} {
		if v != "" {
			ext[k] = v
		}
	}
	if e.SchemaRevision != 0 {
		ext[jetsource.ExtSchemaRevision] = strconv.Itoa(e.SchemaRevision)
	}
	seq := int(min(e.Sequence, uint64(1<<62)))
	return ruleEnv{Event: eventEnv{
		ID: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject.String(), Tokens: e.Subject.Tokens(),
		Aggregate: e.Subject.Aggregate().String(), Name: e.Subject.Event(), Time: e.Time,
		DataContentType: e.DataContentType, Data: decodeData(e),
		Actor: e.Actor, CorrelationID: e.CorrelationID, CausationID: e.CausationID, TransactionID: e.TransactionID,
		Extensions: ext, Sequence: seq, Stream: e.Stream,
	}}
}

// decodeData returns the event's data decoded from JSON, or nil when it
// is absent, not JSON, or of another content type.
func decodeData(e jetsource.Event) any {
	if len(e.Data) == 0 {
		return nil
	}
	if ct := e.DataContentType; ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")) {
			return nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(e.Data))
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil
	}
	return v
}

// exprOptions are the options every rule expression is compiled with:
// the environment (checked at compile time: an unknown field of event is
// an error) and the function unescape.
func exprOptions() []expr.Option {
	return []expr.Option{
		expr.Env(ruleEnv{}),
		expr.Function("unescape", func(params ...any) (any, error) {
			s, _ := params[0].(string)
			return subjects.Unescape(s)
		}, new(func(string) string)),
	}
}

// compileExpr compiles an expression, checking that it yields a boolean
// when asBool. It returns an error matching [ErrInvalidExpression].
func compileExpr(src string, asBool bool) (*vm.Program, error) {
	opts := exprOptions()
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := compileSafe(src, opts)
	if err != nil {
		msg := strings.NewReplacer("type handlers.eventEnv", "event", "type handlers.ruleEnv", "the environment").Replace(oneLine(err.Error()))
		return nil, fmt.Errorf("%w: %q: %s", ErrInvalidExpression, src, msg)
	}
	return prog, nil
}

func compileSafe(src string, opts []expr.Option) (prog *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			prog, err = nil, fmt.Errorf("the compiler failed: %v", r)
		}
	}()
	return expr.Compile(src, opts...)
}

// oneLine keeps the first line of an expr error (the others draw the
// source with a caret).
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// evalExpr runs a program on an event, turning a panic into an error.
func evalExpr(prog *vm.Program, env *ruleEnv) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("the expression panicked: %v", r)
		}
	}()
	v, err = expr.Run(prog, *env)
	if err != nil {
		return nil, errors.New(oneLine(err.Error()))
	}
	return v, nil
}

func evalBool(prog *vm.Program, env *ruleEnv) (bool, error) {
	v, err := evalExpr(prog, env)
	if err != nil {
		return false, err
	}
	switch b := v.(type) {
	case bool:
		return b, nil
	case nil:
		return false, nil
	}
	return false, fmt.Errorf("yields %T, want a boolean", v)
}
