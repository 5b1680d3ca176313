package jetsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/jetsource/jetsource/subjects"
)

// SchemaViolationError describes event data refused by the schema of its
// type. It matches [ErrSchemaViolation] with [errors.Is], and also its
// cause when there is one ([ErrInvalidData] for data that is not JSON).
type SchemaViolationError struct {
	// Type is the event type.
	Type string
	// Revision is the schema revision the data was checked against (or
	// the revision that has no schema).
	Revision int
	// InstanceLocation is the JSON pointer of the failing value in the
	// data, such as /address/zip; empty for the whole document.
	InstanceLocation string
	// KeywordLocation is the JSON pointer of the failed rule in the
	// schema, such as /properties/address/properties/zip/pattern.
	KeywordLocation string
	// Keyword is the failed rule, such as required or minLength; empty
	// when the failure is no single rule (a false schema, data that is
	// not JSON, a revision with no schema).
	Keyword string
	// Message tells what is wrong, in the words of the validator.
	Message string
	// Others is the number of further failures in the same data. Only
	// the deepest one is described.
	Others int
	// Err is the cause, if any: the validator's error, or
	// [ErrInvalidData].
	Err error
}

// Error names the type, the revision, the location of the failing value
// and the rule.
func (e *SchemaViolationError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %s revision %d: ", ErrSchemaViolation, e.Type, e.Revision)
	if e.Keyword != "" || e.KeywordLocation != "" {
		if e.InstanceLocation == "" {
			sb.WriteString("at the root: ")
		} else {
			fmt.Fprintf(&sb, "at %s: ", e.InstanceLocation)
		}
		// The validator's message may already start with the keyword.
		if e.Keyword != "" && !strings.HasPrefix(e.Message, e.Keyword+":") {
			fmt.Fprintf(&sb, "%s: ", e.Keyword)
		}
	}
	sb.WriteString(e.Message)
	if e.Others > 0 {
		fmt.Fprintf(&sb, " (and %d more)", e.Others)
	}
	return sb.String()
}

// Unwrap returns [ErrSchemaViolation] and the cause.
func (e *SchemaViolationError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrSchemaViolation, e.Err}
	}
	return []error{ErrSchemaViolation}
}

// Upcaster lifts the data of an event from one schema revision of its type
// to the next. It gets a copy of the event it may modify; the result's
// SchemaRevision is set by [Schemas.Upcast], and its type must not change.
type Upcaster func(Event) (Event, error)

// Schemas is a registry of JSON Schemas (draft 2020-12 unless a schema's
// $schema says otherwise) per event type and revision, plus the upcasters
// that lift stored events from old revisions to the current one. The
// current revision of a type is the highest one registered.
//
// The zero value is an empty registry ready to use. A Schemas is safe for
// concurrent use; schemas and upcasters may be added while events are
// being validated.
type Schemas struct {
	strict        bool
	assertFormats bool

	mu        sync.RWMutex
	types     map[string]*typeSchemas
	upcasters map[string]map[int]Upcaster
}

type typeSchemas struct {
	current   int
	revisions map[int]*jsonschema.Schema
}

// SchemaOption configures a [Schemas] registry.
type SchemaOption func(*Schemas) error

// StrictTypes makes the registry refuse events whose type has no schema
// with [ErrUnknownEventType]. By default such events pass unchecked.
func StrictTypes() SchemaOption {
	return func(s *Schemas) error {
		s.strict = true
		return nil
	}
}

// AssertFormats makes the format keyword a rule (date-time, email, uuid and
// the other formats the validator knows), as in JSON Schema drafts before
// 2019-09. By default format is only an annotation, as draft 2020-12
// specifies.
func AssertFormats() SchemaOption {
	return func(s *Schemas) error {
		s.assertFormats = true
		return nil
	}
}

