package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/handlers/example"
	"github.com/jetsource/jetsource/subjects"
	"github.com/jetsource/jetsource/subscriber"
)

// exampleCommands are the commands of handlers/example.
var exampleCommands = []string{"InsertUser", "SetAPIKey", "AddUserToGroup", "RemoveUserFromGroup", "DeleteUser"}

// parseRules parses an inline rule file or fails the test.
func parseRules(t *testing.T, src string, opts ...handlers.RuleOption) []*handlers.Rule {
	t.Helper()
	rules, err := handlers.ParseRules("test.yaml", []byte(src), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// ruleEvent builds a stored-looking event on subject with JSON data.
func ruleEvent(t testing.TB, subject, data string) jetsource.Event {
	t.Helper()
	s, err := subjects.Parse(subject)
	if err != nil {
		t.Fatal(err)
	}
	e := jetsource.Event{ID: "evt-" + subject, Subject: s, Type: jetsource.TypeFromSubject(s), Source: "/test",
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Data: []byte(data), Actor: "alice", Sequence: 7, Stream: "EVENTS"}
	if data != "" {
		e.DataContentType = "application/json"
	}
	return e
}

func TestLoadExampleRules(t *testing.T) {
	rules, err := handlers.LoadRules(filepath.Join("..", "testdata", "handlers", "users.yaml"), handlers.WithCommands(exampleCommands...))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 {
		t.Fatalf("got %d rules, want 1", len(rules))
	}
	r := rules[0]
	if r.Name != "join-default-group" || r.Command != "AddUserToGroup" || r.Flag != "join-default-group" || r.WhenOff != flags.PauseWhenOff ||
		r.MaxDeliver != 5 || len(r.Backoff) != 3 || r.Backoff[2] != 30*time.Second || r.Start != handlers.StartNew || r.Line != 9 {
		t.Fatalf("got %+v", r)
	}
	e := ruleEvent(t, "users."+subjects.Escape("acme inc")+".u1.inserted", `{"name":"Ann","username":"ann"}`)
	ok, err := r.Match(e)
	if err != nil || !ok {
		t.Fatalf("Match = %v, %v; want true", ok, err)
	}
	got, err := r.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"company":"acme inc","group":"default","user":"u1"}`; string(got) != want {
		t.Fatalf("payload %s, want %s", got, want)
	}
	if ok, _ := r.Match(ruleEvent(t, "users.acme.u1.deleted", `{}`)); ok {
		t.Fatal("matched users.acme.u1.deleted")
	}
}

func TestRuleMatch(t *testing.T) {
	rules := parseRules(t, `
handlers:
  - name: plain
    on: users.*.*.inserted
    do: {command: AddUserToGroup}
  - name: when
    on: [users.*.*.inserted, users.*.*.apikeyset]
    when: event.data?.username startsWith "a" && event.actor == "alice"
    do: {command: AddUserToGroup}
  - name: entities-list
    on: users.>
    entities: [users.acme.*, users.globex.u9]
    do: {command: AddUserToGroup}
  - name: entities-expr
    on: users.>
    entities:
      aggregates: [users.*.*]
      when: unescape(event.tokens[1]) in ["acme inc", "globex"] and event.name != "deleted"
    do: {command: AddUserToGroup}
  - name: extensions
    on: users.>
    when: event.extensions.actor == "alice" && event.extensions.tier == "gold" && event.sequence > 5
    do: {command: AddUserToGroup}
  - name: nested-null
    on: users.>
    when: event.data.profile?.vip
    do: {command: AddUserToGroup}
`, handlers.WithCommands(exampleCommands...))
	byName := map[string]*handlers.Rule{}
	for _, r := range rules {
		byName[r.Name] = r
	}
	gold := ruleEvent(t, "users.acme.u1.inserted", `{"username":"ann"}`)
	gold.Extensions = map[string]string{"tier": "gold"}
	vip := ruleEvent(t, "users.acme.u1.inserted", `{"profile":{"vip":true}}`)
	notJSON := ruleEvent(t, "users.acme.u1.inserted", `ann`)
	notJSON.DataContentType = "text/plain"
	tests := []struct {
		name string
		rule string
		e    jetsource.Event
		want bool
	}{
		{"OnMatches", "plain", ruleEvent(t, "users.acme.u1.inserted", `{}`), true},
		{"OnDoesNotMatch", "plain", ruleEvent(t, "users.acme.u1.deleted", `{}`), false},
		{"OnOtherDomain", "plain", ruleEvent(t, "groups.acme.g.members.u1.added", `{}`), false},
		{"WhenTrue", "when", ruleEvent(t, "users.acme.u1.inserted", `{"username":"ann"}`), true},
		{"WhenSecondFilter", "when", ruleEvent(t, "users.acme.u1.apikeyset", `{"username":"ann"}`), true},
		{"WhenFalse", "when", ruleEvent(t, "users.acme.u1.inserted", `{"username":"bob"}`), false},
		{"WhenFieldMissingIsFalse", "when", ruleEvent(t, "users.acme.u1.inserted", `{}`), false},
		{"WhenDataNotJSON", "when", notJSON, false},
		{"EntityListed", "entities-list", ruleEvent(t, "users.acme.u1.inserted", `{}`), true},
		{"EntityListedExactly", "entities-list", ruleEvent(t, "users.globex.u9.deleted", `{}`), true},
		{"EntityNotListed", "entities-list", ruleEvent(t, "users.globex.u1.inserted", `{}`), false},
		{"EntityExpression", "entities-expr", ruleEvent(t, "users."+subjects.Escape("acme inc")+".u1.inserted", `{}`), true},
		{"EntityExpressionFalse", "entities-expr", ruleEvent(t, "users.initech.u1.inserted", `{}`), false},
		{"EntityExpressionName", "entities-expr", ruleEvent(t, "users.globex.u1.deleted", `{}`), false},
		{"EntityAggregateFilter", "entities-expr", ruleEvent(t, "users.globex.inserted", `{}`), false},
		{"Extensions", "extensions", gold, true},
		{"ExtensionMissing", "extensions", ruleEvent(t, "users.acme.u1.inserted", `{}`), false},
		{"OptionalChainingTrue", "nested-null", vip, true},
		{"OptionalChainingNull", "nested-null", ruleEvent(t, "users.acme.u1.inserted", `{}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := byName[tt.rule].Match(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("rule %s on %s: got %v, want %v", tt.rule, tt.e.Subject, got, tt.want)
			}
		})
	}
}

