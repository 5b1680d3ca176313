package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/subjects"
)

// MaxRulesFileSize is the largest rule file [LoadRules] reads, in bytes.
const MaxRulesFileSize = 4 << 20

// maxTemplateNodes bounds the values of one payload template, aliases
// expanded.
const maxTemplateNodes = 10000

// RuleOption configures how rules are loaded.
type RuleOption func(*ruleConfig) error

type ruleConfig struct {
	commands  map[string]bool // nil: any valid name
	reactions *Reactions
	getenv    func(string) string // webhook secret_env; nil: os.Getenv
}

// WithCommands gives the names of the commands rules may send, such as
// [Registry.Names]; a do rule naming another command is refused. Without
// it, any valid command name is accepted.
func WithCommands(names ...string) RuleOption {
	return func(c *ruleConfig) error {
		if c.commands == nil {
			c.commands = map[string]bool{}
		}
		for _, n := range names {
			c.commands[n] = true
		}
		return nil
	}
}

// WithReactions gives the reactions that go rules may name. Without it,
// every go rule is refused. A nil rs is an error matching
// [ErrInvalidOption].
func WithReactions(rs *Reactions) RuleOption {
	return func(c *ruleConfig) error {
		if rs == nil {
			return fmt.Errorf("%w: nil reactions", ErrInvalidOption)
		}
		c.reactions = rs
		return nil
	}
}

// LoadRules reads a rule file and parses it with [ParseRules].
//
// It returns an error matching [ErrInvalidRules] when the file cannot be
// read, is larger than [MaxRulesFileSize] or is not a valid rule file.
func LoadRules(path string, opts ...RuleOption) ([]*Rule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &RuleError{File: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRulesFileSize+1))
	if err != nil {
		return nil, &RuleError{File: path, Err: err}
	}
	if len(data) > MaxRulesFileSize {
		return nil, &RuleError{File: path, Err: fmt.Errorf("larger than %d bytes", MaxRulesFileSize)}
	}
	return ParseRules(path, data, opts...)
}

// ParseRules parses a rule file (YAML or JSON); name is used in errors
// only. The file has one key, handlers, with a list of handlers:
//
//	handlers:
//	  - name: join-default-group          # required; worker handler-<name>
//	    on: users.*.*.inserted            # required: a subject filter or a list
//	    entities: [users.acme.*]          # optional: aggregate filters, or
//	                                      #   {aggregates: [...], when: EXPR}
//	    when: event.data.username != ""   # optional: a boolean expression
//	    do:                               # a command to send...
//	      command: AddUserToGroup
//	      payload:                        # a template (see [Template])
//	        company: ${ unescape(event.tokens[1]) }
//	        group: default
//	        user: ${ unescape(event.tokens[2]) }
//	    # go: audit-log                   # ...or a Reaction registered in Go
//	    # webhook: {url: https://h.example/users, secret_env: HOOK_SECRET}
//	                                      # ...or POST the event (see [Webhook])
//	    flag: join-default-group          # optional feature flag
//	    when_off: pause                   # skip (default) or pause
//	    max_deliver: 5                    # optional: deliveries before dead letter
//	    backoff: [1s, 5s, 30s]            # optional: retry delays
//	    concurrency: 8                    # optional: events handled at once
//	    start: new                        # new (default) or all: history too
//
// Expressions are [expr-lang] expressions. They see one variable, event,
// with the fields id, source, type, subject, tokens (the subject's
// tokens, a list from index 0, escaped as on the subject), aggregate (the
// subject without its last token), name (the last token), time,
// datacontenttype, data (the JSON data decoded: objects, lists, strings,
// float64 numbers, booleans, null; null when the data is not JSON),
// actor, correlationid, causationid, transactionid, extensions (a map of
// every extension attribute, actor and correlationid included), sequence
// and stream; and the function unescape, which undoes
// [subjects.Escape] on a token. They are compiled when the file is
// loaded: an unknown field of event, a syntax error or a when that is not
// boolean is an error then. A key missing from an object is null, and a
// when or entities.when yielding null counts as false; but a field of null
// is an error on the event (which is then dead-lettered), so write
// event.data?.profile?.vip for parts that may be absent.
//
// Every problem is reported, each as a [*RuleError] matching
// [ErrInvalidRules] with the file, line and field (several are joined
// with [errors.Join]), and no rule is returned: an unknown field, a
// missing or bad name, a name used twice, a bad subject filter or
// overlapping on filters, an expression that does not compile
// ([ErrInvalidExpression]), a command not given to [WithCommands]
// ([ErrUnknownCommand]), a go: name not registered in [WithReactions]
// ([ErrUnknownReaction]), not exactly one of do, go and webhook, a bad
// webhook url, timeout, header or unreadable secret, a bad flag name,
// when_off without flag, when_off pause with max_deliver 1, or a bad
// number, duration or start.
//
// [expr-lang]: https://expr-lang.org
func ParseRules(name string, data []byte, opts ...RuleOption) ([]*Rule, error) {
	p := &ruleParser{file: name}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&p.cfg); err != nil {
			return nil, err
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &RuleError{File: name, Err: errors.New("the file is empty; want a mapping with the key handlers")}
		}
		return nil, yamlRuleError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlRuleError(name, err)
		}
		return nil, &RuleError{File: name, Line: extra.Line, Err: errors.New("a second YAML document; want one")}
	}
	rules := p.parse(&doc)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return rules, nil
}

