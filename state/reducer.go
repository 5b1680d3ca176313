package state

import (
	"bytes"
	"fmt"

	"github.com/jetsource/jetsource"
)

// Reducer folds events into a state of type S.
type Reducer[S any] struct {
	// Version identifies the reducer's logic. Snapshots record it, and a
	// snapshot made by another version is ignored: change it whenever
	// Apply changes what it computes.
	Version string
	// Initial returns the state of an aggregate without events.
	Initial func() S
	// Apply returns the state after the event. It may modify and return
	// the state it is given: the loader owns it.
	Apply func(S, jetsource.Event) (S, error)
}

func (r Reducer[S]) validate() error {
	switch {
	case r.Version == "":
		return fmt.Errorf("%w: reducer has no version", jetsource.ErrInvalidOption)
	case r.Initial == nil || r.Apply == nil:
		return fmt.Errorf("%w: reducer needs Initial and Apply", jetsource.ErrInvalidOption)
	}
	return nil
}

// MergeVersion is the version of [MergeReducer].
const MergeVersion = "merge-patch/1"

// MergeReducer folds the data of each event into one JSON document with
// JSON merge patch (RFC 7396): the initial state is the empty object, and
// the data of every event is a merge patch applied to it (numbers keep
// their text, see [MergeValue]). Events without data change nothing. An
// event whose data is not JSON fails the fold with [ErrReducer] and
// [jetsource.ErrInvalidData].
func MergeReducer() Reducer[any] {
	return Reducer[any]{
		Version: MergeVersion,
		Initial: func() any { return map[string]any{} },
		Apply: func(s any, e jetsource.Event) (any, error) {
			if len(bytes.TrimSpace(e.Data)) == 0 {
				return s, nil
			}
			p, err := DecodeJSON(e.Data)
			if err != nil {
				return s, err
			}
			return MergeValue(s, p), nil
		},
	}
}