func TestRuleMatchRuntimeErrorIsPermanent(t *testing.T) {
	rules := parseRules(t, `
handlers:
  - name: bad
    on: users.>
    when: event.data.profile.vip
    do: {command: AddUserToGroup}
  - name: notbool
    on: users.>
    when: 'event.data.count > 0 ? true : event.data.name'
    do: {command: AddUserToGroup}
`)
	for _, tt := range []struct {
		rule int
		data string
	}{{0, `{}`}, {1, `{"count":0,"name":"x"}`}} {
		r := rules[tt.rule]
		e := ruleEvent(t, "users.acme.u1.inserted", tt.data)
		if _, err := r.Match(e); !errors.Is(err, handlers.ErrInvalidExpression) {
			t.Fatalf("rule %s: Match error %v, want ErrInvalidExpression", r.Name, err)
		}
		_, err := r.React(context.Background(), e, memSender(t))
		if !errors.Is(err, subscriber.ErrPermanent) || !errors.Is(err, handlers.ErrInvalidExpression) {
			t.Fatalf("rule %s: React error %v, want permanent ErrInvalidExpression", r.Name, err)
		}
	}
}

func TestTemplateRender(t *testing.T) {
	e := ruleEvent(t, "users."+subjects.Escape("acme inc")+".u1.inserted", `{"name":"Ann","age":41,"tags":["a","b"],"profile":{"vip":true}}`)
	e.CorrelationID = "conv-1"
	tests := []struct {
		name string
		tmpl any
		want string
	}{
		{"Literal", "default", `"default"`},
		{"WholeString", "${ event.data.name }", `"Ann"`},
		{"WholeNumberKeepsType", "${ event.data.age }", `41`},
		{"WholeArithmetic", "${event.data.age + 1}", `42`},
		{"WholeBool", "${ event.data.profile.vip }", `true`},
		{"WholeList", "${ event.data.tags }", `["a","b"]`},
		{"WholeMap", "${ event.data.profile }", `{"vip":true}`},
		{"WholeNull", "${ event.data.missing }", `null`},
		{"WholeMapLiteral", "${ {a: 1, b: [event.name]} }", `{"a":1,"b":["inserted"]}`},
		{"Interpolated", "user ${event.data.name} (${ event.data.age })", `"user Ann (41)"`},
		{"InterpolatedNullIsEmpty", "x${ event.data.missing }y", `"xy"`},
		{"InterpolatedList", "tags=${ event.data.tags }", `"tags=[\"a\",\"b\"]"`},
		{"InterpolatedTime", "at ${ event.time }", `"at 2025-01-02T03:04:05Z"`},
		{"Unescape", "${ unescape(event.tokens[1]) }", `"acme inc"`},
		{"RawToken", "${ event.tokens[1] }", fmt.Sprintf("%q", subjects.Escape("acme inc"))},
		{"Aggregate", "${ event.aggregate }", fmt.Sprintf("%q", "users."+subjects.Escape("acme inc")+".u1")},
		{"Metadata", "${ event.id }/${ event.type }/${ event.actor }/${ event.correlationid }/${ event.sequence }/${ event.stream }", fmt.Sprintf("%q", "evt-"+e.Subject.String()+"/users.inserted/alice/conv-1/7/EVENTS")},
		{"Escape", "$${ not an expression }", `"${ not an expression }"`},
		{"EscapeAndExpression", "$${x} ${ event.name }", `"${x} inserted"`},
		{"BracesInStrings", `${ "}" + "{" + event.name }`, `"}{inserted"`},
		{"LonelyDollar", "$5 and $ {x}", `"$5 and $ {x}"`},
		{"Map", map[string]any{"user": "${ event.tokens[2] }", "group": "default", "n": 3, "ok": true, "none": nil},
			`{"group":"default","n":3,"none":null,"ok":true,"user":"u1"}`},
		{"List", []any{"${ event.name }", 1.5, map[string]any{"k": "${ event.data.age * 2 }"}}, `["inserted",1.5,{"k":82}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm, err := handlers.ParseTemplate(tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tm.Render(e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		tmpl any
	}{
		{"Unclosed", "${ event.name"},
		{"Empty", "a ${ } b"},
		{"UnclosedString", `${ "} }`},
		{"Syntax", "${ event.name + }"},
		{"UnknownField", "${ event.colour }"},
		{"UnknownFunction", "${ shout(event.name) }"},
		{"WrongArgument", "${ unescape(1) }"},
		{"NestedInMap", map[string]any{"a": []any{"${ event.nope }"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := handlers.ParseTemplate(tt.tmpl); !errors.Is(err, handlers.ErrInvalidExpression) {
				t.Fatalf("got %v, want ErrInvalidExpression", err)
			}
		})
	}
	t.Run("BadType", func(t *testing.T) {
		if _, err := handlers.ParseTemplate(struct{}{}); !errors.Is(err, handlers.ErrInvalidOption) {
			t.Fatalf("got %v, want ErrInvalidOption", err)
		}
	})
	t.Run("RuntimeFailure", func(t *testing.T) {
		e := ruleEvent(t, "users.acme.u1.inserted", `{}`)
		for _, src := range []string{"${ event.tokens[9] }", "${ unescape(\"%zz\") }", "${ event.data.a.b }", "${ 1 / 0.0 }"} {
			tm, err := handlers.ParseTemplate(src)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			if got, err := tm.Render(e); !errors.Is(err, handlers.ErrInvalidExpression) {
				t.Fatalf("%s: got %s, %v; want ErrInvalidExpression", src, got, err)
			}
		}
	})
}

func TestFollowOnID(t *testing.T) {
	long := strings.Repeat("x", 200)
	for _, tt := range []struct {
		rule, event string
		n           int
		want        string
	}{
		{"join", "InsertUser:c1:0", 0, "join:InsertUser:c1:0"},
		{"join", "InsertUser:c1:0", 2, "join#2:InsertUser:c1:0"},
		{"join", long, 0, "join~"},
		{"join", "", 0, "join~"},
		{"join", "a\x00b", 0, "join~"},
	} {
		got := handlers.FollowOnID(tt.rule, tt.event, tt.n)
		if tt.want[len(tt.want)-1] == '~' {
			if !strings.HasPrefix(got, tt.want) || len(got) != len(tt.want)+32 {
				t.Errorf("FollowOnID(%q, %q, %d) = %q, want %s and 32 hex digits", tt.rule, tt.event, tt.n, got, tt.want)
			}
		} else if got != tt.want {
			t.Errorf("FollowOnID(%q, %q, %d) = %q, want %q", tt.rule, tt.event, tt.n, got, tt.want)
		}
		if len(got) > handlers.MaxIDLen || got != handlers.FollowOnID(tt.rule, tt.event, tt.n) {
			t.Errorf("FollowOnID(%q, ...) = %q: too long or not deterministic", tt.rule, got)
		}
	}
	if handlers.FollowOnID("j", long, 0) == handlers.FollowOnID("j", long+"y", 0) {
		t.Error("two long event ids share a command id")
	}
}

// TestRuleErrors loads each file of testdata/handlers/broken and checks
// that it is refused with the file, line and field of its problem.
func TestRuleErrors(t *testing.T) {
	reactions := handlers.NewReactions()
	must(t, reactions.Register("audit", handlers.ReactionFunc(func(context.Context, jetsource.Event, handlers.Sender) error { return nil })))
	tests := []struct {
		file  string
		line  int
		field string
		is    error
	}{
		{"unknown-command.yaml", 5, "handlers[0].do.command", handlers.ErrUnknownCommand},
		{"bad-filter.yaml", 5, "handlers[0].on[1]", subjects.ErrInvalidFilter},
		{"overlapping-filters.yaml", 3, "handlers[0].on", nil},
		{"bad-expression.yaml", 4, "handlers[0].when", handlers.ErrInvalidExpression},
		{"unknown-event-field.yaml", 4, "handlers[0].when", handlers.ErrInvalidExpression},
		{"when-not-boolean.yaml", 4, "handlers[0].when", handlers.ErrInvalidExpression},
		{"bad-template.yaml", 9, "handlers[0].do.payload.user", handlers.ErrInvalidExpression},
		{"unclosed-template.yaml", 8, "handlers[0].do.payload.members[0]", handlers.ErrInvalidExpression},
		{"bad-entities-expression.yaml", 6, "handlers[0].entities.when", handlers.ErrInvalidExpression},
		{"unknown-go-handler.yaml", 4, "handlers[0].go", handlers.ErrUnknownReaction},
		{"duplicate-names.yaml", 6, "handlers[1].name", nil},
		{"unknown-field.yaml", 4, "handlers[0].whenn", nil},
		{"do-and-go.yaml", 6, "handlers[0].go", nil},
		{"when-off-without-flag.yaml", 4, "handlers[0].when_off", nil},
		{"bad-flag.yaml", 4, "handlers[0].flag", flags.ErrInvalidName},
		{"bad-backoff.yaml", 4, "handlers[0].backoff[1]", nil},
		{"bad-name.yaml", 2, "handlers[0].name", nil},
		{"missing-on.yaml", 2, "handlers[0].on", nil},
		{"not-yaml.yaml", 4, "", nil},
	}
	for _, tt := range tests {
		name := strings.TrimSuffix(tt.file, ".yaml")
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "testdata", "handlers", "broken", tt.file)
			rules, err := handlers.LoadRules(path, handlers.WithCommands(exampleCommands...), handlers.WithReactions(reactions))
			if err == nil || rules != nil {
				t.Fatalf("got %d rules, %v; want an error and no rules", len(rules), err)
			}
			var re *handlers.RuleError
			if !errors.As(err, &re) || !errors.Is(err, handlers.ErrInvalidRules) {
				t.Fatalf("got %v, want a *RuleError matching ErrInvalidRules", err)
			}
			if re.File != path || re.Line != tt.line || re.Field != tt.field {
				t.Fatalf("got %s (file %q line %d field %q), want file %q line %d field %q", err, re.File, re.Line, re.Field, path, tt.line, tt.field)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("got %v, want it to match %v", err, tt.is)
			}
			want := fmt.Sprintf("%s:%d:", path, tt.line)
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("message %q does not start with %q and name %q", err, want, tt.field)
			}
			t.Log(err)
		})
	}
}

