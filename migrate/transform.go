package migrate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetsource/jetsource/state"
)

// A value on its way to JSON is nil (absent), string, json.Number, bool,
// []byte (not yet JSON), or a decoded JSON value (map[string]any, []any).
type transform func(v any) (any, error)

var transforms = map[string]transform{
	"trim":       stringFunc("trim", strings.TrimSpace),
	"lower":      stringFunc("lower", strings.ToLower),
	"upper":      stringFunc("upper", strings.ToUpper),
	"string":     toString,
	"int":        toInt,
	"number":     toNumber,
	"bool":       toBool,
	"json":       toJSONValue,
	"base64":     toBase64,
	"omit_empty": omitEmpty,
}

// Transforms returns the names of the transforms a mapping may list for a
// column, in order:
//
//   - trim, lower, upper: change text (other values are an error);
//   - string: any value as text (numbers as written, true/false);
//   - int, number: text or numbers as a JSON integer or number;
//   - bool: 1/0, true/false, t/f, yes/no (any case) as a JSON boolean;
//   - json: text holding JSON as that JSON value;
//   - base64: bytes (a BLOB) or text as base64 text;
//   - omit_empty: empty text as no value (the member is left out).
func Transforms() []string { return slices.Sorted(maps.Keys(transforms)) }

func stringFunc(name string, f func(string) string) transform {
	return func(v any) (any, error) {
		switch s := v.(type) {
		case nil:
			return nil, nil
		case string:
			return f(s), nil
		case []byte:
			if utf8.Valid(s) {
				return f(string(s)), nil
			}
		}
		return nil, fmt.Errorf("%w: transform %s needs text, got %s", ErrUnsupportedType, name, kindOf(v))
	}
}

func toString(v any) (any, error) {
	switch s := v.(type) {
	case nil, string:
		return s, nil
	case json.Number:
		return string(s), nil
	case bool:
		return strconv.FormatBool(s), nil
	case []byte:
		if utf8.Valid(s) {
			return string(s), nil
		}
	}
	return nil, fmt.Errorf("%w: transform string: %s is not text", ErrUnsupportedType, kindOf(v))
}

func toInt(v any) (any, error) {
	n, err := toNumber(v)
	if err != nil || n == nil {
		return n, err
	}
	s := string(n.(json.Number))
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return nil, fmt.Errorf("%w: transform int: %q is not an integer", ErrUnsupportedType, s)
	}
	return json.Number(strconv.FormatInt(int64(f), 10)), nil
}

func toNumber(v any) (any, error) {
	switch s := v.(type) {
	case nil:
		return nil, nil
	case json.Number:
		return s, nil
	case bool:
		if s {
			return json.Number("1"), nil
		}
		return json.Number("0"), nil
	case []byte:
		return toNumber(string(s))
	case string:
		t := strings.TrimSpace(s)
		if t == "" {
			return nil, nil
		}
		if isJSONNumber(t) {
			return json.Number(t), nil
		}
		f, err := strconv.ParseFloat(t, 64)
		if err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
		}
		return nil, fmt.Errorf("%w: transform number: %q is not a number", ErrUnsupportedType, s)
	}
	return nil, fmt.Errorf("%w: transform number: %s is not a number", ErrUnsupportedType, kindOf(v))
}

func isJSONNumber(s string) bool {
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil && s != "" && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))
}

func toBool(v any) (any, error) {
	switch s := v.(type) {
	case nil, bool:
		return s, nil
	case json.Number:
		switch s {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
	case []byte:
		return toBool(string(s))
	case string:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "1", "true", "t", "yes", "y":
			return true, nil
		case "0", "false", "f", "no", "n":
			return false, nil
		case "":
			return nil, nil
		}
	}
	return nil, fmt.Errorf("%w: transform bool: %v is not a boolean", ErrUnsupportedType, v)
}

func toJSONValue(v any) (any, error) {
	switch s := v.(type) {
	case nil:
		return nil, nil
	case string:
		return toJSONValue([]byte(s))
	case []byte:
		d, err := state.DecodeJSON(s)
		if err != nil {
			return nil, fmt.Errorf("%w: transform json: %v", ErrUnsupportedType, err)
		}
		return d, nil
	}
	return v, nil
}

func toBase64(v any) (any, error) {
	switch s := v.(type) {
	case nil:
		return nil, nil
	case string:
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case []byte:
		return base64.StdEncoding.EncodeToString(s), nil
	}
	return nil, fmt.Errorf("%w: transform base64 needs bytes or text, got %s", ErrUnsupportedType, kindOf(v))
}

func omitEmpty(v any) (any, error) {
	if s, ok := v.(string); ok && s == "" {
		return nil, nil
	}
	return v, nil
}

// kindOf names the type of a value for errors.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "NULL"
	case string:
		return "text"
	case []byte:
		return "bytes (BLOB)"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case time.Time:
		return "a time"
	}
	return fmt.Sprintf("%T", v)
}
