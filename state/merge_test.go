package state_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/state"
)

// The examples of RFC 7396, appendix A, and a few more.
func TestMergePatch(t *testing.T) {
	tests := []struct {
		name, target, patch, want string
	}{
		{"ReplaceMember", `{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{"AddMember", `{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{"RemoveMember", `{"a":"b"}`, `{"a":null}`, `{}`},
		{"RemoveOneOfTwo", `{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{"ArrayReplacesString", `{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{"StringReplacesArray", `{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{"NestedMerge", `{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{"ArrayOfObjectsReplaced", `{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{"ArrayPatchReplacesArray", `["a","b"]`, `["c","d"]`, `["c","d"]`},
		{"ObjectPatchOnArray", `{"a":"b"}`, `["c"]`, `["c"]`},
		{"NullPatchReplaces", `{"a":"foo"}`, `null`, `null`},
		{"StringPatchReplaces", `{"a":"foo"}`, `"bar"`, `"bar"`},
		{"NullMemberKept", `{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{"ObjectOnArrayTarget", `[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{"DeepNullsDropped", `{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{"EmptyTargetIsNull", ``, `{"a":1}`, `{"a":1}`},
		{"NullsInArraysStay", `{}`, `{"a":[null,1]}`, `{"a":[null,1]}`},
		{"NumbersKeepText", `{"n":1.50}`, `{"m":12345678901234567890}`, `{"m":12345678901234567890,"n":1.50}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := state.MergePatch([]byte(tt.target), []byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMergePatchErrInvalidData(t *testing.T) {
	for _, tt := range []struct{ name, target, patch string }{
		{"BadPatch", `{}`, `{"a":`},
		{"EmptyPatch", `{}`, ``},
		{"TwoValues", `{}`, `{} {}`},
		{"BadTarget", `{"a"`, `{}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := state.MergePatch([]byte(tt.target), []byte(tt.patch)); !errors.Is(err, jetsource.ErrInvalidData) {
				t.Fatalf("got %v, want ErrInvalidData", err)
			}
		})
	}
}

func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":"b"}`), []byte(`{"a":null}`))            // removal
	f.Add([]byte(`{"a":{"b":"c"}}`), []byte(`{"a":{"b":"d"}}`)) // nested
	f.Add([]byte(`[1,2]`), []byte(`{"a":1}`))                   // object on array
	f.Add([]byte(``), []byte(`"x"`))                            // scalar patch, empty target
	f.Add([]byte(`{"n":1e400}`), []byte(`{"m":-0.0}`))          // numbers outside float64
	f.Add([]byte(`{`), []byte(`}`))                             // garbage
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		got, err := state.MergePatch(target, patch)
		if err != nil {
			return
		}
		if !json.Valid(got) {
			t.Fatalf("result %q is not JSON", got)
		}
		// A merge patch is idempotent.
		again, err := state.MergePatch(got, patch)
		if err != nil {
			t.Fatalf("re-applying: %v", err)
		}
		var a, b any
		json.Unmarshal(got, &a)
		json.Unmarshal(again, &b)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("not idempotent: %s then %s", got, again)
		}
		// A patch without objects replaces the target.
		var p any
		if json.Unmarshal(patch, &p) == nil {
			if _, isObj := p.(map[string]any); !isObj && !reflect.DeepEqual(a, p) {
				t.Fatalf("non-object patch %s gave %s", patch, got)
			}
		}
	})
}