type ruleParser struct {
	file string
	cfg  ruleConfig
	errs []error
}

func (p *ruleParser) fail(n *yaml.Node, field string, err error) {
	e := &RuleError{File: p.file, Field: field, Err: err}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

func (p *ruleParser) failf(n *yaml.Node, field, format string, a ...any) {
	p.fail(n, field, fmt.Errorf(format, a...))
}

func (p *ruleParser) parse(doc *yaml.Node) []*Rule {
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.failf(nil, "", "the file is empty; want a mapping with the key handlers")
			return nil
		}
		root = root.Content[0]
	}
	root = resolveAlias(root)
	if root.Kind != yaml.MappingNode {
		p.failf(root, "", "want a mapping with the key handlers, got %s", nodeKind(root))
		return nil
	}
	var list *yaml.Node
	p.fields(root, "", []string{"handlers"}, func(key string, k, v *yaml.Node) {
		list = v
	})
	if list == nil {
		if len(p.errs) == 0 {
			p.failf(root, "handlers", "missing; want a list of handlers")
		}
		return nil
	}
	if isNullNode(list) {
		return []*Rule{}
	}
	if list.Kind != yaml.SequenceNode {
		p.failf(list, "handlers", "want a list of handlers, got %s", nodeKind(list))
		return nil
	}
	rules := make([]*Rule, 0, len(list.Content))
	first := map[string]int{}
	for i, item := range list.Content {
		field := fmt.Sprintf("handlers[%d]", i)
		r, nameNode := p.rule(resolveAlias(item), field)
		if r == nil {
			continue
		}
		if r.Name != "" {
			if line, dup := first[r.Name]; dup {
				p.failf(nameNode, field+".name", "duplicate handler name %q (first at line %d)", r.Name, line)
			} else {
				first[r.Name] = nameNode.Line
			}
		}
		rules = append(rules, r)
	}
	return rules
}

