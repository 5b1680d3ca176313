package handlers

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/jetsource/jetsource"
)

// Template is a compiled payload template: a tree of JSON values whose
// strings may hold expressions over the triggering event.
//
//   - A string that is exactly one ${ expr } (spaces around allowed)
//     becomes the expression's value with its own type: a number, a
//     boolean, null, a list, a mapping or a string.
//   - A string with text around ${ expr } parts is interpolated: each
//     part is replaced by its value as text (a string as it is, null as
//     nothing, anything else as JSON; a time as RFC 3339).
//   - $${ is a literal ${. Nothing else is special.
//   - Keys, numbers, booleans and null are literal.
//
// Braces inside an expression must balance outside its string literals,
// so that the } closing the part can be found. Expressions are
// [expr-lang] expressions over the variable event (see [ParseRules] for
// its fields) and the function unescape; they are compiled and checked
// against the event's fields when the template is parsed.
//
// [expr-lang]: https://expr-lang.org
type Template struct {
	root tmplNode
}

type tmplKind uint8

const (
	tmplLiteral tmplKind = iota // a JSON value without expressions
	tmplText                    // a string with ${ } parts
	tmplObject
	tmplArray
)

type tmplNode struct {
	kind  tmplKind
	lit   any
	parts []tmplPart // tmplText
	keys  []string   // tmplObject
	elems []tmplNode // tmplObject (values, in key order) and tmplArray
}

// tmplPart is a literal text or a compiled expression.
type tmplPart struct {
	text string
	src  string
	prog *vm.Program
}

// segment is a piece of a template string: literal text or the source of
// an expression.
type segment struct {
	text   string
	expr   string
	isExpr bool
}

// splitTemplate cuts s into literal text and ${ } expressions. It returns
// an error matching [ErrInvalidExpression] for an unterminated or empty
// ${ }.
func splitTemplate(s string) ([]segment, error) {
	var segs []segment
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			segs = append(segs, segment{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			lit.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			lit.WriteByte(s[i])
			i++
			continue
		}
		end, err := exprEnd(s, i+2)
		if err != nil {
			return nil, err
		}
		src := strings.TrimSpace(s[i+2 : end])
		if src == "" {
			return nil, fmt.Errorf("%w: empty ${ } at offset %d", ErrInvalidExpression, i)
		}
		flush()
		segs = append(segs, segment{expr: src, isExpr: true})
		i = end + 1
	}
	flush()
	return segs, nil
}

// exprEnd returns the index of the } that closes an expression starting
// at i, skipping string literals and balanced braces.
func exprEnd(s string, i int) (int, error) {
	start := i
	depth := 0
	for i < len(s) {
		switch c := s[i]; c {
		case '"', '\'', '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return 0, fmt.Errorf("%w: unterminated string in ${ } at offset %d", ErrInvalidExpression, start-2)
			}
			i = j + 1
			continue
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i, nil
			}
			depth--
		}
		i++
	}
	return 0, fmt.Errorf("%w: ${ at offset %d is not closed by }", ErrInvalidExpression, start-2)
}

// compileText compiles a template string. A string without ${ } is a
// literal.
func compileText(s string) (tmplNode, error) {
	segs, err := splitTemplate(s)
	if err != nil {
		return tmplNode{}, err
	}
	if !slices.ContainsFunc(segs, func(g segment) bool { return g.isExpr }) {
		var lit strings.Builder
		for _, g := range segs {
			lit.WriteString(g.text)
		}
		return tmplNode{kind: tmplLiteral, lit: lit.String()}, nil
	}
	n := tmplNode{kind: tmplText, parts: make([]tmplPart, len(segs))}
	for i, g := range segs {
		if !g.isExpr {
			n.parts[i] = tmplPart{text: g.text}
			continue
		}
		prog, err := compileExpr(g.expr, false)
		if err != nil {
			return tmplNode{}, err
		}
		n.parts[i] = tmplPart{src: g.expr, prog: prog}
	}
	return n, nil
}

