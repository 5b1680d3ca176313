package jetstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// A stream with a size limit refuses new events with ErrStorageFull, naming
// the stream and its limit, and keeps its old events.
func TestFullStreamRefusesNewEvents(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	const limit = 4096
	st := provision(t, js, jetstore.StreamConfig{Name: "SMALL", Subjects: []string{"small.>"}, MaxBytes: limit}, jetstore.WithTimeout(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pad := strings.Repeat("x", 200)
	var stored int
	var err error
	for i := range 100 {
		if _, err = st.Append(ctx, event(fmt.Sprintf("small.a%d.added", i), `{"pad":"`+pad+`"}`)); err != nil {
			break
		}
		stored++
	}
	if !errors.Is(err, jetsource.ErrStorageFull) {
		t.Fatalf("after %d events: got %v, want ErrStorageFull", stored, err)
	}
	if !strings.Contains(err.Error(), "SMALL") || !strings.Contains(err.Error(), fmt.Sprint(limit)) {
		t.Errorf("the error %q does not name the stream and its limit", err)
	}
	if stored == 0 {
		t.Fatal("nothing fit")
	}
	// Every write path says so.
	if _, err := st.AppendBatch(ctx, []jetsource.Event{event("small.b.added", `{"pad":"`+pad+`"}`), event("small.b.renamed", `{}`)}); !errors.Is(err, jetsource.ErrStorageFull) {
		t.Errorf("a batch: got %v, want ErrStorageFull", err)
	}
	if _, err := st.Append(ctx, event("small.c.added", `{"pad":"`+pad+`"}`), jetsource.ExpectSequence(0)); !errors.Is(err, jetsource.ErrStorageFull) {
		t.Errorf("a conditioned append: got %v, want ErrStorageFull", err)
	}
	// The old events are all there.
	if got := readAll(t, st, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("small.>")}}); len(got) != stored {
		t.Fatalf("%d events readable, want the %d stored", len(got), stored)
	}
}
