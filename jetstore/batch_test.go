package jetstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

func TestBatchOnStreamWithoutAtomicPublish(t *testing.T) {
	srv := embeddedtest.Run(t)
	js, err := jetstream.New(embeddedtest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A stream made by someone else, without atomic publish.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PLAIN", Subjects: []string{"plain.>"}}); err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "PLAIN", jetstore.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	evs := []jetsource.Event{
		{Subject: subjects.MustParse("plain.A.x"), Data: []byte(`{}`)},
		{Subject: subjects.MustParse("plain.A.y"), Data: []byte(`{}`)},
	}
	start := time.Now()
	_, err = st.AppendBatch(ctx, evs)
	if !errors.Is(err, jetsource.ErrInvalidOption) {
		t.Fatalf("a batch on a stream without atomic publish: got %v, want ErrInvalidOption naming the cause", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the refusal took %v", d)
	}
	if n, _ := st.LastSequence(ctx, subjects.All()); n != 0 {
		t.Fatalf("a refused batch wrote %d events", n)
	}
	t.Log(err)
}