// ParseTemplate compiles a payload template from a Go value: a string
// (see [Template] for its syntax), a map[string]any, a []any of such
// values, or a number, boolean or nil.
//
// It returns an error matching [ErrInvalidExpression] for a ${ } that is
// not closed or does not compile, and [ErrInvalidOption] for a value of
// another type.
func ParseTemplate(v any) (*Template, error) {
	n, err := compileValue(v, "")
	if err != nil {
		return nil, err
	}
	return &Template{root: n}, nil
}

func compileValue(v any, path string) (tmplNode, error) {
	at := func(err error) error {
		if path == "" || err == nil {
			return err
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	switch x := v.(type) {
	case string:
		n, err := compileText(x)
		return n, at(err)
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, json.Number:
		return tmplNode{kind: tmplLiteral, lit: x}, nil
	case map[string]any:
		n := tmplNode{kind: tmplObject}
		n.keys = slices.Sorted(maps.Keys(x))
		for _, k := range n.keys {
			c, err := compileValue(x[k], joinPath(path, k))
			if err != nil {
				return tmplNode{}, err
			}
			n.elems = append(n.elems, c)
		}
		return n.fold(), nil
	case []any:
		n := tmplNode{kind: tmplArray}
		for i, e := range x {
			c, err := compileValue(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return tmplNode{}, err
			}
			n.elems = append(n.elems, c)
		}
		return n.fold(), nil
	}
	return tmplNode{}, at(fmt.Errorf("%w: a template value of type %T", ErrInvalidOption, v))
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fold turns an object or array without expressions into one literal.
func (n tmplNode) fold() tmplNode {
	for _, e := range n.elems {
		if e.kind != tmplLiteral {
			return n
		}
	}
	v, _ := n.eval(nil)
	return tmplNode{kind: tmplLiteral, lit: v}
}

// Render renders the template for an event and returns the JSON.
//
// It returns an error matching [ErrInvalidExpression] when an expression
// fails on this event (such as an index out of range or a function given a
// bad argument) or the result cannot be encoded as JSON.
func (t *Template) Render(e jetsource.Event) (json.RawMessage, error) {
	env := newRuleEnv(e)
	return t.render(&env)
}

func (t *Template) render(env *ruleEnv) (json.RawMessage, error) {
	v, err := t.root.eval(env)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: the payload cannot be encoded as JSON: %w", ErrInvalidExpression, err)
	}
	return b, nil
}

func (n *tmplNode) eval(env *ruleEnv) (any, error) {
	switch n.kind {
	case tmplLiteral:
		return n.lit, nil
	case tmplObject:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			v, err := n.elems[i].eval(env)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case tmplArray:
		a := make([]any, len(n.elems))
		for i := range n.elems {
			v, err := n.elems[i].eval(env)
			if err != nil {
				return nil, err
			}
			a[i] = v
		}
		return a, nil
	}
	if len(n.parts) == 1 && n.parts[0].prog != nil {
		return runExpr(n.parts[0], env)
	}
	var b strings.Builder
	for _, p := range n.parts {
		if p.prog == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := runExpr(p, env)
		if err != nil {
			return nil, err
		}
		if err := writeText(&b, v); err != nil {
			return nil, fmt.Errorf("%w: ${ %s }: %w", ErrInvalidExpression, p.src, err)
		}
	}
	return b.String(), nil
}

func runExpr(p tmplPart, env *ruleEnv) (any, error) {
	if env == nil {
		return nil, fmt.Errorf("%w: ${ %s } needs an event", ErrInvalidExpression, p.src)
	}
	v, err := evalExpr(p.prog, env)
	if err != nil {
		return nil, fmt.Errorf("%w: ${ %s }: %w", ErrInvalidExpression, p.src, err)
	}
	return v, nil
}

// writeText writes an interpolated value: strings as they are, nil as
// nothing, times in RFC 3339, anything else as JSON.
func writeText(b *strings.Builder, v any) error {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		b.WriteString(x)
		return nil
	case time.Time:
		b.WriteString(x.Format(time.RFC3339Nano))
		return nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.Write(j)
	return nil
}