func TestRuleErrorsAllReported(t *testing.T) {
	_, err := handlers.ParseRules("many.yaml", []byte(`
handlers:
  - name: a
    on: users.>
    when: event.nope
    do: {command: Nope}
  - name: b
    on: users.>
    colour: red
`), handlers.WithCommands(exampleCommands...))
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var re *handlers.RuleError
		if !errors.As(e, &re) {
			t.Fatalf("%v is no RuleError", e)
		}
		got = append(got, fmt.Sprintf("%d %s", re.Line, re.Field))
	}
	want := []string{"5 handlers[0].when", "6 handlers[0].do.command", "9 handlers[1].colour", "7 handlers[1]"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q, want %q\n%v", got, want, err)
	}
}

func TestRuleFileShapes(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		n         int
		ok        bool
	}{
		{"Empty", "", 0, false},
		{"NoHandlersKey", "rules: []", 0, false},
		{"NullHandlers", "handlers:", 0, true},
		{"EmptyList", "handlers: []", 0, true},
		{"NotAList", "handlers: {name: x}", 0, false},
		{"TwoDocuments", "handlers: []\n---\nhandlers: []", 0, false},
		{"JSON", `{"handlers":[{"name":"a","on":"users.>","do":{"command":"X","payload":{"n":1}}}]}`, 1, true},
		{"Alias", "x: &on users.>\nhandlers: [{name: a, on: *on, do: {command: X}}]", 0, false},
		{"AliasInList", "handlers:\n  - &h {name: a, on: users.>, do: {command: X}}\n  - *h", 0, false},
		{"NaNPayload", "handlers: [{name: a, on: users.>, do: {command: X, payload: {n: .nan}}}]", 0, false},
		{"GoWithoutReactions", "handlers: [{name: a, on: users.>, go: x}]", 0, false},
		{"MaxDeliverZero", "handlers: [{name: a, on: users.>, do: {command: X}, max_deliver: 0}]", 0, false},
		{"ConcurrencyTooHigh", "handlers: [{name: a, on: users.>, do: {command: X}, concurrency: 5000}]", 0, false},
		{"StartAll", "handlers: [{name: a, on: users.>, do: {command: X}, start: all}]", 1, true},
		{"StartBad", "handlers: [{name: a, on: users.>, do: {command: X}, start: later}]", 0, false},
		{"PauseMaxDeliverOne", "handlers: [{name: a, on: users.>, do: {command: X}, flag: f, when_off: pause, max_deliver: 1}]", 0, false},
		{"PauseMaxDeliverTwo", "handlers: [{name: a, on: users.>, do: {command: X}, flag: f, when_off: pause, max_deliver: 2}]", 1, true},
		{"FlagSkipDefault", "handlers: [{name: a, on: users.>, do: {command: X}, flag: f}]", 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := handlers.ParseRules("shape.yaml", []byte(tt.src))
			if (err == nil) != tt.ok || len(rules) != tt.n {
				t.Fatalf("got %d rules, %v; want %d rules, ok %v", len(rules), err, tt.n, tt.ok)
			}
			if err != nil && !errors.Is(err, handlers.ErrInvalidRules) {
				t.Fatalf("got %v, want ErrInvalidRules", err)
			}
			if tt.name == "FlagSkipDefault" && rules[0].WhenOff != flags.SkipWhenOff {
				t.Fatalf("when_off %v, want skip", rules[0].WhenOff)
			}
			if tt.name == "StartAll" && rules[0].Start != handlers.StartAll {
				t.Fatalf("start %v, want all", rules[0].Start)
			}
		})
	}
}

