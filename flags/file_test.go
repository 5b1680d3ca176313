package flags_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jetsource/jetsource/flags"
)

var sampleDefinitions = flags.Definitions{
	"new-checkout": {Default: flags.On},
	"billing.v2":   {Default: flags.Off},
	"search.fuzzy": {Default: flags.Off, Description: "fuzzy matching in the search box"},
	"beta-banner":  {Description: "the banner on top of every page"},
	"audit_export": {Default: flags.On, Description: "nightly export of the audit trail"},
}

func TestLoadFileSamples(t *testing.T) {
	for _, name := range []string{"flags.yaml", "flags.json"} {
		t.Run(name, func(t *testing.T) {
			got, err := flags.LoadFile(filepath.Join("..", "testdata", "flags", name))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, sampleDefinitions) {
				t.Fatalf("got %+v, want %+v", got, sampleDefinitions)
			}
		})
	}
}

func TestLoadFileBadSamples(t *testing.T) {
	cases := []struct {
		file  string
		line  int
		field string
		msg   string
	}{
		{"bad-value.yaml", 4, "flags.billing.v2.enabled", `got "maybe"`},
		{"bad-name.yaml", 3, "flags.billing v2", "invalid flag name"},
		{"bad-key.json", 3, "flag", "unknown key"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("..", "testdata", "flags", c.file)
			_, err := flags.LoadFile(path)
			var fe *flags.FileError
			if !errors.As(err, &fe) || !errors.Is(err, flags.ErrInvalidFile) {
				t.Fatalf("got %v, want a *FileError matching ErrInvalidFile", err)
			}
			if fe.File != path || fe.Line != c.line || fe.Field != c.field || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got file %q line %d field %q (%v), want %q line %d field %q containing %q", fe.File, fe.Line, fe.Field, err, path, c.line, c.field, c.msg)
			}
			if !strings.HasPrefix(err.Error(), path+":") {
				t.Fatalf("message %q does not start with the file name", err)
			}
		})
	}
	t.Run("Missing", func(t *testing.T) {
		_, err := flags.LoadFile(filepath.Join(t.TempDir(), "nope.yaml"))
		if !errors.Is(err, flags.ErrInvalidFile) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("TooLarge", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "big.yaml")
		if err := os.WriteFile(path, []byte("flags:\n"+strings.Repeat("#", flags.MaxFileSize)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := flags.LoadFile(path); !errors.Is(err, flags.ErrInvalidFile) || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestParseFile(t *testing.T) {
	cases := []struct {
		name  string
		data  string
		want  flags.Definitions
		line  int
		field string
		msg   string
		is    error
	}{
		{name: "OK", data: "flags:\n  a: true\n  b: false\n  c: ON\n  d: Off\n  e: ~\n", want: flags.Definitions{"a": {Default: flags.On}, "b": {Default: flags.Off}, "c": {Default: flags.On}, "d": {Default: flags.Off}, "e": {}}},
		{name: "OKEmptyFlags", data: "flags:\n", want: flags.Definitions{}},
		{name: "OKEmptyMapping", data: "flags: {}\n", want: flags.Definitions{}},
		{name: "OKJSON", data: `{"flags":{"a":{"enabled":true,"description":"A"}}}`, want: flags.Definitions{"a": {Default: flags.On, Description: "A"}}},
		{name: "OKAlias", data: "flags:\n  a: &on true\n  b: *on\n", want: flags.Definitions{"a": {Default: flags.On}, "b": {Default: flags.On}}},
		{name: "OKNullFields", data: "flags:\n  a:\n    enabled: null\n    description: null\n", want: flags.Definitions{"a": {}}},
		{name: "ErrEmpty", data: "", msg: "empty"},
		{name: "ErrOnlyComment", data: "# nothing\n", msg: "empty"},
		{name: "ErrNotMapping", data: "- a\n- b\n", line: 1, msg: "a list"},
		{name: "ErrScalarRoot", data: "hello\n", line: 1, msg: `got "hello"`},
		{name: "ErrNoFlagsKey", data: "other: 1\n", line: 1, field: "other", msg: "unknown key"},
		{name: "ErrFlagsMissing", data: "{}\n", line: 1, msg: "missing"},
		{name: "ErrFlagsTwice", data: "flags: {}\nflags: {}\n", line: 2, field: "flags", msg: "twice"},
		{name: "ErrFlagsList", data: "flags:\n  - a\n", line: 2, field: "flags", msg: "a list"},
		{name: "ErrFlagsScalar", data: "flags: yes\n", line: 1, field: "flags", msg: `got "yes"`},
		{name: "ErrValueString", data: "flags:\n  a: yes\n", line: 2, field: "flags.a", msg: `got "yes"`, is: flags.ErrInvalidValue},
		{name: "ErrValueNumber", data: "flags:\n  a: 1\n", line: 2, field: "flags.a", msg: `got "1"`, is: flags.ErrInvalidValue},
		{name: "ErrValueQuotedTrue", data: "flags:\n  a: \"true\"\n", line: 2, field: "flags.a", msg: `got "true"`, is: flags.ErrInvalidValue},
		{name: "ErrValueList", data: "flags:\n  a: [true]\n", line: 2, field: "flags.a", msg: "a list"},
		{name: "ErrEnabledList", data: "flags:\n  a:\n    enabled: [1]\n", line: 3, field: "flags.a.enabled", msg: "a list", is: flags.ErrInvalidValue},
		{name: "ErrDescriptionMapping", data: "flags:\n  a:\n    description: {x: 1}\n", line: 3, field: "flags.a.description", msg: "want text"},
		{name: "ErrUnknownFlagKey", data: "flags:\n  a:\n    enable: true\n", line: 3, field: "flags.a.enable", msg: "unknown key"},
		{name: "ErrFlagKeyTwice", data: "flags:\n  a:\n    enabled: true\n    enabled: false\n", line: 4, field: "flags.a.enabled", msg: "twice"},
		{name: "ErrDuplicateFlag", data: "flags:\n  a: true\n  b: true\n  a: false\n", line: 4, field: "flags.a", msg: "first on line 2"},
		{name: "ErrNameSpace", data: "flags:\n  \"a b\": true\n", line: 2, field: "flags.a b", is: flags.ErrInvalidName},
		{name: "ErrNameWildcard", data: "flags:\n  \"a.*\": true\n", line: 2, field: "flags.a.*", is: flags.ErrInvalidName},
		{name: "ErrNameDots", data: "flags:\n  a..b: true\n", line: 2, field: "flags.a..b", is: flags.ErrInvalidName},
		{name: "ErrNameLeadingDot", data: "flags:\n  .a: true\n", line: 2, field: "flags..a", is: flags.ErrInvalidName},
		{name: "ErrNameEmpty", data: "flags:\n  \"\": true\n", line: 2, field: "flags.", is: flags.ErrInvalidName},
		{name: "ErrNameMapping", data: "flags:\n  ? {a: 1}\n  : true\n", line: 2, field: "flags", msg: "want a flag name"},
		{name: "ErrMergeKey", data: "base: &b {a: true}\nflags:\n  <<: *b\n", line: 1, field: "base", msg: "unknown key"},
		{name: "ErrSyntax", data: "flags:\n  a: true\n b: false\n", line: 2, msg: "not valid YAML"},
		{name: "ErrJSONSyntax", data: "{\"flags\": {\"a\": true,}\n", msg: "not valid YAML"},
		{name: "ErrTwoDocuments", data: "flags: {}\n---\nflags: {}\n", line: 2, msg: "more than one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := flags.ParseFile("f.yaml", []byte(c.data))
			if c.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("got %+v, want %+v", got, c.want)
				}
				return
			}
			var fe *flags.FileError
			if !errors.As(err, &fe) || !errors.Is(err, flags.ErrInvalidFile) {
				t.Fatalf("got %v (%T), want a *FileError", err, err)
			}
			if got != nil {
				t.Fatalf("got definitions %v with an error", got)
			}
			if fe.File != "f.yaml" || (c.line != 0 && fe.Line != c.line) || fe.Field != c.field {
				t.Fatalf("got %q line %d field %q, want line %d field %q (%v)", fe.File, fe.Line, fe.Field, c.line, c.field, err)
			}
			if c.msg != "" && !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("message %q does not contain %q", err, c.msg)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("%v does not match %v", err, c.is)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	ok := []string{"a", "new-checkout", "billing.v2", "A_B-c.9", strings.Repeat("x", flags.MaxNameLen), "-a", "_a"}
	for _, n := range ok {
		if err := flags.ValidName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	bad := []string{"", ".a", "a.", "a..b", "a b", "a*", "a>", "a/b", "a=b", "ä", "a\n", strings.Repeat("x", flags.MaxNameLen+1)}
	for _, n := range bad {
		if err := flags.ValidName(n); !errors.Is(err, flags.ErrInvalidName) {
			t.Errorf("%q: got %v, want ErrInvalidName", n, err)
		}
	}
}

func TestParseValue(t *testing.T) {
	for s, want := range map[string]flags.Value{"on": flags.On, " TRUE ": flags.On, "1": flags.On, "off": flags.Off, "False": flags.Off, "0": flags.Off, "unset": flags.Unset} {
		got, err := flags.ParseValue(s)
		if err != nil || got != want {
			t.Errorf("%q: got %v, %v; want %v", s, got, err, want)
		}
		if txt, _ := got.MarshalText(); want != flags.Unset || string(txt) != "unset" {
			var back flags.Value
			if err := back.UnmarshalText(txt); err != nil || back != got {
				t.Errorf("%v: text round trip gave %v, %v", got, back, err)
			}
		}
	}
	for _, s := range []string{"", "yes", "enabled", "2"} {
		if _, err := flags.ParseValue(s); !errors.Is(err, flags.ErrInvalidValue) {
			t.Errorf("%q: got %v, want ErrInvalidValue", s, err)
		}
	}
}
