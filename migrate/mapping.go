package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/jetsource/jetsource/subjects"
)

// DefaultType is the event name of a row's first import.
const DefaultType = "imported"

// Event names of the changes [Runner.Run] writes.
const (
	ChangedType = "changed"
	DeletedType = "deleted"
)

// Mapping says how the tables of a source become events.
type Mapping struct {
	// Source is where the rows come from: sqlite:PATH, postgres://...
	// (or postgresql://...), or csv:DIR. Relative paths are resolved
	// against Dir.
	Source string `yaml:"source"`
	// Actor is the actor of the events written (default "migrate").
	Actor string `yaml:"actor"`
	// Tables are the tables to read, in order.
	Tables []Table `yaml:"tables"`
	// Dir is the directory relative paths resolve against: the mapping
	// file's directory for [LoadMapping].
	Dir string `yaml:"-"`
}

// Table maps one table (or CSV file) to events.
type Table struct {
	// Table is the table's name, or the CSV file's name without .csv.
	Table string `yaml:"table"`
	// Subject is the subject template of a row's aggregate: tokens are
	// literals or a key column in braces ({id}), whose value is escaped
	// with [subjects.Escape].
	Subject string `yaml:"subject"`
	// Data lists the columns that become the event data (default: every
	// column but the key columns), in order.
	Data []string `yaml:"data"`
	// Type is the event name of a row's first import (default
	// [DefaultType]).
	Type string `yaml:"type"`
	// Transforms lists, per column, the transforms applied to its value
	// in order (see [Transforms]).
	Transforms map[string][]string `yaml:"transforms"`

	tmpl template
}

// template is a parsed subject template.
type template struct {
	tokens []string // literal tokens; "" where a key column goes
	keys   []string // the key column of each "" token, in order
}

// LoadMapping reads a YAML mapping file. Unknown fields are errors, and
// relative paths in it resolve against the file's directory.
//
// Errors: [ErrInvalidMapping], and those of reading the file.
func LoadMapping(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseMapping(b, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ParseMapping parses a YAML mapping whose relative paths resolve against
// dir, and validates it.
//
// Errors: [ErrInvalidMapping].
func ParseMapping(b []byte, dir string) (*Mapping, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var m Mapping
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMapping, err)
	}
	m.Dir = dir
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the mapping on its own (the source is not consulted:
// see [Runner.Check]) and prepares its templates. It joins every problem
// found, each matching [ErrInvalidMapping].
func (m *Mapping) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidMapping}, a...)...))
	}
	if m.Source == "" {
		bad("no source")
	}
	if len(m.Tables) == 0 {
		bad("no tables")
	}
	if m.Actor == "" {
		m.Actor = "migrate"
	}
	seen := map[string]bool{}
	for i := range m.Tables {
		t := &m.Tables[i]
		name := t.Table
		if name == "" {
			bad("table %d: no table name", i+1)
			name = fmt.Sprintf("#%d", i+1)
		} else if seen[name] {
			bad("table %s is mapped twice", name)
		}
		seen[name] = true
		if t.Type == "" {
			t.Type = DefaultType
		}
		for _, n := range []string{t.Type} {
			if !validToken(n) {
				bad("table %s: type %q is not a subject token", name, n)
			}
		}
		tmpl, err := parseTemplate(t.Subject)
		if err != nil {
			bad("table %s: subject %q: %v", name, t.Subject, err)
		}
		t.tmpl = tmpl
		for _, c := range t.Data {
			if slices.Contains(tmpl.keys, c) {
				bad("table %s: column %s is a key column and cannot be data as well", name, c)
			}
		}
		for col, names := range t.Transforms {
			for _, n := range names {
				if _, ok := transforms[n]; !ok {
					bad("table %s: column %s: unknown transform %q (known: %s)", name, col, n, strings.Join(Transforms(), ", "))
				}
			}
		}
	}
	for i := range m.Tables {
		for j := i + 1; j < len(m.Tables); j++ {
			a, b := m.Tables[i], m.Tables[j]
			if len(a.tmpl.tokens) > 0 && len(b.tmpl.tokens) > 0 && a.tmpl.overlaps(b.tmpl) {
				bad("tables %s and %s have overlapping subjects %s and %s: every table needs its own", a.Table, b.Table, a.Subject, b.Subject)
			}
		}
	}
	return errors.Join(errs...)
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	_, err := subjects.Parse(s)
	return err == nil && !strings.Contains(s, ".")
}

// parseTemplate parses "customers.{id}": each token a literal or {column}.
func parseTemplate(s string) (template, error) {
	if s == "" {
		return template{}, errors.New("empty")
	}
	var t template
	for tok := range strings.SplitSeq(s, ".") {
		switch {
		case strings.HasPrefix(tok, "{") && strings.HasSuffix(tok, "}"):
			col := tok[1 : len(tok)-1]
			if col == "" || strings.ContainsAny(col, "{}") {
				return template{}, fmt.Errorf("bad key column %q", tok)
			}
			if slices.Contains(t.keys, col) {
				return template{}, fmt.Errorf("key column %s twice", col)
			}
			t.tokens = append(t.tokens, "")
			t.keys = append(t.keys, col)
		case strings.ContainsAny(tok, "{}"):
			return template{}, fmt.Errorf("token %q: a key column takes a whole token, like {id}", tok)
		case !validToken(tok):
			return template{}, fmt.Errorf("token %q is not a literal subject token", tok)
		default:
			t.tokens = append(t.tokens, tok)
		}
	}
	if len(t.keys) == 0 {
		return template{}, errors.New("no key column in braces, such as customers.{id}")
	}
	return t, nil
}

// filter returns the filter of every subject under the template:
// customers.*.>.
func (t template) filter() subjects.Filter {
	parts := make([]string, len(t.tokens), len(t.tokens)+1)
	for i, tok := range t.tokens {
		parts[i] = tok
		if tok == "" {
			parts[i] = "*"
		}
	}
	return subjects.MustParseFilter(strings.Join(append(parts, ">"), "."))
}

// overlaps reports whether some subject is under both templates.
func (t template) overlaps(o template) bool {
	for i := range min(len(t.tokens), len(o.tokens)) {
		a, b := t.tokens[i], o.tokens[i]
		if a != "" && b != "" && a != b {
			return false
		}
	}
	return true
}

// build returns the aggregate subject for the escaped key values.
func (t template) build(keys []string) (string, error) {
	var b strings.Builder
	k := 0
	for i, tok := range t.tokens {
		if i > 0 {
			b.WriteByte('.')
		}
		if tok == "" {
			b.WriteString(keys[k])
			k++
			continue
		}
		b.WriteString(tok)
	}
	if b.Len() > subjects.MaxLen {
		return "", fmt.Errorf("%w: subject of %d bytes, at most %d", ErrUnsupportedType, b.Len(), subjects.MaxLen)
	}
	return b.String(), nil
}

// Filter returns the filter of every subject under the table's template,
// such as customers.*.> for customers.{id}: the events of its rows. It is
// the zero filter for a table that did not pass [Mapping.Validate].
func (t Table) Filter() subjects.Filter {
	if len(t.tmpl.tokens) == 0 {
		return subjects.Filter{}
	}
	return t.tmpl.filter()
}
