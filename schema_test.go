package jetsource_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"strings"
	"sync"
	"testing"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/storetest"
	"github.com/jetsource/jetsource/subjects"
)

// loadTestSchemas loads testdata/schemas: users.added (revision 1, with an
// address from common.json), users.renamed (revisions 1 and 2) and common.
func loadTestSchemas(t testing.TB, opts ...jetsource.SchemaOption) *jetsource.Schemas {
	t.Helper()
	sc, err := jetsource.LoadSchemas("testdata/schemas", opts...)
	if err != nil {
		t.Fatalf("LoadSchemas: %v", err)
	}
	return sc
}

// splitName lifts users.renamed from revision 1 ({"name": "Ann Lee"}) to
// revision 2 ({"first": "Ann", "last": "Lee"}).
func splitName(e jetsource.Event) (jetsource.Event, error) {
	var v1 struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(e.Data, &v1); err != nil {
		return e, err
	}
	first, last, _ := strings.Cut(v1.Name, " ")
	data, err := json.Marshal(map[string]string{"first": first, "last": last})
	if err != nil {
		return e, err
	}
	e.Data = data
	return e, nil
}

func schemaMemoryStore(t testing.TB) *jetsource.MemoryStore {
	t.Helper()
	st, err := jetsource.NewMemoryStore()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func schemaEvent(subject, data string) jetsource.Event {
	return jetsource.Event{Subject: subjects.MustParse(subject), Data: []byte(data)}
}

func schemaLastSequence(t testing.TB, st jetsource.Store) uint64 {
	t.Helper()
	seq, err := st.LastSequence(context.Background(), subjects.MustParseFilter(">"))
	if err != nil {
		t.Fatalf("LastSequence: %v", err)
	}
	return seq
}

func schemaCollect(t testing.TB, seq iter.Seq2[jetsource.Event, error]) ([]jetsource.Event, error) {
	t.Helper()
	var evs []jetsource.Event
	for e, err := range seq {
		if err != nil {
			return evs, err
		}
		evs = append(evs, e)
	}
	return evs, nil
}

func schemaMentions(t testing.TB, err error, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestLoadSchemas(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		sc := loadTestSchemas(t)
		if got, want := strings.Join(sc.Types(), " "), "common users.added users.renamed"; got != want {
			t.Errorf("Types() = %q, want %q (README.txt is no schema)", got, want)
		}
		for typ, want := range map[string]int{"users.added": 1, "users.renamed": 2, "common": 1, "users.removed": 0} {
			if got := sc.CurrentRevision(typ); got != want {
				t.Errorf("CurrentRevision(%q) = %d, want %d", typ, got, want)
			}
		}
	})
	t.Run("OK/references between files of the directory", func(t *testing.T) {
		sc := loadTestSchemas(t)
		err := sc.Validate(schemaEvent("users.A.added", `{"name": "Ann", "email": "ann@example.com", "address": {"zip": "1234"}}`))
		if !errors.Is(err, jetsource.ErrSchemaViolation) {
			t.Fatalf("zip from common.json not checked: got %v, want %v", err, jetsource.ErrSchemaViolation)
		}
		schemaMentions(t, err, "/address/zip", "pattern")
	})
	for _, tt := range []struct {
		name    string
		dir     string
		want    error
		mention []string
	}{
		{
			name: "ErrInvalidSchema/syntax error names file, line and column",
			dir:  "schemas-broken/syntax", want: jetsource.ErrInvalidSchema,
			mention: []string{"users.added.json:4:31", "not JSON"},
		},
		{
			name: "ErrInvalidSchema/bad keyword names file and location",
			dir:  "schemas-broken/keyword", want: jetsource.ErrInvalidSchema,
			mention: []string{"users.added.json", "/properties/name/minLength", "want integer"},
		},
		{
			name: "ErrInvalidSchema/revision 0 in the file name",
			dir:  "schemas-broken/revision", want: jetsource.ErrInvalidSchema,
			mention: []string{"users.added.v0.json", "revision"},
		},
		{
			name: "ErrInvalidSchema/revision 1 twice",
			dir:  "schemas-broken/duplicate", want: jetsource.ErrInvalidSchema,
			mention: []string{"users.added.json", "users.added.v1.json", "revision 1"},
		},
		{
			name: "ErrInvalidSchema/reference outside the directory",
			dir:  "schemas-broken/outside", want: jetsource.ErrInvalidSchema,
			mention: []string{"users.added.json", "common.json"},
		},
		{
			name: "ErrNotExist/no directory",
			dir:  "no-such-dir", want: fs.ErrNotExist,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := jetsource.LoadSchemas("testdata/" + tt.dir)
			if !errors.Is(err, tt.want) {
				t.Fatalf("LoadSchemas(%q) = %v, %v; want error %v", tt.dir, sc, err, tt.want)
			}
			schemaMentions(t, err, tt.mention...)
		})
	}
}