// fields calls f for each key of a mapping in order, refusing keys not in
// known and keys given twice.
func (p *ruleParser) fields(m *yaml.Node, field string, known []string, f func(key string, k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], resolveAlias(m.Content[i+1])
		kf := k.Value
		if field != "" {
			kf = field + "." + k.Value
		}
		if k.Kind != yaml.ScalarNode {
			p.failf(k, field, "a key must be a string, got %s", nodeKind(k))
			continue
		}
		if !slices.Contains(known, k.Value) {
			p.failf(k, kf, "unknown field; want one of %s", strings.Join(known, ", "))
			continue
		}
		if seen[k.Value] {
			p.failf(k, kf, "given twice")
			continue
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
}

var ruleFields = []string{"name", "on", "entities", "when", "do", "go", "webhook", "flag", "when_off", "max_deliver", "backoff", "concurrency", "start"}

// rule parses one handler; it returns nil when the entry is no mapping.
func (p *ruleParser) rule(n *yaml.Node, field string) (*Rule, *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.failf(n, field, "want a mapping with name, on and do or go, got %s", nodeKind(n))
		return nil, nil
	}
	r := &Rule{File: p.file, Line: n.Line, Start: StartNew}
	var nameNode, onNode, doNode, goNode, webhookNode, whenOffNode *yaml.Node
	p.fields(n, field, ruleFields, func(key string, k, v *yaml.Node) {
		f := field + "." + key
		switch key {
		case "name":
			nameNode = v
			if s, ok := p.str(v, f); ok {
				if err := validRuleName(s); err != nil {
					p.fail(v, f, err)
				} else {
					r.Name = s
				}
			}
		case "on":
			onNode = v
			r.On = p.filters(v, f)
			c := subjects.Canonical(r.On...)
			for i := range c {
				for j := i + 1; j < len(c); j++ {
					if c[i].Overlaps(c[j]) {
						p.failf(v, f, "the filters %s and %s overlap; a consumer cannot take both", c[i], c[j])
					}
				}
			}
		case "entities":
			p.entities(r, v, f)
		case "when":
			if s, ok := p.str(v, f); ok {
				prog, err := compileExpr(s, true)
				if err != nil {
					p.fail(v, f, err)
				}
				r.when, r.whenSrc = prog, s
			}
		case "do":
			doNode = v
			p.do(r, v, f)
		case "go":
			goNode = v
			if s, ok := p.str(v, f); ok {
				r.Go = s
				if p.cfg.reactions == nil {
					p.failf(v, f, "%w: %q (no reactions are registered)", ErrUnknownReaction, s)
				} else if re, ok := p.cfg.reactions.Reaction(s); !ok {
					p.failf(v, f, "%w: %q (registered: %s)", ErrUnknownReaction, s, listOrNone(p.cfg.reactions.Names()))
				} else {
					r.reaction = re
				}
			}
		case "webhook":
			webhookNode = v
			p.webhook(r, v, f)
		case "flag":
			if s, ok := p.str(v, f); ok {
				if err := flags.ValidName(s); err != nil {
					p.fail(v, f, err)
				}
				r.Flag = s
			}
		case "when_off":
			whenOffNode = v
			if s, ok := p.str(v, f); ok {
				m, err := flags.ParseMode(s)
				if err != nil {
					p.failf(v, f, "want skip or pause, got %q", s)
				}
				r.WhenOff = m
			}
		case "max_deliver":
			r.MaxDeliver = p.integer(v, f, 1, math.MaxInt32)
		case "concurrency":
			r.Concurrency = p.integer(v, f, 1, 1024)
		case "backoff":
			r.Backoff = p.durations(v, f)
		case "start":
			if s, ok := p.str(v, f); ok {
				switch Start(s) {
				case StartNew, StartAll:
					r.Start = Start(s)
				default:
					p.failf(v, f, "want new or all, got %q", s)
				}
			}
		}
	})
	if nameNode == nil {
		p.failf(n, field+".name", "missing")
	}
	if onNode == nil {
		p.failf(n, field+".on", "missing; want the subject filters of the events to react to")
	}
	switch {
	case doNode != nil && goNode != nil:
		p.failf(goNode, field+".go", "a handler has do or go, not both")
	case webhookNode != nil && (doNode != nil || goNode != nil):
		p.failf(webhookNode, field+".webhook", "a handler has one of do, go and webhook")
	case doNode == nil && goNode == nil && webhookNode == nil:
		p.failf(n, field, "missing do (a command to send), go (a registered reaction) or webhook (a URL to POST events to)")
	}
	if webhookNode != nil && r.Backoff == nil {
		r.Backoff = DefaultWebhookBackoff()
	}
	if whenOffNode != nil && r.Flag == "" {
		p.failf(whenOffNode, field+".when_off", "needs flag")
	}
	if r.WhenOff == flags.PauseWhenOff && r.MaxDeliver == 1 {
		p.failf(whenOffNode, field+".when_off", "pause needs max_deliver of at least 2: an event waiting for the flag when the worker stops is handed back as a failed delivery")
	}
	if r.Flag != "" && r.WhenOff == 0 {
		r.WhenOff = flags.SkipWhenOff
	}
	return r, nameNode
}

