package state_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/state"
)

func TestKVSnapshotsBucketMaxBytes(t *testing.T) {
	srv := embeddedtest.Run(t)
	js, err := jetstream.New(embeddedtest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := state.NewKVSnapshots(ctx, js, "SNAPS_LIMITED", state.BucketMaxBytes(64<<10)); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "SNAPS_LIMITED")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.MaxBytes; got != 64<<10 {
		t.Errorf("bucket max bytes = %d, want %d", got, 64<<10)
	}
	if _, err := state.NewKVSnapshots(ctx, js, "SNAPS_BAD", state.BucketMaxBytes(-1)); !errors.Is(err, jetsource.ErrInvalidOption) {
		t.Errorf("negative size: %v", err)
	}
}