// NewSchemas returns an empty registry; add schemas with [Schemas.Add].
//
// Options: [StrictTypes], [AssertFormats]. A bad option returns an error
// matching [ErrInvalidOption].
func NewSchemas(opts ...SchemaOption) (*Schemas, error) {
	s := &Schemas{}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// revisionFileName matches <event type>.v<N>.json; badRevisionName a file
// name that tries to name a revision but names none.
var (
	revisionFileName = regexp.MustCompile(`^(.+)\.v([1-9][0-9]*)\.json$`)
	badRevisionName  = regexp.MustCompile(`\.v[0-9]*\.json$`)
)

// LoadSchemas reads the JSON Schemas of a directory: each file
// <event type>.json holds revision 1 of the type's schema, each file
// <event type>.v<N>.json revision N (N from 1, no leading zeros). Every
// such file is the schema of a type, even one that only holds definitions
// for the others. Other files, hidden files and subdirectories are
// ignored. A schema may refer to another
// file of the directory by its name ({"$ref": "common.json#/$defs/x"});
// references outside the directory are refused, so loading never reads
// anything else and does no network I/O.
//
// Options: [StrictTypes], [AssertFormats].
//
// It returns an error matching [ErrInvalidSchema] that names the file (and
// the line and column of a JSON syntax error, or the location of the
// offending keyword in the schema) for a file that is not JSON, not a
// valid schema, or whose name is a bad revision or repeats one; an error
// matching [ErrInvalidOption] for a bad option; and the [os.ReadDir] or
// [os.ReadFile] error when the directory cannot be read.
func LoadSchemas(dir string, opts ...SchemaOption) (*Schemas, error) {
	s, err := NewSchemas(opts...)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := s.compiler()
	type file struct {
		name, typ, url string
		rev            int
	}
	var files []file
	seen := map[string]string{} // type and revision -> file name
	for _, de := range entries {
		name := de.Name()
		if de.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		f := file{name: path, url: fileURL(filepath.Join(abs, name))}
		if m := revisionFileName.FindStringSubmatch(name); m != nil {
			f.typ = m[1]
			if f.rev, err = strconv.Atoi(m[2]); err != nil || f.rev > maxRevision {
				return nil, fmt.Errorf("%w: %s: revision %s is too large", ErrInvalidSchema, path, m[2])
			}
		} else if badRevisionName.MatchString(name) {
			return nil, fmt.Errorf("%w: %s: the revision must be a number from 1 with no leading zeros, as in %s.v2.json", ErrInvalidSchema, path, strings.TrimSuffix(badRevisionName.ReplaceAllString(name, ""), "."))
		} else {
			f.typ, f.rev = strings.TrimSuffix(name, ".json"), 1
		}
		if err := checkSchemaType(f.typ); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		key := f.typ + "\x00" + strconv.Itoa(f.rev)
		if other, dup := seen[key]; dup {
			return nil, fmt.Errorf("%w: %s and %s both hold revision %d of %s", ErrInvalidSchema, other, path, f.rev, f.typ)
		}
		seen[key] = path
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		doc, pos, err := parseSchema(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %s%s: not JSON: %v", ErrInvalidSchema, path, pos, err)
		}
		if err := c.AddResource(f.url, doc); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidSchema, path, err)
		}
		files = append(files, f)
	}
	for _, f := range files {
		sch, err := c.Compile(f.url)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %s", ErrInvalidSchema, f.name, compileError(err))
		}
		if err := s.add(f.typ, f.rev, sch); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return s, nil
}

// maxRevision is the largest revision the envelope carries.
const maxRevision = 1<<31 - 1

// Add registers the schema of revision revision (from 1) of an event type,
// given as JSON. The schema may not refer to other documents.
//
// It returns an error matching [ErrInvalidSchema] for an empty type, a
// revision below 1, a revision already registered, or a schema that is
// not JSON or does not compile.
func (s *Schemas) Add(eventType string, revision int, schemaJSON []byte) error {
	if err := checkSchemaType(eventType); err != nil {
		return err
	}
	if revision < 1 || revision > maxRevision {
		return fmt.Errorf("%w: %s: revision %d is outside 1 to %d", ErrInvalidSchema, eventType, revision, maxRevision)
	}
	doc, pos, err := parseSchema(schemaJSON)
	if err != nil {
		return fmt.Errorf("%w: %s revision %d%s: not JSON: %v", ErrInvalidSchema, eventType, revision, pos, err)
	}
	u := (&url.URL{Scheme: "jetsource", Path: "/schemas/" + eventType + ".v" + strconv.Itoa(revision) + ".json"}).String()
	c := s.compiler()
	if err := c.AddResource(u, doc); err != nil {
		return fmt.Errorf("%w: %s revision %d: %v", ErrInvalidSchema, eventType, revision, err)
	}
	sch, err := c.Compile(u)
	if err != nil {
		return fmt.Errorf("%w: %s revision %d: %s", ErrInvalidSchema, eventType, revision, compileError(err))
	}
	return s.add(eventType, revision, sch)
}

