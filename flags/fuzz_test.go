package flags_test

import (
	"errors"
	"testing"

	"github.com/jetsource/jetsource/flags"
)

// FuzzParseFile checks that ParseFile never panics, that every failure is
// a *FileError naming the file, and that every flag it accepts has a valid
// name and a known value.
func FuzzParseFile(f *testing.F) {
	seeds := []string{
		"flags:\n  a: true\n  b: off\n",                          // both value spellings
		"flags:\n  a:\n    enabled: on\n    description: x\n",    // the mapping form
		`{"flags":{"a":{"enabled":false},"b":true}}`,             // JSON
		"flags:\n  a: &x true\n  b: *x\n",                        // aliases
		"flags:\n  a: true\n  a: false\n",                        // a duplicate
		"flags: [1, 2]\n",                                        // the wrong kind
		"flags:\n  \"a b\": on\n",                                // a bad name
		"x: &a [*a]\n",                                           // a recursive alias
		"flags:\n  a: !!binary aGVsbG8=\n",                       // an odd tag
		"\xff\xfe",                                               // not UTF-8
		"flags:\n  a:\n    enabled: true\n    extra: 1\n",        // an unknown key
		"---\nflags: {}\n...\n---\n",                             // document markers
		"flags:\n  ? [a]\n  : true\n",                            // a complex key
		"flags: {a: true, b: {enabled: ~, description: \"\"}}\n", // flow style
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := flags.ParseFile("fuzz.yaml", data)
		if err != nil {
			var fe *flags.FileError
			if !errors.As(err, &fe) || fe.File != "fuzz.yaml" || !errors.Is(err, flags.ErrInvalidFile) {
				t.Fatalf("error %v is not a *FileError of fuzz.yaml", err)
			}
			if defs != nil {
				t.Fatalf("definitions %v returned with an error", defs)
			}
			return
		}
		for name, d := range defs {
			if err := flags.ValidName(name); err != nil {
				t.Fatalf("accepted a bad name: %v", err)
			}
			if d.Default != flags.Unset && d.Default != flags.On && d.Default != flags.Off {
				t.Fatalf("flag %q has value %v", name, d.Default)
			}
		}
	})
}
