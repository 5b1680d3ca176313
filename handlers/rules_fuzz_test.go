package handlers_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/subjects"
)

// FuzzTemplate checks the payload template renderer: parsing and
// rendering never panic, every failure is an ErrInvalidExpression, what
// renders is JSON, and a string without ${ renders to itself.
func FuzzTemplate(f *testing.F) {
	f.Add("default", `{}`)                                              // a literal
	f.Add("${ event.data.name }", `{"name":"Ann"}`)                     // one expression keeps its type
	f.Add("user ${event.data.name} (${ event.data.age })", `{"age":1}`) // interpolation
	f.Add("$${ escaped } ${ event.name }", ``)                          // the escape
	f.Add(`${ "}" + '{' + event.name }`, `null`)                        // braces in string literals
	f.Add("${ {a: [1, {b: event.tokens}]} }", `[1,2]`)                  // nested map and list literals
	f.Add("${ event.data.a.b }", `{"a":null}`)                          // a field of null fails at run time
	f.Add("${ unescape(event.tokens[1]) }", `{}`)                       // the function
	f.Add("${ event.tokens[99] }", `{}`)                                // an index out of range
	f.Add("${", ``)                                                     // unterminated
	f.Add("${ '}", ``)                                                  // unterminated string
	f.Add("${ }", ``)                                                   // empty
	f.Add("${ 1 / 0.0 }", ``)                                           // not a JSON number
	f.Add("${ map(1..100, # * #) }", ``)                                // a builtin with a range
	f.Add("$$${x}", ``)                                                 // an escape followed by text
	e := jetsource.Event{ID: "evt-1", Subject: subjects.MustParse("users.acme_20inc.u1.inserted"), Actor: "alice", Sequence: 3}
	f.Fuzz(func(t *testing.T, src, data string) {
		tm, err := handlers.ParseTemplate(src)
		if err != nil {
			if !errors.Is(err, handlers.ErrInvalidExpression) {
				t.Fatalf("ParseTemplate(%q): %v, want ErrInvalidExpression", src, err)
			}
			return
		}
		ev := e
		ev.Data = []byte(data)
		out, err := tm.Render(ev)
		if err != nil {
			if !errors.Is(err, handlers.ErrInvalidExpression) {
				t.Fatalf("Render(%q): %v, want ErrInvalidExpression", src, err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Render(%q) = %q: not JSON", src, out)
		}
		if !strings.Contains(src, "${") && utf8.ValidString(src) {
			var s string
			if err := json.Unmarshal(out, &s); err != nil || s != src {
				t.Fatalf("Render(%q) = %s, want the string itself", src, out)
			}
		}
	})
}

// FuzzParseRules checks the rule file loader: it never panics, a refusal
// is an ErrInvalidRules naming the file, and an accepted rule is complete.
func FuzzParseRules(f *testing.F) {
	f.Add("handlers:\n  - name: a\n    on: users.>\n    do: {command: X, payload: {u: \"${ event.id }\"}}\n")                   // a do rule
	f.Add("handlers:\n  - name: a\n    on: [users.*.x, groups.>]\n    when: event.actor == \"x\"\n    go: g\n")                 // a go rule
	f.Add("handlers:\n  - {name: a, on: users.>, entities: {aggregates: [users.a.*], when: 'true'}, do: {command: X}}")         // entities
	f.Add("handlers:\n  - name: a\n    on: users.>\n    flag: f\n    when_off: pause\n    backoff: [1s]\n    do: {command: X}") // flags
	f.Add("handlers: [{name: a, on: users.>, do: {command: X}}, {name: a, on: users.>, do: {command: X}}]")                     // duplicate
	f.Add("x: &a [*a]\nhandlers: []")                                                                                           // a recursive alias
	f.Add("handlers:\n  - &h {name: a, on: users.>, do: {command: X, payload: [*h]}}")                                          // an alias into itself
	f.Add("{\"handlers\": [{\"name\": \"a\", \"on\": \"users.>\", \"do\": {\"command\": \"X\"}}]}")                             // JSON
	f.Add("handlers:\n\t- bad")                                                                                                 // not YAML
	reactions := handlers.NewReactions()
	_ = reactions.Register("g", handlers.ReactionFunc(nil))
	f.Fuzz(func(t *testing.T, src string) {
		rules, err := handlers.ParseRules("fuzz.yaml", []byte(src), handlers.WithReactions(reactions))
		if err != nil {
			var re *handlers.RuleError
			if !errors.Is(err, handlers.ErrInvalidRules) || !errors.As(err, &re) || re.File != "fuzz.yaml" {
				t.Fatalf("ParseRules: %v, want a RuleError of fuzz.yaml", err)
			}
			if rules != nil {
				t.Fatalf("ParseRules returned %d rules with an error", len(rules))
			}
			return
		}
		names := map[string]bool{}
		for _, r := range rules {
			if r.Name == "" || names[r.Name] || len(r.On) == 0 || (r.Command == "") == (r.Go == "") {
				t.Fatalf("incomplete rule accepted: %+v", r)
			}
			names[r.Name] = true
		}
	})
}
