package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jetsource/jetsource"
)

// MergePatch applies the JSON merge patch patch to the JSON document target
// (RFC 7396) and returns the result. An empty target is the JSON null. A
// patch that is not an object replaces the target; an object patch sets
// each of its members on the target (an object, or an empty object if the
// target is not one), recursively, and a member whose value is null removes
// that member. Numbers keep their text.
//
// It returns an error matching [jetsource.ErrInvalidData] when target or
// patch is not a single valid JSON value.
func MergePatch(target, patch []byte) ([]byte, error) {
	var t any
	if len(bytes.TrimSpace(target)) > 0 {
		var err error
		if t, err = DecodeJSON(target); err != nil {
			return nil, fmt.Errorf("merge patch target: %w", err)
		}
	}
	p, err := DecodeJSON(patch)
	if err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return json.Marshal(MergeValue(t, p))
}

// MergeValue applies a decoded merge patch to a decoded document, as
// [MergePatch] does, and returns the result. Values are those of
// encoding/json (map[string]any, []any, string, json.Number or float64,
// bool, nil). It may modify target's maps in place and share values with
// patch: pass copies if they must stay as they are.
func MergeValue(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		// Only members of objects are merged: a scalar or an array
		// (nulls inside it included) replaces the target.
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = make(map[string]any, len(p))
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = MergeValue(t[k], v)
	}
	return t
}

// DecodeJSON decodes exactly one JSON value, keeping numbers as
// [json.Number]. It returns an error matching [jetsource.ErrInvalidData]
// for anything else.
func DecodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", jetsource.ErrInvalidData, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one JSON value", jetsource.ErrInvalidData)
	}
	return v, nil
}
