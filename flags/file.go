package flags

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest flag file [LoadFile] reads, in bytes.
const MaxFileSize = 4 << 20

// Definition is a flag as a file declares it.
type Definition struct {
	// Default is the flag's value when the bucket sets none (Unset: the
	// file declares the flag without a value, and it is off).
	Default Value
	// Description says what the flag does.
	Description string
}

// Definitions are the flags of a file, by name.
type Definitions map[string]Definition

// FileError is the error of a flag file that does not follow the format.
// It matches [ErrInvalidFile] and its own Err (such as [ErrInvalidName]).
type FileError struct {
	// File is the file's name as given.
	File string
	// Line and Column locate the problem (0 when unknown).
	Line, Column int
	// Field is the path of the offending field, such as
	// flags.beta.enabled (empty for the whole file).
	Field string
	// Err says what is wrong.
	Err error
}

// Error returns "file:line:column: field: problem".
func (e *FileError) Error() string {
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

// Unwrap returns [ErrInvalidFile] and Err.
func (e *FileError) Unwrap() []error { return []error{ErrInvalidFile, e.Err} }

// LoadFile reads and parses a flag file with [ParseFile]. It returns an
// error matching [ErrInvalidFile] when the file cannot be read, is larger
// than [MaxFileSize] or is not a valid flag file.
func LoadFile(path string) (Definitions, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &FileError{File: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &FileError{File: path, Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, &FileError{File: path, Err: fmt.Errorf("larger than %d bytes", MaxFileSize)}
	}
	return ParseFile(path, data)
}

// ParseFile parses a flag file; name is used in errors only. The file is
// YAML or JSON with one top-level key, flags, mapping each flag name to
// its default, either a boolean or a mapping with enabled and description:
//
//	flags:
//	  new-checkout: true            # on
//	  billing.v2: off               # true/false or on/off
//	  search.fuzzy:
//	    enabled: false
//	    description: fuzzy matching in the search box
//	  beta-banner:                  # declared without a value: off
//	    description: the banner on top of every page
//
// Any other key, a bad flag name (see [ValidName]), a name given twice or
// a value of the wrong kind is an error: a [*FileError] matching
// [ErrInvalidFile] that names the file, the line and the field.
func ParseFile(name string, data []byte) (Definitions, error) {
	fail := func(n *yaml.Node, field string, format string, a ...any) error {
		e := &FileError{File: name, Field: field, Err: fmt.Errorf(format, a...)}
		if n != nil {
			e.Line, e.Column = n.Line, n.Column
		}
		return e
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail(nil, "", "the file is empty; want a mapping with the key flags")
		}
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(name, err)
		}
		return nil, fail(&extra, "", "more than one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = resolve(root)
	if root.Kind != yaml.MappingNode {
		return nil, fail(root, "", "want a mapping with the key flags, got %s", kindName(root))
	}
	var flagsNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value != "flags" {
			return nil, fail(k, k.Value, "unknown key; the only key is flags")
		}
		if flagsNode != nil {
			return nil, fail(k, "flags", "given twice")
		}
		flagsNode = resolve(v)
	}
	if flagsNode == nil {
		return nil, fail(root, "", "the key flags is missing")
	}
	defs := Definitions{}
	if isNull(flagsNode) {
		return defs, nil
	}
	if flagsNode.Kind != yaml.MappingNode {
		return nil, fail(flagsNode, "flags", "want a mapping of flag names, got %s", kindName(flagsNode))
	}
	lines := map[string]int{}
	for i := 0; i+1 < len(flagsNode.Content); i += 2 {
		k, v := flagsNode.Content[i], resolve(flagsNode.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, fail(k, "flags", "want a flag name, got %s", kindName(k))
		}
		field := "flags." + k.Value
		if err := ValidName(k.Value); err != nil {
			return nil, fail(k, field, "%w", err)
		}
		if first, dup := lines[k.Value]; dup {
			return nil, fail(k, field, "flag given twice (first on line %d)", first)
		}
		lines[k.Value] = k.Line
		var d Definition
		switch v.Kind {
		case yaml.ScalarNode:
			val, err := scalarValue(v)
			if err != nil {
				return nil, fail(v, field, "%w", err)
			}
			d.Default = val
		case yaml.MappingNode:
			seen := map[string]bool{}
			for j := 0; j+1 < len(v.Content); j += 2 {
				fk, fv := v.Content[j], resolve(v.Content[j+1])
				sub := field + "." + fk.Value
				if fk.Kind != yaml.ScalarNode || (fk.Value != "enabled" && fk.Value != "description") {
					return nil, fail(fk, sub, "unknown key; a flag has enabled and description")
				}
				if seen[fk.Value] {
					return nil, fail(fk, sub, "given twice")
				}
				seen[fk.Value] = true
				switch fk.Value {
				case "enabled":
					val, err := scalarValue(fv)
					if err != nil {
						return nil, fail(fv, sub, "%w", err)
					}
					d.Default = val
				case "description":
					if fv.Kind != yaml.ScalarNode {
						return nil, fail(fv, sub, "want text, got %s", kindName(fv))
					}
					if !isNull(fv) {
						d.Description = fv.Value
					}
				}
			}
		default:
			return nil, fail(v, field, "want true, false, on, off or a mapping with enabled and description, got %s", kindName(v))
		}
		defs[k.Value] = d
	}
	return defs, nil
}

// scalarValue reads a flag value: a YAML boolean, on/off, or null (unset).
func scalarValue(n *yaml.Node) (Value, error) {
	if n.Kind != yaml.ScalarNode {
		return Unset, fmt.Errorf("%w: want true, false, on or off, got %s", ErrInvalidValue, kindName(n))
	}
	if isNull(n) {
		return Unset, nil
	}
	if n.ShortTag() == "!!bool" {
		if b, err := strconv.ParseBool(strings.ToLower(n.Value)); err == nil {
			return ValueOf(b), nil
		}
	}
	if n.ShortTag() == "!!str" {
		switch strings.ToLower(n.Value) {
		case "on":
			return On, nil
		case "off":
			return Off, nil
		}
	}
	return Unset, fmt.Errorf("%w: want true, false, on or off, got %q", ErrInvalidValue, n.Value)
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlError turns a YAML syntax error into a FileError with its line.
func yamlError(name string, err error) error {
	e := &FileError{File: name, Err: err}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = strings.TrimPrefix(strings.Replace(msg, m[0], "", 1), ": ")
	}
	e.Err = fmt.Errorf("not valid YAML or JSON: %s", msg)
	return e
}