func (s *Schemas) add(eventType string, revision int, sch *jsonschema.Schema) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.types == nil {
		s.types = map[string]*typeSchemas{}
	}
	ts := s.types[eventType]
	if ts == nil {
		ts = &typeSchemas{revisions: map[int]*jsonschema.Schema{}}
		s.types[eventType] = ts
	}
	if _, dup := ts.revisions[revision]; dup {
		return fmt.Errorf("%w: %s: revision %d is already registered", ErrInvalidSchema, eventType, revision)
	}
	ts.revisions[revision] = sch
	ts.current = max(ts.current, revision)
	return nil
}

// compiler returns a compiler with the registry's settings that loads no
// document it was not given.
func (s *Schemas) compiler() *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if s.assertFormats {
		c.AssertFormat()
	}
	return c
}

// noLoader refuses every reference to a document that was not added.
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, errors.New("a schema may refer only to the files of its schema directory")
}

func fileURL(path string) string {
	path = filepath.ToSlash(path)
	if !strings.HasPrefix(path, "/") {
		path = "/" + path // a Windows drive
	}
	return (&url.URL{Scheme: "file", Path: path}).String()
}

func checkSchemaType(t string) error {
	if strings.TrimSpace(t) == "" {
		return fmt.Errorf("%w: empty event type", ErrInvalidSchema)
	}
	if strings.ContainsFunc(t, func(r rune) bool { return unicode.IsSpace(r) || isControl(r) }) {
		return fmt.Errorf("%w: event type %q contains white space or a control character", ErrInvalidSchema, t)
	}
	return nil
}

// parseSchema decodes a schema document. For a JSON syntax error it also
// returns the position, as ":line:column".
func parseSchema(data []byte) (doc any, pos string, err error) {
	doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(data))
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineColumn(data, se.Offset)
		pos = fmt.Sprintf(":%d:%d", line, col)
	}
	return doc, pos, err
}

// lineColumn returns the 1-based line and column of the last byte a JSON
// decoder read before it failed at offset.
func lineColumn(data []byte, offset int64) (line, col int) {
	i := int(min(max(offset-1, 0), int64(len(data))))
	line = 1 + bytes.Count(data[:i], []byte("\n"))
	col = i - (bytes.LastIndexByte(data[:i], '\n') + 1) + 1
	return line, col
}

// compileError describes a compilation error; a schema that breaks the
// metaschema is described by its deepest failure.
func compileError(err error) string {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		leaf, others := deepestLeaf(ve)
		msg := fmt.Sprintf("not a valid schema: at %s: %s", pointerOrRoot(leaf.InstanceLocation), leaf.Error)
		if k := keywordOf(leaf); k != "" && !strings.HasPrefix(leaf.Error.String(), k+":") {
			msg = fmt.Sprintf("not a valid schema: at %s: %s: %s", pointerOrRoot(leaf.InstanceLocation), k, leaf.Error)
		}
		if others > 0 {
			msg += fmt.Sprintf(" (and %d more)", others)
		}
		return msg
	}
	return err.Error()
}

func pointerOrRoot(p string) string {
	if p == "" {
		return "the root"
	}
	return p
}

// deepestLeaf returns the failure of the detailed output whose value lies
// deepest in the instance (the first of equals), and the number of other
// failures.
func deepestLeaf(ve *jsonschema.ValidationError) (jsonschema.OutputUnit, int) {
	var best jsonschema.OutputUnit
	depth, n := -1, 0
	var walk func(u jsonschema.OutputUnit)
	walk = func(u jsonschema.OutputUnit) {
		if len(u.Errors) == 0 {
			if u.Error == nil {
				return
			}
			n++
			if d := strings.Count(u.InstanceLocation, "/"); d > depth {
				best, depth = u, d
			}
			return
		}
		for _, c := range u.Errors {
			walk(c)
		}
	}
	walk(*ve.DetailedOutput())
	return best, max(n-1, 0)
}

// keywordOf returns the keyword of a failure: the first token of its kind's
// keyword path (required, minLength, dependentRequired, ...).
func keywordOf(u jsonschema.OutputUnit) string {
	if u.Error == nil {
		return ""
	}
	if p := u.Error.Kind.KeywordPath(); len(p) > 0 {
		return p[0]
	}
	return ""
}

// schemaType is the type an event has or will have once prepared.
func schemaType(e Event) string {
	if e.Type != "" {
		return e.Type
	}
	if !e.Subject.IsZero() {
		return TypeFromSubject(e.Subject)
	}
	return ""
}

// CurrentRevision returns the current (highest) schema revision of an event
// type, or 0 when the type has no schema.
func (s *Schemas) CurrentRevision(eventType string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ts := s.types[eventType]; ts != nil {
		return ts.current
	}
	return 0
}

