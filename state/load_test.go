package state_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

// backend is a store with its snapshot store and loader options.
type backend struct {
	name  string
	store jetsource.Store
	snaps state.SnapshotStore
	opts  []state.Option
	js    jetstream.JetStream
}

func backends(t *testing.T) []backend {
	t.Helper()
	mem, err := jetsource.NewMemoryStore()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srv := embeddedtest.Run(t)
	js, err := jetstream.New(embeddedtest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	open := func(stream string) *jetstore.Store {
		if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: stream, Subjects: []string{stream + ".>"}}); err != nil {
			t.Fatal(err)
		}
		st, err := jetstore.New(ctx, js, stream)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	kv1, err := state.NewKVSnapshots(ctx, js, "SNAP_DIRECT")
	if err != nil {
		t.Fatal(err)
	}
	kv2, err := state.NewKVSnapshots(ctx, js, "SNAP_CONSUMER")
	if err != nil {
		t.Fatal(err)
	}
	return []backend{
		{name: "Memory", store: mem, snaps: state.NewMemorySnapshots()},
		{name: "JetStreamDirect", store: open("d"), snaps: kv1, opts: []state.Option{state.WithJetStream(js, "d")}, js: js},
		{name: "JetStreamConsumer", store: open("c"), snaps: kv2, js: js},
	}
}

// root returns the subject root of the backend's stream.
func (b backend) root() string {
	switch b.name {
	case "JetStreamDirect":
		return "d"
	case "JetStreamConsumer":
		return "c"
	}
	return "m"
}