func TestSchemasAdd(t *testing.T) {
	for _, tt := range []struct {
		name     string
		typ      string
		revision int
		schema   string
		want     error
		mention  []string
	}{
		{name: "OK", typ: "users.added", revision: 1, schema: `{"type": "object"}`},
		{name: "OK/boolean schema", typ: "users.added", revision: 1, schema: `true`},
		{name: "OK/local reference", typ: "users.added", revision: 1, schema: `{"$defs": {"n": {"type": "string"}}, "properties": {"name": {"$ref": "#/$defs/n"}}}`},
		{name: "ErrInvalidSchema/empty type", typ: "", revision: 1, schema: `{}`, want: jetsource.ErrInvalidSchema, mention: []string{"empty event type"}},
		{name: "ErrInvalidSchema/type with a space", typ: "users added", revision: 1, schema: `{}`, want: jetsource.ErrInvalidSchema},
		{name: "ErrInvalidSchema/revision 0", typ: "users.added", revision: 0, schema: `{}`, want: jetsource.ErrInvalidSchema, mention: []string{"revision 0"}},
		{name: "ErrInvalidSchema/not JSON", typ: "users.added", revision: 1, schema: "{\n  \"type\": object\n}", want: jetsource.ErrInvalidSchema, mention: []string{"users.added revision 1:2:11", "not JSON"}},
		{name: "ErrInvalidSchema/not a schema", typ: "users.added", revision: 2, schema: `{"type": "objekt"}`, want: jetsource.ErrInvalidSchema, mention: []string{"users.added revision 2", "/type"}},
		{name: "ErrInvalidSchema/external reference", typ: "users.added", revision: 1, schema: `{"$ref": "https://example.com/user.json"}`, want: jetsource.ErrInvalidSchema, mention: []string{"example.com"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := jetsource.NewSchemas()
			if err != nil {
				t.Fatal(err)
			}
			err = sc.Add(tt.typ, tt.revision, []byte(tt.schema))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Add = %v, want %v", err, tt.want)
			}
			if err != nil {
				schemaMentions(t, err, tt.mention...)
				if got := sc.CurrentRevision(tt.typ); got != 0 {
					t.Errorf("CurrentRevision after a failed Add = %d, want 0", got)
				}
				return
			}
			if got := sc.CurrentRevision(tt.typ); got != tt.revision {
				t.Errorf("CurrentRevision = %d, want %d", got, tt.revision)
			}
		})
	}
	t.Run("ErrInvalidSchema/revision twice", func(t *testing.T) {
		var sc jetsource.Schemas // the zero value is ready to use
		if err := sc.Add("users.added", 1, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		err := sc.Add("users.added", 1, []byte(`{}`))
		if !errors.Is(err, jetsource.ErrInvalidSchema) {
			t.Fatalf("second Add = %v, want %v", err, jetsource.ErrInvalidSchema)
		}
		schemaMentions(t, err, "users.added", "revision 1")
	})
	t.Run("OK/highest revision is current", func(t *testing.T) {
		var sc jetsource.Schemas
		for _, rev := range []int{2, 5, 3} {
			if err := sc.Add("users.added", rev, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := sc.CurrentRevision("users.added"), 5; got != want {
			t.Errorf("CurrentRevision = %d, want %d", got, want)
		}
	})
}

func TestSchemasValidate(t *testing.T) {
	sc := loadTestSchemas(t, jetsource.AssertFormats())
	if err := sc.Add("users.invited", 1, []byte(`{"properties": {"email": {"format": "email"}}}`)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		event   jetsource.Event
		want    error
		also    error // a second error the result must match
		mention []string
		// For a [*jetsource.SchemaViolationError]:
		location, keyword string
		revision          int
	}{
		{
			name:  "OK",
			event: schemaEvent("users.A.added", `{"name": "Ann", "email": "ann@example.com", "address": {"zip": "12345"}}`),
		},
		{
			name:  "OK/type with no schema",
			event: schemaEvent("users.A.removed", `"anything"`),
		},
		{
			name:  "OK/type with no schema and no JSON",
			event: jetsource.Event{Subject: subjects.MustParse("users.A.photo"), DataContentType: "image/png", Data: []byte{0x89, 'P', 'N', 'G'}},
		},
		{
			name: "OK/an older revision against its own schema",
			event: func() jetsource.Event {
				e := schemaEvent("users.A.renamed", `{"name": "Ann Lee"}`)
				e.SchemaRevision = 1
				return e
			}(),
		},
		{
			name: "OK/JSON media type with parameters",
			event: func() jetsource.Event {
				e := schemaEvent("users.A.renamed", `{"first": "Ann", "last": "Lee"}`)
				e.DataContentType = "application/vnd.users+json; charset=utf-8"
				return e
			}(),
		},
		{
			name: "OK/Type wins over the subject",
			event: func() jetsource.Event {
				e := schemaEvent("users.A.renamed", `{"name": "Ann"}`)
				e.Type = "users.unchecked"
				return e
			}(),
		},
		{
			name:  "ErrSchemaViolation/required property missing",
			event: schemaEvent("users.A.added", `{"name": "Ann"}`),
			want:  jetsource.ErrSchemaViolation, location: "", keyword: "required", revision: 1,
			mention: []string{"users.added revision 1", "at the root", "required", "'email'"},
		},
		{
			name:  "ErrSchemaViolation/string too short",
			event: schemaEvent("users.A.added", `{"name": "", "email": "ann@example.com"}`),
			want:  jetsource.ErrSchemaViolation, location: "/name", keyword: "minLength", revision: 1,
			mention: []string{"users.added", "/name", "minLength"},
		},
		{
			name:  "ErrSchemaViolation/deepest failure is named",
			event: schemaEvent("users.A.added", `{"name": 7, "email": "ann@example.com", "address": {"zip": "1"}}`),
			want:  jetsource.ErrSchemaViolation, location: "/address/zip", keyword: "pattern", revision: 1,
			mention: []string{"/address/zip", "pattern", "and 1 more"},
		},
		{
			name:  "ErrSchemaViolation/additional property",
			event: schemaEvent("users.A.added", `{"name": "Ann", "email": "ann@example.com", "age": 3}`),
			want:  jetsource.ErrSchemaViolation, location: "", keyword: "additionalProperties", revision: 1,
			mention: []string{"additionalProperties", "'age'"},
		},
		{
			name:  "ErrSchemaViolation/revision 0 is checked against the current revision",
			event: schemaEvent("users.A.renamed", `{"name": "Ann Lee"}`),
			want:  jetsource.ErrSchemaViolation, keyword: "required", revision: 2,
			mention: []string{"users.renamed revision 2"},
		},
		{
			name:  "ErrSchemaViolation/revision with no schema",
			event: func() jetsource.Event { e := schemaEvent("users.A.renamed", `{}`); e.SchemaRevision = 3; return e }(),
			want:  jetsource.ErrSchemaViolation, revision: 3,
			mention: []string{"users.renamed revision 3", "no schema", "current revision is 2"},
		},
		{
			name: "ErrSchemaViolation/not a JSON content type",
			event: func() jetsource.Event {
				e := schemaEvent("users.A.added", `name=Ann`)
				e.DataContentType = "text/plain"
				return e
			}(),
			want: jetsource.ErrSchemaViolation, revision: 1,
			mention: []string{"users.added", `"text/plain"`, "not JSON"},
		},
		{
			name:  "ErrSchemaViolation/data not JSON",
			event: schemaEvent("users.A.added", `{"name": `),
			want:  jetsource.ErrSchemaViolation, also: jetsource.ErrInvalidData, revision: 1,
			mention: []string{"users.added", "not JSON"},
		},
		{
			name:  "ErrSchemaViolation/no data is null",
			event: schemaEvent("users.A.added", ``),
			want:  jetsource.ErrSchemaViolation, keyword: "type", revision: 1,
			mention: []string{"got null, want object"},
		},
		{
			name:  "ErrSchemaViolation/format asserted",
			event: schemaEvent("users.A.invited", `{"email": "not an address"}`),
			want:  jetsource.ErrSchemaViolation, location: "/email", keyword: "format", revision: 1,
			mention: []string{"/email", "format", "email"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := sc.Validate(tt.event)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Errorf("Validate = %v, want it to match %v too", err, tt.also)
			}
			schemaMentions(t, err, tt.mention...)
			var ve *jetsource.SchemaViolationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %T, want a *SchemaViolationError", err)
			}
			if got, want := ve.Type, jetsource.TypeFromSubject(tt.event.Subject); got != want {
				t.Errorf("Type = %q, want %q", got, want)
			}
			if ve.Revision != tt.revision {
				t.Errorf("Revision = %d, want %d", ve.Revision, tt.revision)
			}
			if ve.InstanceLocation != tt.location {
				t.Errorf("InstanceLocation = %q, want %q", ve.InstanceLocation, tt.location)
			}
			if ve.Keyword != tt.keyword {
				t.Errorf("Keyword = %q, want %q", ve.Keyword, tt.keyword)
			}
		})
	}
}

