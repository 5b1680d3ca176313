package jetstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/storetest"
)

func TestCompliance(t *testing.T) {
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	storetest.Run(t, storetest.Features{}, func(t testing.TB, filter string) jetsource.Store {
		ctx := context.Background()
		name := fmt.Sprintf("S%d", n.Add(1))
		if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: name, Subjects: []string{filter}}); err != nil {
			t.Fatal(err)
		}
		st, err := jetstore.New(ctx, js, name)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