func validRuleName(s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("handler name %q must be 1 to %d characters", s, MaxNameLen)
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("handler name %q may hold only letters, digits, '_' and '-'", s)
		}
	}
	return nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// str reads a scalar as a string.
func (p *ruleParser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNullNode(n) {
		p.failf(n, field, "want a string, got %s", nodeKind(n))
		return "", false
	}
	return n.Value, true
}

func (p *ruleParser) integer(n *yaml.Node, field string, lo, hi int) int {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.failf(n, field, "want a whole number, got %s", nodeKind(n))
		return 0
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil || v < int64(lo) || v > int64(hi) {
		p.failf(n, field, "want a whole number from %d to %d, got %s", lo, hi, n.Value)
		return 0
	}
	return int(v)
}

func (p *ruleParser) durations(n *yaml.Node, field string) []time.Duration {
	var out []time.Duration
	p.strings(n, field, "delay", func(it *yaml.Node, f, s string) {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			p.failf(it, f, "want a positive duration such as 500ms or 5s, got %q", s)
			return
		}
		out = append(out, d)
	})
	return out
}

// filters reads a filter or a list of filters.
func (p *ruleParser) filters(n *yaml.Node, field string) []subjects.Filter {
	var out []subjects.Filter
	p.strings(n, field, "subject filter", func(it *yaml.Node, f, s string) {
		flt, err := subjects.ParseFilter(s)
		if err != nil {
			p.fail(it, f, err)
			return
		}
		out = append(out, flt)
	})
	return out
}

// strings calls each with every string of n, one string or a non-empty
// list of them (what names one, for the error of an empty list), and its
// field path (field, or field[i] in a list).
func (p *ruleParser) strings(n *yaml.Node, field, what string, each func(it *yaml.Node, field, s string)) {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
		if len(items) == 0 {
			p.failf(n, field, "want at least one %s", what)
		}
	}
	for i, it := range items {
		f := field
		if n.Kind == yaml.SequenceNode {
			f = fmt.Sprintf("%s[%d]", field, i)
		}
		it = resolveAlias(it)
		if s, ok := p.str(it, f); ok {
			each(it, f, s)
		}
	}
}

func (p *ruleParser) entities(r *Rule, n *yaml.Node, field string) {
	if n.Kind != yaml.MappingNode {
		r.Entities = p.filters(n, field)
		return
	}
	p.fields(n, field, []string{"aggregates", "when"}, func(key string, k, v *yaml.Node) {
		f := field + "." + key
		switch key {
		case "aggregates":
			r.Entities = p.filters(v, f)
		case "when":
			if s, ok := p.str(v, f); ok {
				prog, err := compileExpr(s, true)
				if err != nil {
					p.fail(v, f, err)
				}
				r.entitiesWhen, r.entitiesSrc = prog, s
			}
		}
	})
}