// Types returns the event types that have a schema, sorted.
func (s *Schemas) Types() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Sorted(maps.Keys(s.types))
}

// Stamp returns the event with SchemaRevision set to the current revision
// of its type when it is 0 and the type has a schema. The type is the
// event's Type, or the one derived from its subject with
// [TypeFromSubject] when Type is empty.
func (s *Schemas) Stamp(e Event) Event {
	if e.SchemaRevision == 0 {
		e.SchemaRevision = s.CurrentRevision(schemaType(e))
	}
	return e
}

// Validate checks an event's data against the schema of its type and
// revision (revision 0: the current one). The type is the event's Type, or
// the one derived from its subject when Type is empty. Events of a type
// with no schema pass, unless the registry was made with [StrictTypes].
//
// The data of a type with a schema must be JSON: its content type must be
// empty or a JSON media type. Empty data is checked as the JSON value
// null.
//
// It returns a [*SchemaViolationError] matching [ErrSchemaViolation] when
// the data breaks the schema (the error names the type, the revision, the
// JSON pointer of the failing value and the failed rule), is not JSON
// (then it matches [ErrInvalidData] too), or when the revision has no
// schema; and an error matching [ErrUnknownEventType] for a type with no
// schema in a strict registry.
func (s *Schemas) Validate(e Event) error {
	typ := schemaType(e)
	s.mu.RLock()
	ts := s.types[typ]
	var current int
	var sch *jsonschema.Schema
	rev := e.SchemaRevision
	if ts != nil {
		current = ts.current
		if rev == 0 {
			rev = current
		}
		sch = ts.revisions[rev]
	}
	s.mu.RUnlock()
	if ts == nil {
		if s.strict {
			return fmt.Errorf("%w: %q has no schema", ErrUnknownEventType, typ)
		}
		return nil
	}
	if sch == nil {
		return &SchemaViolationError{Type: typ, Revision: rev, Message: fmt.Sprintf("revision %d has no schema (the current revision is %d)", rev, current)}
	}
	if ct := e.DataContentType; ct != "" && ct != "application/json" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !isJSONMediaType(mt) {
			return &SchemaViolationError{Type: typ, Revision: rev, Message: fmt.Sprintf("content type %q is not JSON", ct)}
		}
	}
	var doc any
	if len(e.Data) > 0 {
		var err error
		if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(e.Data)); err != nil {
			return &SchemaViolationError{Type: typ, Revision: rev, Message: "data is not JSON: " + err.Error(), Err: ErrInvalidData}
		}
	}
	err := sch.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &SchemaViolationError{Type: typ, Revision: rev, Message: err.Error(), Err: err}
	}
	leaf, others := deepestLeaf(ve)
	msg := ""
	if leaf.Error != nil {
		msg = leaf.Error.String()
	}
	return &SchemaViolationError{
		Type: typ, Revision: rev,
		InstanceLocation: leaf.InstanceLocation, KeywordLocation: leaf.KeywordLocation,
		Keyword: keywordOf(leaf), Message: msg, Others: others, Err: ve,
	}
}