func TestSchemasStrictTypes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		opts  []jetsource.SchemaOption
		event jetsource.Event
		want  error
	}{
		{name: "OK/lenient registry lets unknown types pass", event: schemaEvent("users.A.removed", `{}`)},
		{name: "OK/strict registry checks known types", opts: []jetsource.SchemaOption{jetsource.StrictTypes()}, event: schemaEvent("users.A.renamed", `{"first": "Ann", "last": ""}`)},
		{name: "ErrUnknownEventType", opts: []jetsource.SchemaOption{jetsource.StrictTypes()}, event: schemaEvent("users.A.removed", `{}`), want: jetsource.ErrUnknownEventType},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc := loadTestSchemas(t, tt.opts...)
			err := sc.Validate(tt.event)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			if err != nil {
				schemaMentions(t, err, "users.removed")
			}
		})
	}
}

func TestSchemasStamp(t *testing.T) {
	sc := loadTestSchemas(t)
	for _, tt := range []struct {
		name  string
		event jetsource.Event
		want  int
	}{
		{name: "OK/current revision", event: schemaEvent("users.A.renamed", `{}`), want: 2},
		{name: "OK/revision kept", event: func() jetsource.Event { e := schemaEvent("users.A.renamed", `{}`); e.SchemaRevision = 1; return e }(), want: 1},
		{name: "OK/type with no schema stays unset", event: schemaEvent("users.A.removed", `{}`), want: 0},
		{name: "OK/explicit type", event: func() jetsource.Event { e := schemaEvent("x.y", `{}`); e.Type = "users.added"; return e }(), want: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := sc.Stamp(tt.event).SchemaRevision; got != tt.want {
				t.Errorf("Stamp().SchemaRevision = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestValidatingStoreAppend(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		event    jetsource.Event
		want     error
		revision int // of the stored event
	}{
		{name: "OK/stamped with the current revision", event: schemaEvent("users.A.renamed", `{"first": "Ann", "last": "Lee"}`), revision: 2},
		{name: "OK/old revision kept", event: func() jetsource.Event {
			e := schemaEvent("users.A.renamed", `{"name": "Ann"}`)
			e.SchemaRevision = 1
			return e
		}(), revision: 1},
		{name: "OK/type with no schema", event: schemaEvent("users.A.removed", `{}`), revision: 0},
		{name: "ErrSchemaViolation/nothing written", event: schemaEvent("users.A.added", `{"name": "Ann"}`), want: jetsource.ErrSchemaViolation},
		{name: "ErrSchemaViolation/non-JSON data refused", event: func() jetsource.Event {
			e := schemaEvent("users.A.added", `Ann`)
			e.DataContentType = "text/plain"
			return e
		}(), want: jetsource.ErrSchemaViolation},
		{name: "ErrInvalidSubject/errors of the store pass through", event: jetsource.Event{Type: "users.removed", Data: []byte(`{}`)}, want: jetsource.ErrInvalidSubject},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem := schemaMemoryStore(t)
			st := jetsource.WithSchemas(mem, loadTestSchemas(t))
			ack, err := st.Append(ctx, tt.event)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Append = %v, %v; want %v", ack, err, tt.want)
				}
				if got := schemaLastSequence(t, st); got != 0 {
					t.Errorf("LastSequence after a refused append = %d, want 0", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			evs, err := schemaCollect(t, mem.Read(ctx, jetsource.Query{}))
			if err != nil || len(evs) != 1 {
				t.Fatalf("stored events = %v, %v; want 1", evs, err)
			}
			if got := evs[0].SchemaRevision; got != tt.revision {
				t.Errorf("stored SchemaRevision = %d, want %d", got, tt.revision)
			}
			if got := schemaLastSequence(t, st); got != ack.Sequence {
				t.Errorf("LastSequence = %d, want %d", got, ack.Sequence)
			}
		})
	}
}

func TestValidatingStoreAppendBatch(t *testing.T) {
	ctx := context.Background()
	good := schemaEvent("users.A.added", `{"name": "Ann", "email": "ann@example.com"}`)
	bad := schemaEvent("users.B.added", `{"name": "Bob", "email": "bob"}`)
	renamed := schemaEvent("users.A.renamed", `{"first": "Ann", "last": "Lee"}`)
	for _, tt := range []struct {
		name      string
		events    []jetsource.Event
		want      error
		mention   []string
		revisions []int
	}{
		{name: "OK/every event stamped", events: []jetsource.Event{good, renamed, schemaEvent("users.A.removed", `{}`)}, revisions: []int{1, 2, 0}},
		{name: "ErrSchemaViolation/one bad event writes nothing", events: []jetsource.Event{good, bad, renamed}, want: jetsource.ErrSchemaViolation, mention: []string{"event 1", "users.added", "/email", "pattern"}},
		{name: "ErrSchemaViolation/last event bad", events: []jetsource.Event{good, renamed, bad}, want: jetsource.ErrSchemaViolation, mention: []string{"event 2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem := schemaMemoryStore(t)
			st := jetsource.WithSchemas(mem, loadTestSchemas(t))
			acks, err := st.AppendBatch(ctx, tt.events)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("AppendBatch = %v, %v; want %v", acks, err, tt.want)
				}
				schemaMentions(t, err, tt.mention...)
				if got := schemaLastSequence(t, st); got != 0 {
					t.Errorf("LastSequence after a refused batch = %d, want 0", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("AppendBatch: %v", err)
			}
			evs, err := schemaCollect(t, mem.Read(ctx, jetsource.Query{}))
			if err != nil || len(evs) != len(tt.revisions) {
				t.Fatalf("stored events = %v, %v; want %d", evs, err, len(tt.revisions))
			}
			for i, e := range evs {
				if e.SchemaRevision != tt.revisions[i] {
					t.Errorf("event %d: SchemaRevision = %d, want %d", i, e.SchemaRevision, tt.revisions[i])
				}
			}
			for i, e := range tt.events {
				if e.SchemaRevision != 0 {
					t.Errorf("the caller's event %d was modified: SchemaRevision %d", i, e.SchemaRevision)
				}
			}
		})
	}
}

// TestValidatingStoreCompliance checks that the decorator keeps the
// contract of a Store for events of types with no schema.
func TestValidatingStoreCompliance(t *testing.T) {
	storetest.Run(t, storetest.Features{}, func(t testing.TB, _ string) jetsource.Store {
		sc, err := jetsource.NewSchemas()
		if err != nil {
			t.Fatal(err)
		}
		return jetsource.WithSchemas(schemaMemoryStore(t), sc)
	})
}

func TestUpcastOnRead(t *testing.T) {
	ctx := context.Background()
	sc := loadTestSchemas(t)
	if err := sc.RegisterUpcaster("users.renamed", 1, splitName); err != nil {
		t.Fatal(err)
	}
	mem := schemaMemoryStore(t)
	st := jetsource.WithSchemas(mem, sc)
	old := schemaEvent("users.A.renamed", `{"name": "Ann Lee"}`)
	old.SchemaRevision = 1
	if _, err := st.Append(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, schemaEvent("users.B.renamed", `{"first": "Bob", "last": "Ross"}`)); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"first":"Ann","last":"Lee"}`, `{"first": "Bob", "last": "Ross"}`}
	for _, tt := range []struct {
		name string
		read func() iter.Seq2[jetsource.Event, error]
		want []string
	}{
		{name: "Read", read: func() iter.Seq2[jetsource.Event, error] { return st.Read(ctx, jetsource.Query{}) }, want: want},
		{name: "Load", read: func() iter.Seq2[jetsource.Event, error] { return st.Load(ctx, subjects.MustParse("users.A"), 0) }, want: want[:1]},
		{name: "Latest", read: func() iter.Seq2[jetsource.Event, error] {
			return st.Latest(ctx, subjects.MustParseFilter("users.*.renamed"))
		}, want: want},
	} {
		t.Run("OK/"+tt.name, func(t *testing.T) {
			evs, err := schemaCollect(t, tt.read())
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if len(evs) != len(tt.want) {
				t.Fatalf("%s yielded %d events, want %d", tt.name, len(evs), len(tt.want))
			}
			for i, e := range evs {
				if got := string(e.Data); got != tt.want[i] {
					t.Errorf("event %d: data %s, want %s", i, got, tt.want[i])
				}
				if e.SchemaRevision != 2 {
					t.Errorf("event %d: SchemaRevision %d, want 2", i, e.SchemaRevision)
				}
				if err := sc.Validate(e); err != nil {
					t.Errorf("event %d: the upcast event breaks the current schema: %v", i, err)
				}
			}
		})
	}
	t.Run("OK/the stored event is unchanged", func(t *testing.T) {
		evs, err := schemaCollect(t, mem.Read(ctx, jetsource.Query{Limit: 1}))
		if err != nil || len(evs) != 1 {
			t.Fatalf("Read = %v, %v", evs, err)
		}
		if evs[0].SchemaRevision != 1 || string(evs[0].Data) != `{"name": "Ann Lee"}` {
			t.Errorf("stored event = revision %d, data %s; want revision 1 as appended", evs[0].SchemaRevision, evs[0].Data)
		}
	})
}

func TestUpcast(t *testing.T) {
	errBroken := errors.New("broken upcaster")
	revision := func(e jetsource.Event, rev int) jetsource.Event {
		e.Type = jetsource.TypeFromSubject(e.Subject)
		e.SchemaRevision = rev
		return e
	}
	for _, tt := range []struct {
		name      string
		upcasters map[int]jetsource.Upcaster // of users.renamed
		event     jetsource.Event
		want      error
		also      error
		mention   []string
		wantData  string
		wantRev   int
	}{
		{
			name:      "OK/revision 1 to 2",
			upcasters: map[int]jetsource.Upcaster{1: splitName},
			event:     revision(schemaEvent("users.A.renamed", `{"name":"Ann Lee"}`), 1),
			wantData:  `{"first":"Ann","last":"Lee"}`, wantRev: 2,
		},
		{
			name:     "OK/current revision unchanged",
			event:    revision(schemaEvent("users.A.renamed", `{"first":"Ann"}`), 2),
			wantData: `{"first":"Ann"}`, wantRev: 2,
		},
		{
			name:     "OK/revision 0 unchanged",
			event:    revision(schemaEvent("users.A.renamed", `{"name":"Ann"}`), 0),
			wantData: `{"name":"Ann"}`, wantRev: 0,
		},
		{
			name:     "OK/type with no schema unchanged",
			event:    revision(schemaEvent("users.A.removed", `{}`), 7),
			wantData: `{}`, wantRev: 7,
		},
		{
			name:    "ErrUpcast/missing step",
			event:   revision(schemaEvent("users.A.renamed", `{"name":"Ann"}`), 1),
			want:    jetsource.ErrUpcast,
			mention: []string{"users.renamed", "revision 1 to 2"},
		},
		{
			name:      "ErrUpcast/upcaster fails",
			upcasters: map[int]jetsource.Upcaster{1: func(e jetsource.Event) (jetsource.Event, error) { return e, errBroken }},
			event:     revision(schemaEvent("users.A.renamed", `{"name":"Ann"}`), 1),
			want:      jetsource.ErrUpcast, also: errBroken,
			mention: []string{"users.renamed", "revision 1 to 2"},
		},
		{
			name: "ErrUpcast/upcaster changes the type",
			upcasters: map[int]jetsource.Upcaster{1: func(e jetsource.Event) (jetsource.Event, error) {
				e.Type = "users.retitled"
				return e, nil
			}},
			event:   revision(schemaEvent("users.A.renamed", `{"name":"Ann"}`), 1),
			want:    jetsource.ErrUpcast,
			mention: []string{"users.retitled"},
		},
		{
			name:    "ErrUpcast/newer than current",
			event:   revision(schemaEvent("users.A.renamed", `{}`), 3),
			want:    jetsource.ErrUpcast,
			mention: []string{"users.renamed", "revision 3", "current revision 2"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc := loadTestSchemas(t)
			for from, up := range tt.upcasters {
				if err := sc.RegisterUpcaster("users.renamed", from, up); err != nil {
					t.Fatal(err)
				}
			}
			in := tt.event.Clone()
			got, err := sc.Upcast(tt.event)
			if string(tt.event.Data) != string(in.Data) || tt.event.SchemaRevision != in.SchemaRevision {
				t.Errorf("Upcast modified its argument")
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Upcast = %v, want %v", err, tt.want)
				}
				if tt.also != nil && !errors.Is(err, tt.also) {
					t.Errorf("Upcast = %v, want it to match %v too", err, tt.also)
				}
				schemaMentions(t, err, tt.mention...)
				return
			}
			if err != nil {
				t.Fatalf("Upcast: %v", err)
			}
			if string(got.Data) != tt.wantData || got.SchemaRevision != tt.wantRev {
				t.Errorf("Upcast = revision %d, data %s; want revision %d, data %s", got.SchemaRevision, got.Data, tt.wantRev, tt.wantData)
			}
		})
	}
}

func TestUpcastChain(t *testing.T) {
	var sc jetsource.Schemas
	for rev := 1; rev <= 3; rev++ {
		if err := sc.Add("counter.set", rev, []byte(`{"type": "array"}`)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []int
	for from := 1; from < 3; from++ {
		if err := sc.RegisterUpcaster("counter.set", from, func(e jetsource.Event) (jetsource.Event, error) {
			seen = append(seen, e.SchemaRevision)
			e.Data = fmt.Appendf(e.Data[:len(e.Data)-1], ",%d]", from+1)
			return e, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	e := jetsource.Event{Type: "counter.set", SchemaRevision: 1, Data: []byte(`[1]`)}
	got, err := sc.Upcast(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != "[1,2,3]" || got.SchemaRevision != 3 {
		t.Errorf("Upcast = revision %d, data %s; want revision 3, data [1,2,3]", got.SchemaRevision, got.Data)
	}
	if fmt.Sprint(seen) != "[1 2]" {
		t.Errorf("upcasters saw revisions %v, want [1 2] (each step's result gets the next revision)", seen)
	}
	if string(e.Data) != "[1]" {
		t.Errorf("Upcast modified the data of its argument: %s", e.Data)
	}
}

func TestUpcastErrorOnRead(t *testing.T) {
	ctx := context.Background()
	mem := schemaMemoryStore(t)
	old := schemaEvent("users.A.renamed", `{"name": "Ann Lee"}`)
	old.SchemaRevision = 1
	if _, err := mem.Append(ctx, old); err != nil { // no upcaster registered
		t.Fatal(err)
	}
	st := jetsource.WithSchemas(mem, loadTestSchemas(t))
	for name, seq := range map[string]iter.Seq2[jetsource.Event, error]{
		"Read":   st.Read(ctx, jetsource.Query{}),
		"Load":   st.Load(ctx, subjects.MustParse("users.A"), 0),
		"Latest": st.Latest(ctx, subjects.MustParseFilter(">")),
	} {
		t.Run("ErrUpcast/"+name, func(t *testing.T) {
			evs, err := schemaCollect(t, seq)
			if !errors.Is(err, jetsource.ErrUpcast) {
				t.Fatalf("%s = %v, %v; want %v", name, evs, err, jetsource.ErrUpcast)
			}
			schemaMentions(t, err, "users.renamed", "revision 1")
		})
	}
}

func TestRegisterUpcaster(t *testing.T) {
	for _, tt := range []struct {
		name string
		typ  string
		from int
		up   jetsource.Upcaster
		want error
	}{
		{name: "OK", typ: "users.renamed", from: 1, up: splitName},
		{name: "ErrInvalidSchema/empty type", typ: "", from: 1, up: splitName, want: jetsource.ErrInvalidSchema},
		{name: "ErrInvalidSchema/revision 0", typ: "users.renamed", from: 0, up: splitName, want: jetsource.ErrInvalidSchema},
		{name: "ErrInvalidSchema/nil upcaster", typ: "users.renamed", from: 1, up: nil, want: jetsource.ErrInvalidSchema},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var sc jetsource.Schemas
			err := sc.RegisterUpcaster(tt.typ, tt.from, tt.up)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("RegisterUpcaster = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("ErrInvalidSchema/step twice", func(t *testing.T) {
		var sc jetsource.Schemas
		if err := sc.RegisterUpcaster("users.renamed", 1, splitName); err != nil {
			t.Fatal(err)
		}
		err := sc.RegisterUpcaster("users.renamed", 1, splitName)
		if !errors.Is(err, jetsource.ErrInvalidSchema) {
			t.Fatalf("second RegisterUpcaster = %v, want %v", err, jetsource.ErrInvalidSchema)
		}
		schemaMentions(t, err, "users.renamed", "revision 1")
	})
}

// TestSchemasConcurrent registers schemas and upcasters while others
// validate and upcast; run with -race.
func TestSchemasConcurrent(t *testing.T) {
	sc := loadTestSchemas(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			typ := fmt.Sprintf("t%d.added", i)
			if err := sc.Add(typ, 2, []byte(`{"type": "object"}`)); err != nil {
				t.Error(err)
			}
			if err := sc.RegisterUpcaster(typ, 1, func(e jetsource.Event) (jetsource.Event, error) { return e, nil }); err != nil {
				t.Error(err)
			}
			for range 50 {
				if err := sc.Validate(schemaEvent("users.A.added", `{"name": "Ann", "email": "ann@example.com"}`)); err != nil {
					t.Error(err)
				}
				if _, err := sc.Upcast(jetsource.Event{Type: typ, SchemaRevision: 1, Data: []byte(`{}`)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}