func (b backend) append(t *testing.T, subject, data string) jetsource.Ack {
	t.Helper()
	ack, err := b.store.Append(context.Background(), jetsource.Event{Subject: subjects.MustParse(b.root() + "." + subject), Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

func (b backend) agg(name string) subjects.Subject { return subjects.MustParse(b.root() + "." + name) }

// counting wraps the merge reducer and counts the events it applies.
func counting(version string) (state.Reducer[any], *atomic.Int64) {
	n := new(atomic.Int64)
	r := state.MergeReducer()
	apply := r.Apply
	r.Version = version
	r.Apply = func(s any, e jetsource.Event) (any, error) {
		n.Add(1)
		return apply(s, e)
	}
	return r, n
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoad(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			var stored []time.Time
			for _, ev := range []struct{ subj, data string }{
				{"users.A.added", `{"name":"Ann","age":1}`},
				{"users.A.renamed", `{"name":"Anne"}`},
				{"users.B.added", `{"name":"Bob"}`},
				{"users.A.aged", `{"age":null,"tags":["x"]}`},
			} {
				b.append(t, ev.subj, ev.data)
				time.Sleep(3 * time.Millisecond) // distinct stored times for AtTime
			}
			for e, err := range b.store.Read(ctx, jetsource.Query{}) {
				if err != nil {
					t.Fatal(err)
				}
				stored = append(stored, e.Stored)
			}
			a := b.agg("users.A")
			load := func(t *testing.T, opts ...state.Option) (string, uint64) {
				t.Helper()
				s, seq, err := state.Load(ctx, b.store, state.MergeReducer(), a, append(b.opts, opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				return asJSON(t, s), seq
			}
			tests := []struct {
				name string
				opts []state.Option
				want string
				seq  uint64
			}{
				{"Head", nil, `{"name":"Anne","tags":["x"]}`, 4},
				{"AtSequence2", []state.Option{state.AtSequence(2)}, `{"age":1,"name":"Anne"}`, 2},
				{"AtSequence3IsStateAt2", []state.Option{state.AtSequence(3)}, `{"age":1,"name":"Anne"}`, 2},
				{"AtSequence1", []state.Option{state.AtSequence(1)}, `{"age":1,"name":"Ann"}`, 1},
				{"AtSequence0", []state.Option{state.AtSequence(0)}, `{}`, 0},
				{"AtSequencePastHead", []state.Option{state.AtSequence(100)}, `{"name":"Anne","tags":["x"]}`, 4},
				{"AtTimeOfSecond", []state.Option{state.AtTime(stored[1])}, `{"age":1,"name":"Anne"}`, 2},
				{"AtTimeBeforeAll", []state.Option{state.AtTime(stored[0].Add(-time.Hour))}, `{}`, 0},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, seq := load(t, tt.opts...)
					if got != tt.want || seq != tt.seq {
						t.Fatalf("got %s at %d, want %s at %d", got, seq, tt.want, tt.seq)
					}
				})
			}
			t.Run("UnknownAggregateIsInitial", func(t *testing.T) {
				s, seq, err := state.Load(ctx, b.store, state.MergeReducer(), b.agg("users.nobody"), append(b.opts, state.WithSnapshots(b.snaps))...)
				if err != nil || asJSON(t, s) != `{}` || seq != 0 {
					t.Fatalf("got %v at %d, %v", s, seq, err)
				}
			})
			t.Run("ErrInvalidSubject", func(t *testing.T) {
				if _, _, err := state.Load(ctx, b.store, state.MergeReducer(), subjects.Subject{}, b.opts...); !errors.Is(err, jetsource.ErrInvalidSubject) {
					t.Fatalf("got %v", err)
				}
			})
			t.Run("ErrReducer", func(t *testing.T) {
				if _, err := b.store.Append(ctx, jetsource.Event{Subject: b.agg("users.T.said"), Data: []byte("hello"), DataContentType: "text/plain"}); err != nil {
					t.Fatal(err)
				}
				_, _, err := state.Load(ctx, b.store, state.MergeReducer(), b.agg("users.T"), b.opts...)
				if !errors.Is(err, state.ErrReducer) || !errors.Is(err, jetsource.ErrInvalidData) {
					t.Fatalf("got %v", err)
				}
			})
		})
	}
}

func TestSnapshots(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			r, applied := counting("v1")
			opts := append([]state.Option{state.WithSnapshots(b.snaps), state.WithSnapshotEvery(3), state.WithSnapshotOnScan(false)}, b.opts...)
			l, err := state.NewLoader(b.store, r, opts...)
			if err != nil {
				t.Fatal(err)
			}
			a := b.agg("orders.O1")
			load := func(t *testing.T, wantApplied int64, want string, opts ...state.Option) uint64 {
				t.Helper()
				applied.Store(0)
				s, seq, err := l.Load(ctx, a, opts...)
				if err != nil {
					t.Fatal(err)
				}
				if got := asJSON(t, s); got != want {
					t.Fatalf("state %s, want %s", got, want)
				}
				if n := applied.Load(); n != wantApplied {
					t.Fatalf("applied %d events, want %d", n, wantApplied)
				}
				return seq
			}
			snapSeq := func(t *testing.T) uint64 {
				t.Helper()
				s, err := b.snaps.Get(ctx, a)
				if errors.Is(err, state.ErrSnapshotNotFound) {
					return 0
				}
				if err != nil {
					t.Fatal(err)
				}
				return s.Sequence
			}
			b.append(t, "orders.O1.placed", `{"n":1}`)
			b.append(t, "orders.O2.placed", `{"n":99}`)
			b.append(t, "orders.O1.paid", `{"n":2}`)
			load(t, 2, `{"n":2}`)
			if s := snapSeq(t); s != 0 {
				t.Fatalf("snapshot at %d after 2 events, want none", s)
			}
			b.append(t, "orders.O1.shipped", `{"n":3}`)
			fourth := b.append(t, "orders.O1.paid", `{"n":4}`).Sequence
			t.Run("WrittenAfterN", func(t *testing.T) {
				load(t, 4, `{"n":4}`)
				if s := snapSeq(t); s != fourth {
					t.Fatalf("snapshot at %d, want %d", s, fourth)
				}
			})
			t.Run("FreshSnapshotReadsNothing", func(t *testing.T) {
				if seq := load(t, 0, `{"n":4}`); seq != fourth {
					t.Fatalf("sequence %d, want %d", seq, fourth)
				}
			})
			b.append(t, "orders.O1.noted", `{"note":"a"}`)
			t.Run("TailOnlyAfterSnapshot", func(t *testing.T) {
				load(t, 1, `{"n":4,"note":"a"}`)
				if s := snapSeq(t); s != fourth {
					t.Fatalf("snapshot moved to %d with a tail shorter than N", s)
				}
			})
			b.append(t, "orders.O1.noted", `{"note":"b"}`)
			b.append(t, "orders.O2.placed", `{"n":100}`)
			b.append(t, "orders.O1.paid", `{"n":5}`)
			t.Run("LongerTailSameSubject", func(t *testing.T) {
				last := load(t, 3, `{"n":5,"note":"b"}`)
				if s := snapSeq(t); s != last {
					t.Fatalf("snapshot at %d, want %d after a tail of N", s, last)
				}
			})
			t.Run("SnapshotNewerThanAtIgnored", func(t *testing.T) {
				// The snapshot is at the head now; these are before it.
				load(t, 2, `{"n":2}`, state.AtSequence(fourth-2))
				load(t, 5, `{"n":4,"note":"a"}`, state.AtSequence(fourth+1))
			})
			t.Run("OlderSnapshotUsedForLaterAt", func(t *testing.T) {
				load(t, 0, `{"n":5,"note":"b"}`, state.AtSequence(fourth+100))
			})
			t.Run("IgnoredOnVersionChange", func(t *testing.T) {
				r2, applied2 := counting("v2")
				s, _, err := state.Load(ctx, b.store, r2, a, opts...)
				if err != nil || asJSON(t, s) != `{"n":5,"note":"b"}` || applied2.Load() != 7 {
					t.Fatalf("got %v, %d applied, %v", s, applied2.Load(), err)
				}
				snap, err := b.snaps.Get(ctx, a)
				if err != nil || snap.Version != "v2" {
					t.Fatalf("snapshot %+v, %v; want one of v2", snap, err)
				}
			})
		})
	}
}

