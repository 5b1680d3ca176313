package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Snapshot is the state of an aggregate after the event at Sequence.
type Snapshot struct {
	// Version is the version of the reducer that computed State.
	Version string `json:"version"`
	// Sequence is the stream sequence of the last event folded.
	Sequence uint64 `json:"sequence"`
	// Time is when the stream stored that event.
	Time time.Time `json:"time"`
	// Count is the number of the aggregate's events folded.
	Count uint64 `json:"count"`
	// State is the state as JSON.
	State json.RawMessage `json:"state"`
}

// SnapshotStore keeps one snapshot per aggregate.
type SnapshotStore interface {
	// Get returns the aggregate's snapshot, or [ErrSnapshotNotFound].
	Get(ctx context.Context, aggregate subjects.Subject) (Snapshot, error)
	// Put replaces the aggregate's snapshot.
	Put(ctx context.Context, aggregate subjects.Subject, s Snapshot) error
}

// MemorySnapshots is a [SnapshotStore] in memory, for tests and for stores
// without a key-value bucket. It is safe for concurrent use.
type MemorySnapshots struct {
	mu    sync.Mutex
	snaps map[subjects.Subject]Snapshot
	puts  int
}

// NewMemorySnapshots returns an empty in-memory snapshot store.
func NewMemorySnapshots() *MemorySnapshots {
	return &MemorySnapshots{snaps: map[subjects.Subject]Snapshot{}}
}

var _ SnapshotStore = (*MemorySnapshots)(nil)

// Get implements [SnapshotStore.Get]; it returns [ErrSnapshotNotFound] or
// the context's error.
func (m *MemorySnapshots) Get(ctx context.Context, aggregate subjects.Subject) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.snaps[aggregate]
	if !ok {
		return Snapshot{}, ErrSnapshotNotFound
	}
	s.State = append(json.RawMessage(nil), s.State...)
	return s, nil
}

// Put implements [SnapshotStore.Put]; it returns only the context's error.
func (m *MemorySnapshots) Put(ctx context.Context, aggregate subjects.Subject, s Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.State = append(json.RawMessage(nil), s.State...)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snaps[aggregate] = s
	m.puts++
	return nil
}

// Puts returns how many snapshots were written.
func (m *MemorySnapshots) Puts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.puts
}

// KVSnapshots is a [SnapshotStore] on a NATS key-value bucket: the key is
// the aggregate with each token escaped ([Key]), the value the snapshot as
// JSON. It is safe for concurrent use.
type KVSnapshots struct {
	kv jetstream.KeyValue
}

var _ SnapshotStore = (*KVSnapshots)(nil)

// KVSnapshotsOption configures the bucket [NewKVSnapshots] creates.
type KVSnapshotsOption func(*jetstream.KeyValueConfig) error

// BucketMaxBytes limits the size of a snapshot bucket that
// [NewKVSnapshots] creates (0: no limit). Snapshots are a cache: when the
// bucket is full, writing a snapshot fails and loads read the events.
func BucketMaxBytes(n int64) KVSnapshotsOption {
	return func(c *jetstream.KeyValueConfig) error {
		if n < 0 {
			return fmt.Errorf("%w: negative bucket size %d", jetsource.ErrInvalidOption, n)
		}
		if n > 0 {
			c.MaxBytes = n
		}
		return nil
	}
}

// NewKVSnapshots opens the key-value bucket named bucket, creating it (file
// storage, one value per key) when it does not exist. Options apply to a
// bucket it creates.
//
// It returns an error matching [jetsource.ErrInvalidOption] for an invalid
// bucket name or option and [jetsource.ErrUnavailable] when the server
// does not answer.
func NewKVSnapshots(ctx context.Context, js jetstream.JetStream, bucket string, opts ...KVSnapshotsOption) (*KVSnapshots, error) {
	if !validBucket(bucket) {
		return nil, fmt.Errorf("%w: snapshot bucket %q may hold only letters, digits, '-' and '_'", jetsource.ErrInvalidOption, bucket)
	}
	cfg := jetstream.KeyValueConfig{
		Bucket: bucket, Description: "jetsource aggregate snapshots", History: 1, Storage: jetstream.FileStorage,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("state: snapshot bucket %s: %w", bucket, unavailable(err))
	}
	return &KVSnapshots{kv: kv}, nil
}

// OpenKVSnapshots opens the key-value bucket named bucket, like
// [NewKVSnapshots], but never creates it: for readers that must leave
// the server as they found it.
//
// It returns an error matching [ErrBucketNotFound] when the bucket does
// not exist, [jetsource.ErrInvalidOption] for an invalid bucket name and
// [jetsource.ErrUnavailable] when the server does not answer.
func OpenKVSnapshots(ctx context.Context, js jetstream.JetStream, bucket string) (*KVSnapshots, error) {
	if !validBucket(bucket) {
		return nil, fmt.Errorf("%w: snapshot bucket %q may hold only letters, digits, '-' and '_'", jetsource.ErrInvalidOption, bucket)
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrBucketNotFound, bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("state: snapshot bucket %s: %w", bucket, unavailable(err))
	}
	return &KVSnapshots{kv: kv}, nil
}

func validBucket(b string) bool {
	if b == "" {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Key returns the key-value key of an aggregate: its tokens, each escaped
// with [subjects.Escape], joined by dots. Different aggregates have
// different keys.
func Key(aggregate subjects.Subject) string {
	toks := aggregate.Tokens()
	for i, t := range toks {
		toks[i] = subjects.Escape(t)
	}
	return strings.Join(toks, ".")
}

// Get implements [SnapshotStore.Get]. It returns [ErrSnapshotNotFound]
// for a missing or unreadable snapshot and [jetsource.ErrUnavailable] when
// the server does not answer.
func (k *KVSnapshots) Get(ctx context.Context, aggregate subjects.Subject) (Snapshot, error) {
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	e, err := k.kv.Get(ctx, Key(aggregate))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Snapshot{}, ErrSnapshotNotFound
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("state: get snapshot of %s: %w", aggregate, unavailable(err))
	}
	var s Snapshot
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return Snapshot{}, fmt.Errorf("%w: snapshot of %s is not readable: %v", ErrSnapshotNotFound, aggregate, err)
	}
	return s, nil
}

// Put implements [SnapshotStore.Put]. It returns
// [jetsource.ErrPayloadTooLarge] for a snapshot larger than the bucket
// takes and [jetsource.ErrUnavailable] when the server does not answer.
func (k *KVSnapshots) Put(ctx context.Context, aggregate subjects.Subject, s Snapshot) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	if _, err := k.kv.Put(ctx, Key(aggregate), b); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == codeMessageTooLarge || errors.Is(err, nats.ErrMaxPayload) {
			return fmt.Errorf("%w: snapshot of %s is %d bytes: %w", jetsource.ErrPayloadTooLarge, aggregate, len(b), err)
		}
		return fmt.Errorf("state: put snapshot of %s: %w", aggregate, unavailable(err))
	}
	return nil
}
