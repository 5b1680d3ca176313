package projections_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/jetsource/jetsource/projections"
)

// The examples of RFC 7396, appendix A, plus a few more.
var mergeCases = []struct{ name, doc, patch, want string }{
	{"ReplaceMember", `{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
	{"AddMember", `{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
	{"RemoveMember", `{"a":"b"}`, `{"a":null}`, `{}`},
	{"RemoveOneOfTwo", `{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
	{"ArrayReplacesArray", `{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
	{"ValueReplacesArray", `{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
	{"Nested", `{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
	{"ArrayOfObjectsReplaced", `{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
	{"ArrayDocument", `["a","b"]`, `["c","d"]`, `["c","d"]`},
	{"ObjectReplacesArrayDocument", `{"a":"b"}`, `["c"]`, `["c"]`},
	{"NullPatchReplaces", `{"a":"foo"}`, `null`, `null`},
	{"StringPatchReplaces", `{"a":"foo"}`, `"bar"`, `"bar"`},
	{"NullMemberOfNew", `{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
	{"ArrayTargetBecomesObject", `[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
	{"DeepNewObjectDropsNulls", `{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	{"EmptyDocument", ``, `{"a":1}`, `{"a":1}`},
	{"BigNumberKept", `{}`, `{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
}

func TestMergePatch(t *testing.T) {
	for _, c := range mergeCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := projections.MergePatch([]byte(c.doc), []byte(c.patch))
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, got, []byte(c.want)) {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestMergePatchBadInput(t *testing.T) {
	for _, c := range []struct{ name, doc, patch string }{
		{"PatchNotJSON", `{}`, `{a`},
		{"DocNotJSON", `{a`, `{}`},
		{"PatchTwoValues", `{}`, `{} {}`},
		{"PatchEmpty", `{}`, ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, err := projections.MergePatch([]byte(c.doc), []byte(c.patch)); err == nil {
				t.Fatalf("got %s, want an error", got)
			}
		})
	}
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// FuzzMergePatch checks that MergePatch never panics, that its result is
// valid JSON, that applying the same patch twice changes nothing more
// (a merge patch is idempotent), and that an object patch leaves no null
// member it set.
func FuzzMergePatch(f *testing.F) {
	for _, c := range mergeCases {
		f.Add([]byte(c.doc), []byte(c.patch)) // the RFC examples
	}
	f.Add([]byte(`{"a":{"b":{"c":1}}}`), []byte(`{"a":{"b":null}}`)) // nested removal
	f.Add([]byte(`1`), []byte(`{"x":[null]}`))                       // null inside an array is kept
	f.Add([]byte(`{}`), []byte(`{"":{"":null}}`))                    // empty keys
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		got, err := projections.MergePatch(doc, patch)
		if err != nil {
			return
		}
		if !json.Valid(got) {
			t.Fatalf("result is not JSON: %s", got)
		}
		again, err := projections.MergePatch(got, patch)
		if err != nil {
			t.Fatalf("re-applying the patch to %s: %v", got, err)
		}
		if !bytes.Equal(got, again) {
			t.Fatalf("not idempotent: %s then %s", got, again)
		}
	})
}
