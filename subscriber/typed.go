package subscriber

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/jetsource/jetsource"
)

// JSON returns a [Handler] that decodes each event's data as JSON into a
// T and calls h with it. Empty data decodes as JSON null (the zero T);
// unknown fields are ignored, so that events may gain fields. Data that
// does not decode into a T can never be handled: the handler returns an
// error matching [ErrPermanent] and [ErrInvalidData], so the event is
// dead-lettered at once (with the decoding error) instead of retried.
func JSON[T any](h func(ctx context.Context, e jetsource.Event, v T) error) Handler {
	return func(ctx context.Context, e jetsource.Event) error {
		var v T
		data := e.Data
		if len(bytes.TrimSpace(data)) == 0 {
			data = []byte("null")
		}
		if err := json.Unmarshal(data, &v); err != nil {
			return Permanent(fmt.Errorf("%w: %s at sequence %d into %T: %w", ErrInvalidData, e.Subject, e.Sequence, v, err))
		}
		return h(ctx, e, v)
	}
}
