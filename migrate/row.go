package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetsource/jetsource/subjects"
)

// plan is a table of the mapping checked against its source.
type plan struct {
	t       *Table
	columns []string // selected: the key columns, then the data columns
	types   []string // their database types
	nkeys   int      // the first nkeys columns are the keys
	members []string // data member of each data column
	tr      [][]transform
	filter  subjects.Filter
	ntokens int // tokens of an aggregate
	count   int64
	order   []int    // the data members in name order
	names   [][]byte // the JSON of each member's name and ':'
}

// row is a row turned into its aggregate and state.
type row struct {
	num       int64
	aggregate string
	keys      []string       // the key values
	key       string         // "id=42" for errors, see plan.keyed
	state     map[string]any // the data columns, NULLs left out; decoded from data when needed
	data      []byte         // state as canonical JSON
	hash      string
}

func (p *plan) rowError(num int64, key string, err error) *RowError {
	return &RowError{Table: p.t.Table, Row: num, Key: key, Err: err}
}

// scratch holds the buffers of [plan.convert] reused from row to row by
// one reader, so that an unchanged row allocates no state: its data
// alias buf and its hash is in hex until [scratch.keep].
type scratch struct {
	vs  []any
	buf []byte
	hex [32]byte
}

// keep makes a row converted with s its own: its data copied out of the
// buffer and its hash set, before s converts the next row.
func (s *scratch) keep(r *row) {
	r.data = slices.Clone(r.data)
	r.hash = string(s.hex[:])
}

// sameHash reports whether the row s converted last has the hash h.
func (s *scratch) sameHash(h string) bool {
	return string(s.hex[:]) == h
}

// convert turns the values of one row into its aggregate and state. The
// row's key description (for errors and appends) is made by [plan.keyed]
// when needed. With a scratch sc the row's data alias sc's buffer and
// its hash is left unset (see [scratch.keep]); without one (nil) the row
// is complete.
func (p *plan) convert(num int64, vals []any, sc *scratch) (row, error) {
	r := row{num: num}
	r.keys = make([]string, p.nkeys)
	keys := make([]string, p.nkeys)
	for i := range p.nkeys {
		v, err := p.value(i, vals[i])
		if err == nil {
			r.keys[i], err = keyText(v)
		}
		if err != nil {
			return r, p.rowError(num, p.keyDesc(r.keys[:i], true), fmt.Errorf("key column %s: %w", p.columns[i], err))
		}
		keys[i] = subjects.Escape(r.keys[i])
	}
	agg, err := p.t.tmpl.build(keys)
	if err != nil {
		return r, p.rowError(num, p.keyed(&r), err)
	}
	r.aggregate = agg
	var vs []any
	if sc != nil {
		sc.vs = slices.Grow(sc.vs[:0], len(p.members))[:len(p.members)]
		vs = sc.vs
	} else {
		vs = make([]any, len(p.members))
	}
	for j := range p.members {
		i := p.nkeys + j
		v, err := p.value(i, vals[i])
		if err != nil {
			return r, p.rowError(num, p.keyed(&r), fmt.Errorf("column %s: %w", p.columns[i], err))
		}
		vs[j] = v
	}
	var buf []byte
	if sc != nil {
		buf = sc.buf[:0]
	}
	if r.data, err = p.canonical(buf, vs); err != nil {
		return r, p.rowError(num, p.keyed(&r), fmt.Errorf("%w: %v", ErrUnsupportedType, err))
	}
	if sc == nil {
		r.hash = stateHash(r.data)
		return r, nil
	}
	sc.buf = r.data
	sum := sha256.Sum256(r.data)
	hex.Encode(sc.hex[:], sum[:16])
	return r, nil
}