func TestReactionsRegister(t *testing.T) {
	rs := handlers.NewReactions()
	f := handlers.ReactionFunc(func(context.Context, jetsource.Event, handlers.Sender) error { return nil })
	must(t, rs.Register("b", f))
	must(t, rs.Register("a", f))
	for _, tt := range []struct {
		name string
		r    handlers.Reaction
	}{{"a", f}, {"bad name", f}, {"", f}, {"c", nil}} {
		if err := rs.Register(tt.name, tt.r); !errors.Is(err, handlers.ErrInvalidOption) {
			t.Errorf("Register(%q) = %v, want ErrInvalidOption", tt.name, err)
		}
	}
	if got := rs.Names(); strings.Join(got, ",") != "a,b" {
		t.Fatalf("Names = %v", got)
	}
	if _, ok := rs.Reaction("a"); !ok {
		t.Fatal("a not found")
	}
}

// A rule file parsed, matched and rendered without a server.
func ExampleParseRules() {
	rules, err := handlers.ParseRules("rules.yaml", []byte(`
handlers:
  - name: join-default-group
    on: users.*.*.inserted
    when: event.data.username != ""
    do:
      command: AddUserToGroup
      payload:
        company: ${ unescape(event.tokens[1]) }
        group: default
        user: ${ unescape(event.tokens[2]) }
        note: added by ${ event.actor ?? "nobody" }
`), handlers.WithCommands("AddUserToGroup"))
	if err != nil {
		fmt.Println(err)
		return
	}
	e := jetsource.Event{ID: "InsertUser:c1:0", Subject: subjects.MustParse("users.acme.u1.inserted"), Actor: "alice",
		Data: []byte(`{"name":"Ann","username":"ann"}`)}
	ok, _ := rules[0].Match(e)
	payload, _ := rules[0].Render(e)
	fmt.Println(ok, string(payload))
	fmt.Println(handlers.FollowOnID(rules[0].Name, e.ID, 0))

	_, err = handlers.ParseRules("rules.yaml", []byte("handlers:\n  - name: x\n    on: users.>\n    do: {command: AddToGroup}\n"),
		handlers.WithCommands("AddUserToGroup"))
	fmt.Println(err)
	// Output:
	// true {"company":"acme","group":"default","note":"added by alice","user":"u1"}
	// join-default-group:InsertUser:c1:0
	// rules.yaml:4:19: handlers[0].do.command: handlers: unknown command: "AddToGroup" (known: AddUserToGroup)
}