// On JetStream the loader finds new events from the subject counts and the
// last event of each subject, and snapshots after a scan.
func TestDirectPaths(t *testing.T) {
	b := backends(t)[1]
	ctx := context.Background()
	r, applied := counting("v1")
	l, err := state.NewLoader(b.store, r, append([]state.Option{state.WithSnapshots(b.snaps)}, b.opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	a := b.agg("carts.C")
	b.append(t, "carts.C.opened", `{"items":0}`)
	b.append(t, "carts.X.opened", `{}`)
	b.append(t, "carts.C.added", `{"items":1}`)
	check := func(t *testing.T, wantApplied int64, want string) {
		t.Helper()
		applied.Store(0)
		s, _, err := l.Load(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if got := asJSON(t, s); got != want || applied.Load() != wantApplied {
			t.Fatalf("got %s after %d events, want %s after %d", got, applied.Load(), want, wantApplied)
		}
	}
	t.Run("ScanWritesSnapshot", func(t *testing.T) {
		check(t, 2, `{"items":1}`)
		if s, err := b.snaps.Get(ctx, a); err != nil || s.Count != 2 {
			t.Fatalf("snapshot %+v, %v", s, err)
		}
		check(t, 0, `{"items":1}`)
	})
	t.Run("NewEventsOnDistinctSubjects", func(t *testing.T) {
		b.append(t, "carts.C.added", `{"items":2}`)
		b.append(t, "carts.C.checked", `{"done":true}`)
		check(t, 2, `{"done":true,"items":2}`)
	})
	t.Run("TwoOnOneSubjectScans", func(t *testing.T) {
		b.append(t, "carts.C.added", `{"items":3}`)
		b.append(t, "carts.C.added", `{"items":4}`)
		// Four events since the snapshot, two of them the last of their
		// subject: the tail is scanned, and a snapshot written.
		check(t, 4, `{"done":true,"items":4}`)
		check(t, 0, `{"done":true,"items":4}`)
	})
	t.Run("LongHistoryInBatches", func(t *testing.T) {
		var evs []jetsource.Event
		for i := range 1500 {
			evs = append(evs, jetsource.Event{Subject: b.agg("carts.L.set"), Data: []byte(fmt.Sprintf(`{"i":%d}`, i))})
		}
		if _, err := b.store.AppendBatch(ctx, evs[:1000]); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.AppendBatch(ctx, evs[1000:]); err != nil {
			t.Fatal(err)
		}
		applied.Store(0)
		s, _, err := l.Load(ctx, b.agg("carts.L"))
		if err != nil || asJSON(t, s) != `{"i":1499}` || applied.Load() != 1500 {
			t.Fatalf("got %v after %d, %v", s, applied.Load(), err)
		}
	})
	t.Run("UnreadableSnapshotIgnored", func(t *testing.T) {
		kv, err := b.js.KeyValue(ctx, "SNAP_DIRECT")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, state.Key(a), []byte("not json")); err != nil {
			t.Fatal(err)
		}
		check(t, 6, `{"done":true,"items":4}`)
	})
}

func TestOptionsErrInvalidOption(t *testing.T) {
	mem, _ := jetsource.NewMemoryStore()
	for _, tt := range []struct {
		name string
		fn   func() error
	}{
		{"SnapshotEveryZero", func() error {
			_, err := state.NewLoader(mem, state.MergeReducer(), state.WithSnapshotEvery(0))
			return err
		}},
		{"NilSnapshots", func() error {
			_, err := state.NewLoader(mem, state.MergeReducer(), state.WithSnapshots(nil))
			return err
		}},
		{"NilStore", func() error { _, err := state.NewLoader[any](nil, state.MergeReducer()); return err }},
		{"NoVersion", func() error {
			r := state.MergeReducer()
			r.Version = ""
			_, err := state.NewLoader(mem, r)
			return err
		}},
		{"ZeroTime", func() error {
			_, err := state.NewLoader(mem, state.MergeReducer(), state.AtTime(time.Time{}))
			return err
		}},
		{"BadBucket", func() error { _, err := state.NewKVSnapshots(context.Background(), nil, "a.b"); return err }},
		{"NoJetStream", func() error {
			_, err := state.NewLoader(mem, state.MergeReducer(), state.WithJetStream(nil, ""))
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); !errors.Is(err, jetsource.ErrInvalidOption) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{"users.A": "users.A", "users.a=b": "users.a=3Db", "u.ann@x": "u.ann=40x"} {
		if got := state.Key(subjects.MustParse(in)); got != want {
			t.Errorf("Key(%s) = %s, want %s", in, got, want)
		}
	}
}
