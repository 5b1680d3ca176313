package subscriber

import (
	"testing"
	"time"

	"github.com/jetsource/jetsource"
)

// The decoding of a stored event, through DecodeMsg and through decode.
func BenchmarkDecodeMsg(b *testing.B) {
	h, data := storedHeaders(b), []byte(`{"a":1}`)
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 7, Time: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = jetsource.DecodeMsg("users.A.added", h, data, at)
	}
}

func BenchmarkDecode(b *testing.B) {
	h, data := storedHeaders(b), []byte(`{"a":1}`)
	at := jetsource.Stored{Stream: "EVENTS", Sequence: 7, Time: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		_ = decode("users.A.added", h, data, at)
	}
}