// canonical encodes the data values of a row (NULLs left out) as
// json.Marshal encodes the map of its members, the state's canonical
// form: members sorted, strings escaped as encoding/json escapes them.
// The common values (plain strings, numbers, booleans) are written
// directly; others go through json.Marshal. It appends to buf, a new
// buffer when nil.
func (p *plan) canonical(buf []byte, vs []any) ([]byte, error) {
	if p.order == nil {
		p.order = make([]int, len(p.members))
		p.names = make([][]byte, len(p.members))
		for j, m := range p.members {
			p.order[j] = j
			b, _ := json.Marshal(m)
			p.names[j] = append(b, ':')
		}
		slices.SortStableFunc(p.order, func(a, b int) int { return strings.Compare(p.members[a], p.members[b]) })
	}
	if buf == nil {
		buf = make([]byte, 0, 128)
	}
	buf = append(buf, '{')
	first := true
	for _, j := range p.order {
		v := vs[j]
		if v == nil {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, p.names[j]...)
		var err error
		if buf, err = appendJSON(buf, v); err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

// appendJSON appends v as json.Marshal encodes it.
func appendJSON(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		if plainString(x) {
			buf = append(buf, '"')
			buf = append(buf, x...)
			return append(buf, '"'), nil
		}
	case json.Number:
		if x != "" {
			return append(buf, x...), nil
		}
	case bool:
		return strconv.AppendBool(buf, x), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(buf, b...), nil
}

// plainString reports whether json.Marshal writes s as it is between
// quotes: printable ASCII without '"', '\\' and the HTML characters it
// escapes.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// keyed sets and returns the key description of a row: id="42".
func (p *plan) keyed(r *row) string {
	if r.key == "" {
		r.key = p.keyDesc(r.keys, false)
	}
	return r.key
}

// keyDesc describes the key values known; bad: the next one is bad.
func (p *plan) keyDesc(keys []string, bad bool) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.columns[i])
		b.WriteByte('=')
		b.WriteString(strconv.Quote(k))
	}
	if bad {
		if len(keys) > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.columns[len(keys)])
		b.WriteString("=?")
	}
	return b.String()
}

// value normalizes the value of selected column i and applies its
// transforms.
func (p *plan) value(i int, v any) (any, error) {
	var err error
	switch x := v.(type) {
	case nil, string, bool:
	case int64:
		v = json.Number(strconv.FormatInt(x, 10))
	case int32:
		v = json.Number(strconv.FormatInt(int64(x), 10))
	case int:
		v = json.Number(strconv.Itoa(x))
	case uint64:
		v = json.Number(strconv.FormatUint(x, 10))
	case float32:
		v, err = floatNumber(float64(x))
	case float64:
		v, err = floatNumber(x)
	case time.Time:
		v = x.Format(time.RFC3339Nano)
	case []byte:
		v = slices.Clone(x)
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedType, v)
	}
	if err != nil {
		return nil, err
	}
	if s, ok := v.(string); ok {
		switch p.types[i] {
		case "JSON", "JSONB":
			v = []byte(s)
		case "NUMERIC", "DECIMAL":
			if isJSONNumber(s) {
				v = json.Number(s)
			}
		}
	}
	if b, ok := v.([]byte); ok && (p.types[i] == "JSON" || p.types[i] == "JSONB") {
		if v, err = toJSONValue(b); err != nil {
			return nil, err
		}
	}
	for _, f := range p.tr[i] {
		if v, err = f(v); err != nil {
			return nil, err
		}
	}
	if b, ok := v.([]byte); ok {
		return nil, fmt.Errorf("%w: %d bytes of binary data (%s); a transform base64 (or string for UTF-8 text) maps it", ErrUnsupportedType, len(b), typeOr(p.types[i], "BLOB"))
	}
	if s, ok := v.(string); ok && !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: text that is not UTF-8; a transform base64 maps it", ErrUnsupportedType)
	}
	return v, nil
}

func typeOr(t, def string) string {
	if t == "" {
		return def
	}
	return t
}

func floatNumber(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: %v has no JSON number", ErrUnsupportedType, f)
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

// keyText is the text of a key value.
func keyText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", ErrNullKey
	case string:
		return x, nil
	case json.Number:
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("%w: a key must be text or a number, not %s", ErrUnsupportedType, kindOf(v))
}

// stateHash is the hash of a state's canonical JSON (128 bits, hex).
func stateHash(canonical []byte) string {
	h := sha256.Sum256(canonical)
	return hex.EncodeToString(h[:16])
}

// canonicalState encodes a folded state as a row's state is encoded.
func canonicalState(s any) ([]byte, error) {
	if s == nil {
		s = map[string]any{}
	}
	return json.Marshal(s)
}

// diff returns the JSON merge patch that turns old into new: changed
// members with their new value (objects diffed recursively), removed ones
// as null. Empty: no difference.
func diff(old, new map[string]any) map[string]any {
	patch := map[string]any{}
	for k, nv := range new {
		ov, ok := old[k]
		switch {
		case !ok:
			patch[k] = nv
		case reflect.DeepEqual(ov, nv):
		default:
			om, ok1 := ov.(map[string]any)
			nm, ok2 := nv.(map[string]any)
			if ok1 && ok2 {
				patch[k] = diff(om, nm)
			} else {
				patch[k] = nv
			}
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			patch[k] = nil
		}
	}
	return patch
}

// asObject returns a folded state as an object (a state that is not one
// is the empty object).
func asObject(s any) map[string]any {
	if m, ok := s.(map[string]any); ok {
		return m
	}
	return map[string]any{}
}
