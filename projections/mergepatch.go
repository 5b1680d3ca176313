package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MergePatch applies a JSON merge patch (RFC 7396) to a JSON document and
// returns the result, compact. An empty doc is null. A patch that is not
// an object replaces the document; in an object patch, null removes a
// member and an object member is merged recursively.
//
// It returns an error for a document or patch that is not valid JSON.
func MergePatch(doc, patch []byte) ([]byte, error) {
	var p any
	if err := decodeJSON(patch, &p); err != nil {
		return nil, fmt.Errorf("merge patch: patch: %w", err)
	}
	var d any
	if len(bytes.TrimSpace(doc)) > 0 {
		if err := decodeJSON(doc, &d); err != nil {
			return nil, fmt.Errorf("merge patch: document: %w", err)
		}
	}
	return json.Marshal(mergeValue(d, p))
}

// decodeJSON decodes exactly one JSON value, keeping numbers as written.
func decodeJSON(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value")
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// mergeValue is the MergePatch function of RFC 7396, section 2.
func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}