func (p *ruleParser) do(r *Rule, n *yaml.Node, field string) {
	if n.Kind != yaml.MappingNode {
		p.failf(n, field, "want a mapping with command and payload, got %s", nodeKind(n))
		return
	}
	var cmdNode *yaml.Node
	p.fields(n, field, []string{"command", "payload"}, func(key string, k, v *yaml.Node) {
		f := field + "." + key
		switch key {
		case "command":
			cmdNode = v
			s, ok := p.str(v, f)
			if !ok {
				return
			}
			if err := ValidName(s); err != nil {
				p.fail(v, f, err)
				return
			}
			if p.cfg.commands != nil && !p.cfg.commands[s] {
				known := make([]string, 0, len(p.cfg.commands))
				for c := range p.cfg.commands {
					known = append(known, c)
				}
				slices.Sort(known)
				p.failf(v, f, "%w: %q (known: %s)", ErrUnknownCommand, s, listOrNone(known))
			}
			r.Command = s
		case "payload":
			budget := maxTemplateNodes
			root, ok := p.tmpl(v, f, &budget)
			if ok {
				r.payload = &Template{root: root}
			}
		}
	})
	if cmdNode == nil {
		p.failf(n, field+".command", "missing")
	}
}

// tmpl compiles a payload node, reporting each bad expression at its
// line.
func (p *ruleParser) tmpl(n *yaml.Node, field string, budget *int) (tmplNode, bool) {
	n = resolveAlias(n)
	if *budget--; *budget < 0 {
		if *budget == -1 {
			p.failf(n, field, "the payload has more than %d values", maxTemplateNodes)
		}
		return tmplNode{}, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		obj := tmplNode{kind: tmplObject}
		type kv struct {
			k string
			v tmplNode
		}
		var kvs []kv
		ok := true
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || isNullNode(k) {
				p.failf(k, field, "a key must be a string, got %s", nodeKind(k))
				ok = false
				continue
			}
			if seen[k.Value] {
				p.failf(k, joinPath(field, k.Value), "given twice")
				ok = false
				continue
			}
			seen[k.Value] = true
			c, cok := p.tmpl(n.Content[i+1], joinPath(field, k.Value), budget)
			ok = ok && cok
			kvs = append(kvs, kv{k.Value, c})
		}
		slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
		for _, e := range kvs {
			obj.keys = append(obj.keys, e.k)
			obj.elems = append(obj.elems, e.v)
		}
		return obj.fold(), ok
	case yaml.SequenceNode:
		arr := tmplNode{kind: tmplArray}
		ok := true
		for i, c := range n.Content {
			e, cok := p.tmpl(c, fmt.Sprintf("%s[%d]", field, i), budget)
			ok = ok && cok
			arr.elems = append(arr.elems, e)
		}
		return arr.fold(), ok
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!timestamp", "!!binary":
			c, err := compileText(n.Value)
			if err != nil {
				p.fail(n, field, err)
				return tmplNode{}, false
			}
			return c, true
		case "!!null":
			return tmplNode{kind: tmplLiteral}, true
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				p.failf(n, field, "%s: %v", n.Value, err)
				return tmplNode{}, false
			}
			if f, isF := v.(float64); isF && (math.IsNaN(f) || math.IsInf(f, 0)) {
				p.failf(n, field, "%s is not a JSON number", n.Value)
				return tmplNode{}, false
			}
			return tmplNode{kind: tmplLiteral, lit: v}, true
		}
		p.failf(n, field, "unsupported tag %s", n.Tag)
		return tmplNode{}, false
	}
	p.failf(n, field, "unsupported value %s", nodeKind(n))
	return tmplNode{}, false
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNullNode(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNullNode(n) {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

var yamlLineRe = regexp.MustCompile(`line (\d+)`)

// yamlRuleError turns a YAML syntax error into a RuleError with its line.
func yamlRuleError(name string, err error) error {
	e := &RuleError{File: name}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = strings.TrimPrefix(strings.Replace(msg, m[0], "", 1), ": ")
	}
	e.Err = fmt.Errorf("not valid YAML or JSON: %s", msg)
	return e
}
