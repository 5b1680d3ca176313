package flags

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the name of the flag bucket when none is given.
const DefaultBucket = "jetsource_flags"

// DefaultHistory is how many values per flag a bucket made by
// [EnsureBucket] keeps (the most JetStream allows).
const DefaultHistory = jetstream.KeyValueMaxHistory

const bucketTimeout = 5 * time.Second

// EnsureBucket returns the key-value bucket cfg.Bucket, creating it with
// cfg when it does not exist (an existing bucket is used as it is). Empty
// fields default: Bucket to [DefaultBucket], History to [DefaultHistory],
// Description to one naming its purpose; storage is on file unless cfg
// says otherwise. Without a deadline on ctx it gives up after 5s. It
// returns the client's error when the bucket can be neither opened nor
// created.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.History == 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Description == "" {
		cfg.Description = "jetsource feature flags: one key per flag"
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bucketTimeout)
		defer cancel()
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("flags: open bucket %s: %w", cfg.Bucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, cfg.Bucket) // created by someone else meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("flags: create bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// OpenBucket returns the existing key-value bucket name. It returns an
// error matching [ErrNoBucket] when there is no such bucket, and the
// client's error otherwise. Without a deadline on ctx it gives up after 5s.
func OpenBucket(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bucketTimeout)
		defer cancel()
	}
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoBucket, name)
	}
	if err != nil {
		return nil, fmt.Errorf("flags: open bucket %s: %w", name, err)
	}
	return kv, nil
}