// RegisterUpcaster registers the upcaster that lifts events of a type from
// revision fromRevision to fromRevision+1. Upcasters may be registered
// before or after the type's schemas.
//
// It returns an error matching [ErrInvalidSchema] for an empty type, a
// revision below 1, a nil upcaster, or a step already registered.
func (s *Schemas) RegisterUpcaster(eventType string, fromRevision int, up Upcaster) error {
	if err := checkSchemaType(eventType); err != nil {
		return err
	}
	if fromRevision < 1 || fromRevision >= maxRevision {
		return fmt.Errorf("%w: %s: upcaster from revision %d: the revision must be from 1 to %d", ErrInvalidSchema, eventType, fromRevision, maxRevision-1)
	}
	if up == nil {
		return fmt.Errorf("%w: %s: nil upcaster from revision %d", ErrInvalidSchema, eventType, fromRevision)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upcasters == nil {
		s.upcasters = map[string]map[int]Upcaster{}
	}
	if s.upcasters[eventType] == nil {
		s.upcasters[eventType] = map[int]Upcaster{}
	}
	if _, dup := s.upcasters[eventType][fromRevision]; dup {
		return fmt.Errorf("%w: %s: an upcaster from revision %d is already registered", ErrInvalidSchema, eventType, fromRevision)
	}
	s.upcasters[eventType][fromRevision] = up
	return nil
}

// Upcast lifts an event to the current revision of its type, applying the
// upcaster of each step in turn; each step's result gets the next
// revision. An event with revision 0, of the current revision, or of a
// type with no schema is returned unchanged. The argument is not modified.
//
// It returns an error matching [ErrUpcast], naming the type and revision,
// when a step has no upcaster, an upcaster fails (its error is wrapped
// too) or changes the type, or the event's revision is newer than the
// current one.
func (s *Schemas) Upcast(e Event) (Event, error) {
	if e.SchemaRevision == 0 {
		return e, nil
	}
	typ := schemaType(e)
	current := s.CurrentRevision(typ)
	switch {
	case current == 0 || e.SchemaRevision == current:
		return e, nil
	case e.SchemaRevision > current:
		return e, fmt.Errorf("%w: %s revision %d is newer than the current revision %d", ErrUpcast, typ, e.SchemaRevision, current)
	}
	out := e.Clone()
	for rev := e.SchemaRevision; rev < current; rev++ {
		s.mu.RLock()
		up := s.upcasters[typ][rev]
		s.mu.RUnlock()
		if up == nil {
			return e, fmt.Errorf("%w: %s has no upcaster from revision %d to %d", ErrUpcast, typ, rev, rev+1)
		}
		next, err := up(out)
		if err != nil {
			return e, fmt.Errorf("%w: %s from revision %d to %d: %w", ErrUpcast, typ, rev, rev+1, err)
		}
		if got := schemaType(next); got != typ {
			return e, fmt.Errorf("%w: %s from revision %d to %d: the upcaster changed the type to %q", ErrUpcast, typ, rev, rev+1, got)
		}
		next.SchemaRevision = rev + 1
		out = next
	}
	return out, nil
}

// WithSchemas returns a [Store] that checks events against sc before
// writing them to s and upcasts the events it reads from s.
//
// Append and AppendBatch stamp each event with the current revision of its
// type ([Schemas.Stamp]) and validate it ([Schemas.Validate]); a batch is
// validated whole before anything is written, so one bad event stops it.
// Besides the errors of s they return those of [Schemas.Validate]; the
// error of a batch names the index of the bad event.
//
// Read, Load and Latest lift every event to the current revision of its
// type ([Schemas.Upcast]); an event that cannot be lifted ends the
// iteration with an error matching [ErrUpcast]. LastSequence is that of s.
//
// A nil sc returns s itself.
func WithSchemas(s Store, sc *Schemas) Store {
	if sc == nil {
		return s
	}
	return &schemaStore{store: s, schemas: sc}
}

type schemaStore struct {
	store   Store
	schemas *Schemas
}

var _ Store = (*schemaStore)(nil)

func (s *schemaStore) Append(ctx context.Context, e Event, opts ...AppendOption) (Ack, error) {
	e = s.schemas.Stamp(e)
	if err := s.schemas.Validate(e); err != nil {
		return Ack{}, err
	}
	return s.store.Append(ctx, e, opts...)
}

func (s *schemaStore) AppendBatch(ctx context.Context, events []Event, opts ...AppendOption) ([]Ack, error) {
	stamped := make([]Event, len(events))
	for i, e := range events {
		stamped[i] = s.schemas.Stamp(e)
		if err := s.schemas.Validate(stamped[i]); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return s.store.AppendBatch(ctx, stamped, opts...)
}

func (s *schemaStore) Read(ctx context.Context, q Query) iter.Seq2[Event, error] {
	return s.upcast(s.store.Read(ctx, q))
}

func (s *schemaStore) Load(ctx context.Context, aggregate subjects.Subject, from uint64) iter.Seq2[Event, error] {
	return s.upcast(s.store.Load(ctx, aggregate, from))
}

func (s *schemaStore) Latest(ctx context.Context, filter subjects.Filter) iter.Seq2[Event, error] {
	return s.upcast(s.store.Latest(ctx, filter))
}

func (s *schemaStore) LastSequence(ctx context.Context, filter subjects.Filter) (uint64, error) {
	return s.store.LastSequence(ctx, filter)
}

func (s *schemaStore) upcast(seq iter.Seq2[Event, error]) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for e, err := range seq {
			if err != nil {
				if !yield(e, err) {
					return
				}
				continue
			}
			up, err := s.schemas.Upcast(e)
			if err != nil {
				yield(Event{}, fmt.Errorf("sequence %d: %w", e.Sequence, err))
				return
			}
			if !yield(up, nil) {
				return
			}
		}
	}
}