// memSender is a processor of the example domain on a memory store.
func memSender(t *testing.T) *handlers.Processor {
	t.Helper()
	st, err := jetsource.NewMemoryStore()
	must(t, err)
	reg := handlers.NewRegistry()
	must(t, example.Register(reg))
	p, err := handlers.NewProcessor(st, reg)
	must(t, err)
	return p
}

// BenchmarkRuleReact measures what a rule costs per event before the
// command leaves: filters, when, payload rendering and the follow-on
// metadata (the sender answers at once).
func BenchmarkRuleReact(b *testing.B) {
	rules, err := handlers.ParseRules("bench.yaml", []byte(`
handlers:
  - name: join
    on: users.*.*.inserted
    entities: [users.acme.*]
    when: event.data.username != "" && event.actor != "system"
    do:
      command: AddUserToGroup
      payload:
        company: ${ unescape(event.tokens[1]) }
        group: default
        user: ${ unescape(event.tokens[2]) }
        note: joined by ${ event.actor }
`))
	if err != nil {
		b.Fatal(err)
	}
	e := ruleEvent(b, "users.acme.u1.inserted", `{"name":"Ann","username":"ann"}`)
	send := senderFunc(func(_ context.Context, name string, _ any, _ ...handlers.SendOption) (handlers.Result, error) {
		return handlers.Result{Status: handlers.StatusAccepted, Command: name}, nil
	})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out, err := rules[0].React(ctx, e, send); err != nil || !out.Sent {
			b.Fatal(out, err)
		}
	}
}
