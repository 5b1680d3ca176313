package jetsource_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

func ExampleWithSchemas() {
	ctx := context.Background()

	// Two revisions of the schema of users.renamed: the second splits the
	// name into first and last. In a service they would be files of a
	// directory loaded with LoadSchemas: users.renamed.v1.json and
	// users.renamed.v2.json.
	schemas, err := jetsource.NewSchemas()
	if err != nil {
		panic(err)
	}
	for rev, schema := range map[int]string{
		1: `{"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}`,
		2: `{"type": "object", "required": ["first", "last"], "properties": {"first": {"type": "string", "minLength": 1}, "last": {"type": "string"}}}`,
	} {
		if err := schemas.Add("users.renamed", rev, []byte(schema)); err != nil {
			panic(err)
		}
	}
	// Events stored under revision 1 are lifted to revision 2 on read.
	err = schemas.RegisterUpcaster("users.renamed", 1, func(e jetsource.Event) (jetsource.Event, error) {
		var v1 struct{ Name string }
		if err := json.Unmarshal(e.Data, &v1); err != nil {
			return e, err
		}
		first, last, _ := strings.Cut(v1.Name, " ")
		e.Data, err = json.Marshal(map[string]string{"first": first, "last": last})
		return e, err
	})
	if err != nil {
		panic(err)
	}

	mem, err := jetsource.NewMemoryStore()
	if err != nil {
		panic(err)
	}
	store := jetsource.WithSchemas(mem, schemas)

	// An event written by an old producer, under revision 1.
	_, err = store.Append(ctx, jetsource.Event{
		Subject: subjects.MustParse("users.A.renamed"), Data: []byte(`{"name":"Ann Lee"}`), SchemaRevision: 1,
	})
	if err != nil {
		panic(err)
	}
	// A current event: stamped with revision 2 and checked against it.
	_, err = store.Append(ctx, jetsource.Event{
		Subject: subjects.MustParse("users.B.renamed"), Data: []byte(`{"first":"Bob","last":"Ross"}`),
	})
	if err != nil {
		panic(err)
	}
	// A bad event is refused before anything is written.
	_, err = store.Append(ctx, jetsource.Event{
		Subject: subjects.MustParse("users.C.renamed"), Data: []byte(`{"first":"","last":"Cole"}`),
	})
	fmt.Println(errors.Is(err, jetsource.ErrSchemaViolation))
	fmt.Println(err)

	for e, err := range store.Read(ctx, jetsource.Query{}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Sequence, e.Subject, e.SchemaRevision, string(e.Data))
	}
	// Output:
	// true
	// jetsource: schema violation: users.renamed revision 2: at /first: minLength: got 0, want 1
	// 1 users.A.renamed 2 {"first":"Ann","last":"Lee"}
	// 2 users.B.renamed 2 {"first":"Bob","last":"Ross"}
}
