package jetstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// strictFixture is one stream of a strict-mode test, with stores and
// clients on different nodes of the environment.
type strictFixture struct {
	name   string
	root   string
	strict *jetstore.Store // strict, through node 1
	plain  *jetstore.Store // default mode, through node 2
	// other is a third client (node 0), for writes of someone else.
	other   jetstream.JetStream
	otherNC *nats.Conn
}

func newStrictFixture(t *testing.T, env *raceEnv, replicas int, name string, opts ...jetstore.Option) *strictFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	root := strings.ToLower(name)
	otherNC, other := env.conn(t, 0)
	cfg := jetstore.StreamConfig{Name: "STRICT_" + name, Subjects: []string{root + ".>"}, Replicas: replicas}
	if _, err := jetstore.Provision(ctx, other, cfg); err != nil {
		t.Fatalf("provision: %v", err)
	}
	_, js1 := env.conn(t, 1)
	strict, err := jetstore.New(ctx, js1, cfg.Name, append([]jetstore.Option{jetstore.WithStrict(), jetstore.WithTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("open strict store: %v", err)
	}
	_, js2 := env.conn(t, 2)
	plain, err := jetstore.New(ctx, js2, cfg.Name, jetstore.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return &strictFixture{name: name, root: root, strict: strict, plain: plain, other: other, otherNC: otherNC}
}

// last returns the last sequence matching filter as the stream leader
// has it: a store's direct get may be answered by a replica a moment
// behind, which a test that expects exact sequences cannot use.
func (f *strictFixture) last(t *testing.T, filter string) uint64 {
	t.Helper()
	resp, err := f.otherNC.Request("$JS.API.STREAM.MSG.GET.STRICT_"+f.name, fmt.Appendf(nil, `{"last_by_subj":%q}`, filter), 10*time.Second)
	if err != nil {
		t.Fatalf("leader get %s: %v", filter, err)
	}
	var r struct {
		Message *struct {
			Sequence uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		t.Fatalf("leader get %s: %v", filter, err)
	}
	switch {
	case r.Error != nil && r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0
	case r.Error != nil:
		t.Fatalf("leader get %s: %v", filter, r.Error)
	}
	return r.Message.Sequence
}

// msgID returns the event id of the message at seq, as the stream leader
// has it.
func (f *strictFixture) msgID(t *testing.T, seq uint64) string {
	t.Helper()
	resp, err := f.otherNC.Request("$JS.API.STREAM.MSG.GET.STRICT_"+f.name, fmt.Appendf(nil, `{"seq":%d}`, seq), 10*time.Second)
	if err != nil {
		t.Fatalf("leader get %d: %v", seq, err)
	}
	var r struct {
		Message *struct {
			Header []byte `json:"hdrs"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil || r.Error != nil || r.Message == nil {
		t.Fatalf("leader get %d: %v %v", seq, err, r.Error)
	}
	hdr, err := nats.DecodeHeadersMsg(r.Message.Header)
	if err != nil {
		t.Fatalf("leader get %d: %v", seq, err)
	}
	return hdr.Get(jetsource.HeaderMsgID)
}

// subject returns root.rest.
func (f *strictFixture) subject(rest string) string { return f.root + "." + rest }

// filter returns the filter root.rest.
func (f *strictFixture) filter(rest string) subjects.Filter {
	return subjects.MustParseFilter(f.root + "." + rest)
}

// publish stores a plain message on root.rest, as another client would,
// and returns its sequence once the stream acknowledged it.
func (f *strictFixture) publish(t *testing.T, rest string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := f.other.Publish(ctx, f.subject(rest), []byte(`{}`))
	if err != nil {
		t.Errorf("publish %s: %v", rest, err)
		return 0
	}
	return ack.Sequence
}

// publishBefore makes st publish a plain message on root.rest before
// each of its next n conditioned publishes (every one when n < 0), and
// records the sequences.
func (f *strictFixture) publishBefore(t *testing.T, st *jetstore.Store, rest string, n int) *[]uint64 {
	var seqs []uint64
	var calls atomic.Int64
	jetstore.SetBeforePublish(st, func() {
		if c := calls.Add(1); n >= 0 && c > int64(n) {
			return
		}
		seqs = append(seqs, f.publish(t, rest))
	})
	t.Cleanup(func() { jetstore.SetBeforePublish(st, nil) })
	return &seqs
}

func mustAppend(t *testing.T, st *jetstore.Store, subject string, opts ...jetsource.AppendOption) jetsource.Ack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := st.Append(ctx, event(subject, `{}`), opts...)
	if err != nil {
		t.Fatalf("append %s: %v", subject, err)
	}
	return ack
}

// wantConflict checks that err is a conflict on filter with the given
// expectation and current sequence.
func wantConflict(t *testing.T, err error, filter string, expected, current uint64, readPos bool) {
	t.Helper()
	var ce *jetsource.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, jetsource.ErrConflict) {
		t.Fatalf("got %v, want a *ConflictError matching ErrConflict", err)
	}
	if ce.Filter != filter || ce.Expected != expected || ce.Current != current || !ce.CurrentKnown || ce.ReadPosition != readPos {
		t.Errorf("conflict %+v, want filter %s, expected %d, current %d (known), read position %v", *ce, filter, expected, current, readPos)
	}
}

func wantStats(t *testing.T, st *jetstore.Store, want jetstore.Stats) {
	t.Helper()
	if got := st.Stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

func testStrict(t *testing.T, env *raceEnv, replicas int) {
	ctx := context.Background()

	t.Run("Options", func(t *testing.T) {
		f := newStrictFixture(t, env, replicas, "Options")
		if !f.strict.Strict() || f.plain.Strict() {
			t.Errorf("Strict: got %v and %v, want true and false", f.strict.Strict(), f.plain.Strict())
		}
		_, js := env.conn(t, 0)
		_, err := jetstore.New(ctx, js, "STRICT_Options", jetstore.WithStrict(), jetstore.WithStrictRetries(-1))
		if !errors.Is(err, jetsource.ErrInvalidOption) {
			t.Errorf("WithStrictRetries(-1): got %v, want ErrInvalidOption", err)
		}
	})

	t.Run("ConflictReportsCurrent", func(t *testing.T) {
		f := newStrictFixture(t, env, replicas, "Conflict")
		a1 := mustAppend(t, f.strict, f.subject("A.added"), jetsource.ExpectSequence(0))
		mustAppend(t, f.plain, f.subject("B.added"))

		_, err := f.strict.Append(ctx, event(f.subject("A.renamed"), `{}`), jetsource.ExpectSequence(0))
		wantConflict(t, err, f.subject("A.>"), 0, a1.Sequence, false)
		_, err = f.strict.Append(ctx, event(f.subject("C.added"), `{}`), jetsource.ExpectNoneAfter(0, f.filter("A.>")))
		wantConflict(t, err, f.subject("A.>"), 0, a1.Sequence, true)
		_, err = f.strict.Append(ctx, event(f.subject("C.added"), `{}`), jetsource.ExpectLast(f.filter("*.added"), a1.Sequence))
		wantConflict(t, err, f.subject("*.added"), a1.Sequence, a1.Sequence+1, false)
		if got := f.last(t, ">"); got != 2 {
			t.Errorf("last sequence after conflicts: got %d, want 2", got)
		}

		// The stream moved on another aggregate before the read: that
		// is no conflict, and no retry either.
		a2 := mustAppend(t, f.strict, f.subject("A.renamed"), jetsource.ExpectSequence(a1.Sequence))
		if a2.Sequence != 3 {
			t.Errorf("append after an unrelated one: stored at %d, want 3", a2.Sequence)
		}
		mustAppend(t, f.strict, f.subject("C.added"), jetsource.ExpectNoneAfter(a2.Sequence, f.filter("A.>")))
		wantStats(t, f.strict, jetstore.Stats{Conditioned: 6, Conflicts: 3})
	})

	t.Run("RetryWhenUnrelatedSubjectsMove", func(t *testing.T) {
		f := newStrictFixture(t, env, replicas, "Retry")
		a1 := mustAppend(t, f.strict, f.subject("A.added"), jetsource.ExpectSequence(0))

		// Before each of the first two publishes another aggregate
		// moves the stream: the strict append must try again, twice.
		moved := f.publishBefore(t, f.strict, "B.added", 2)
		a2 := mustAppend(t, f.strict, f.subject("A.renamed"), jetsource.ExpectSequence(a1.Sequence))
		if len(*moved) != 2 || a2.Sequence != (*moved)[1]+1 {
			t.Errorf("stored at %d after unrelated events at %v, want right after the second", a2.Sequence, *moved)
		}
		wantStats(t, f.strict, jetstore.Stats{Conditioned: 2, Retries: 2})

		moved = f.publishBefore(t, f.strict, "B.renamed", 1)
		a3 := mustAppend(t, f.strict, f.subject("C.added"), jetsource.ExpectNoneAfter(a2.Sequence, f.filter("A.>")))
		if len(*moved) != 1 || a3.Sequence != (*moved)[0]+1 {
			t.Errorf("stored at %d after an unrelated event at %v, want right after it", a3.Sequence, *moved)
		}
		wantStats(t, f.strict, jetstore.Stats{Conditioned: 3, Retries: 3})

		// Without strict mode the unrelated event is no reason to retry.
		moved = f.publishBefore(t, f.plain, "B.removed", 1)
		mustAppend(t, f.plain, f.subject("A.removed"), jetsource.ExpectSequence(a2.Sequence))
		if len(*moved) != 1 {
			t.Errorf("hook ran %d times, want 1", len(*moved))
		}
		wantStats(t, f.plain, jetstore.Stats{Conditioned: 1})
	})

	t.Run("ConflictWhenMatchingEventLands", func(t *testing.T) {
		f := newStrictFixture(t, env, replicas, "Lands")
		a1 := mustAppend(t, f.strict, f.subject("A.added"), jetsource.ExpectSequence(0))

		// Someone else's plain publish to the aggregate lands between
		// the strict append's reads and its publish.
		foreign := f.publishBefore(t, f.strict, "A.foreign", 1)
		_, err := f.strict.Append(ctx, event(f.subject("A.renamed"), `{}`), jetsource.ExpectSequence(a1.Sequence))
		wantConflict(t, err, f.subject("A.>"), a1.Sequence, (*foreign)[0], false)

		foreign = f.publishBefore(t, f.strict, "A.foreign", 1)
		_, err = f.strict.Append(ctx, event(f.subject("C.added"), `{}`), jetsource.ExpectNoneAfter(f.last(t, ">"), f.filter("A.>")))
		wantConflict(t, err, f.subject("A.>"), (*foreign)[0]-1, (*foreign)[0], true)
		if got := f.last(t, ">"); got != (*foreign)[0] {
			t.Errorf("last sequence %d, want the foreign event's %d: a refused append stored something", got, (*foreign)[0])
		}
		wantStats(t, f.strict, jetstore.Stats{Conditioned: 3, Conflicts: 2})
	})

	t.Run("InFlightForeignWrite", func(t *testing.T) {
		// A plain publish sent, not yet stored, while the strict append
		// publishes: whichever the stream stores first, the strict
		// append may win only if it is stored before the foreign event.
		f := newStrictFixture(t, env, replicas, "InFlight")
		const rounds = 20
		var wins, conflicts int
		for round := range rounds {
			pos := f.last(t, ">")
			jetstore.SetBeforePublish(f.strict, func() {
				if err := f.otherNC.Publish(f.subject("A.foreign"), fmt.Appendf(nil, `{"round":%d}`, round)); err != nil {
					t.Errorf("publish: %v", err)
				}
			})
			ack, err := f.strict.Append(ctx, event(f.subject("A.mine"), `{}`), jetsource.ExpectNoneAfter(pos, f.filter("A.>")))
			jetstore.SetBeforePublish(f.strict, nil)
			var foreignSeq uint64
			checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
				seq := f.last(t, f.subject("A.foreign"))
				if seq <= pos {
					return fmt.Errorf("foreign event of round %d not stored yet (last %d)", round, seq)
				}
				foreignSeq = seq
				return nil
			})
			switch {
			case err == nil:
				wins++
				if ack.Sequence > foreignSeq {
					t.Errorf("round %d: read at %d, stored at %d, but the foreign event was stored at %d in between", round, pos, ack.Sequence, foreignSeq)
				}
			case errors.Is(err, jetsource.ErrConflict):
				conflicts++
				var ce *jetsource.ConflictError
				if errors.As(err, &ce) && ce.CurrentKnown && ce.Current != foreignSeq {
					t.Errorf("round %d: conflict at %d, want the foreign event's %d", round, ce.Current, foreignSeq)
				}
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		t.Logf("R%d: %d wins (stored before the foreign event), %d conflicts in %d rounds; %+v", replicas, wins, conflicts, rounds, f.strict.Stats())
	})

	t.Run("StreamBusy", func(t *testing.T) {
		f := newStrictFixture(t, env, replicas, "Busy", jetstore.WithStrictRetries(2))
		a1 := mustAppend(t, f.strict, f.subject("A.added"), jetsource.ExpectSequence(0))
		f.publishBefore(t, f.strict, "B.added", -1)
		_, err := f.strict.Append(ctx, event(f.subject("A.renamed"), `{}`), jetsource.ExpectSequence(a1.Sequence))
		if !errors.Is(err, jetstore.ErrStreamBusy) || !errors.Is(err, jetsource.ErrUnavailable) || errors.Is(err, jetsource.ErrConflict) {
			t.Fatalf("got %v, want ErrStreamBusy and ErrUnavailable, not ErrConflict", err)
		}
		_, err = f.strict.AppendBatch(ctx, []jetsource.Event{event(f.subject("A.renamed"), `{}`)}, jetsource.ExpectLast(f.filter("A.>"), a1.Sequence))
		if !errors.Is(err, jetstore.ErrStreamBusy) {
			t.Fatalf("batch: got %v, want ErrStreamBusy", err)
		}
		if got := f.last(t, f.subject("A.>")); got != a1.Sequence {
			t.Errorf("aggregate at %d, want %d: a busy append stored something", got, a1.Sequence)
		}
		wantStats(t, f.strict, jetstore.Stats{Conditioned: 3, Retries: 4, Busy: 2})
	})

	t.Run("Batch", func(t *testing.T) {
		f := newStrictFixture(t, env, replicas, "Batch")
		a1 := mustAppend(t, f.strict, f.subject("A.added"), jetsource.ExpectSequence(0))
		batch := func(ids ...string) []jetsource.Event {
			var es []jetsource.Event
			for i, id := range ids {
				e := event(f.subject(fmt.Sprintf("A.step%d", i)), `{}`)
				e.ID = id
				es = append(es, e)
			}
			return es
		}

		t.Run("RetryWhenUnrelatedSubjectsMove", func(t *testing.T) {
			moved := f.publishBefore(t, f.strict, "B.added", 1)
			acks, err := f.strict.AppendBatch(ctx, batch("b1", "b2"), jetsource.ExpectLast(f.filter("A.>"), a1.Sequence), jetsource.ExpectNoneAfter(a1.Sequence, f.filter("C.>")))
			if err != nil {
				t.Fatal(err)
			}
			if len(*moved) != 1 || acks[0].Sequence != (*moved)[0]+1 || acks[1].Sequence != acks[0].Sequence+1 {
				t.Errorf("acks %+v after an unrelated event at %v, want the two right after it", acks, *moved)
			}
			// The same batch again, as after a lost acknowledgement: its
			// own events broke its conditions, but it is a duplicate.
			again, err := f.strict.AppendBatch(ctx, batch("b1", "b2"), jetsource.ExpectLast(f.filter("A.>"), a1.Sequence), jetsource.ExpectNoneAfter(a1.Sequence, f.filter("C.>")))
			if err != nil {
				t.Fatalf("retry of a stored batch: %v", err)
			}
			for i := range again {
				if !again[i].Duplicate || again[i].Sequence != acks[i].Sequence {
					t.Errorf("retry ack %d: %+v, want a duplicate of %+v", i, again[i], acks[i])
				}
			}
		})

		t.Run("ConflictWhenMatchingEventLands", func(t *testing.T) {
			last, aLast := f.last(t, ">"), f.last(t, f.subject("A.>"))
			foreign := f.publishBefore(t, f.strict, "C.foreign", 1)
			_, err := f.strict.AppendBatch(ctx, batch("c1", "c2"), jetsource.ExpectLast(f.filter("A.>"), aLast), jetsource.ExpectNoneAfter(last, f.filter("C.>")))
			wantConflict(t, err, f.subject("C.>"), last, (*foreign)[0], true)
			if got := f.last(t, ">"); got != (*foreign)[0] {
				t.Errorf("last sequence %d, want the foreign event's %d: a refused batch stored something", got, (*foreign)[0])
			}
		})

		t.Run("ExtraCondition", func(t *testing.T) {
			// Two conditions on one event: one rides on the event, the
			// other is read and guarded by the stream's last sequence.
			aLast := f.last(t, f.subject("A.>"))
			moved := f.publishBefore(t, f.strict, "B.renamed", 1)
			ack := mustAppend(t, f.strict, f.subject("A.renamed"), jetsource.ExpectSequence(aLast), jetsource.ExpectNoneAfter(aLast, f.filter("C.x")))
			if len(*moved) != 1 || ack.Sequence != (*moved)[0]+1 {
				t.Errorf("stored at %d after an unrelated event at %v, want right after it", ack.Sequence, *moved)
			}
		})
		wantStats(t, f.strict, jetstore.Stats{Conditioned: 5, Retries: 2, Conflicts: 1})
	})
}

// testGlitches checks that the passing states of a cluster just created
// or electing a leader are waited out, not reported.
func testGlitches(t *testing.T, env *raceEnv, replicas int) {
	ctx := context.Background()

	t.Run("NoDirectGetResponder", func(t *testing.T) {
		// A store opened while the stream allowed direct gets, which the
		// stream then stopped serving: nobody answers a direct get, as on
		// a replicated stream just created. Reads ask the leader.
		var logged atomic.Int64
		log := slogCounter(&logged, "no direct get responder")
		f := newStrictFixture(t, env, replicas, "NoDirect")
		_, js := env.conn(t, 1)
		st, err := jetstore.New(ctx, js, "STRICT_NoDirect", jetstore.WithLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		a1 := mustAppend(t, st, f.subject("A.added"), jetsource.ExpectNoneAfter(0, f.filter("A.>")))
		info, err := f.other.Stream(ctx, "STRICT_NoDirect")
		if err != nil {
			t.Fatal(err)
		}
		cfg := info.CachedInfo().Config
		cfg.AllowDirect = false
		if _, err := f.other.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
			seq, err := st.LastSequence(ctx, f.filter("A.>"))
			if errors.Is(err, jetsource.ErrUnavailable) {
				// The stream update may move its leader on a loaded
				// machine: ask again.
				return err
			}
			if err != nil {
				t.Fatalf("last sequence without direct get: %v", err)
			}
			if seq != a1.Sequence {
				t.Fatalf("last sequence without direct get: %d, want %d", seq, a1.Sequence)
			}
			if logged.Load() == 0 {
				return errors.New("direct gets still answered")
			}
			return nil
		})
		a2 := mustAppend(t, st, f.subject("A.renamed"), jetsource.ExpectNoneAfter(a1.Sequence, f.filter("A.>")))
		if got := readAll(t, st, jetsource.Query{Filters: []subjects.Filter{f.filter("A.>")}}); len(got) != 2 || got[1].Sequence != a2.Sequence {
			t.Errorf("read %d events without direct get, want 2 ending at %d", len(got), a2.Sequence)
		}
	})

	t.Run("DeletedStream", func(t *testing.T) {
		// Nobody answers a subject the stream captured: the stream is
		// gone, which the append tells at once, not at its deadline.
		f := newStrictFixture(t, env, replicas, "Deleted")
		mustAppend(t, f.plain, f.subject("A.added"))
		if err := f.other.DeleteStream(ctx, "STRICT_Deleted"); err != nil {
			t.Fatal(err)
		}
		ops := map[string]func(context.Context) error{
			"Append": func(ctx context.Context) error {
				_, err := f.plain.Append(ctx, event(f.subject("A.renamed"), `{}`))
				return err
			},
			"StrictAppend": func(ctx context.Context) error {
				_, err := f.strict.Append(ctx, event(f.subject("A.renamed"), `{}`), jetsource.ExpectNoneAfter(1, f.filter("A.>")))
				return err
			},
			"AppendBatch": func(ctx context.Context) error {
				_, err := f.plain.AppendBatch(ctx, []jetsource.Event{event(f.subject("A.renamed"), `{}`)})
				return err
			},
		}
		// The deadline is long, so that a loaded machine answers well
		// before it: an append that waited for it would take 30s.
		const deadline = 30 * time.Second
		for name, op := range ops {
			octx, cancel := context.WithTimeout(ctx, deadline)
			start := time.Now()
			err := op(octx)
			cancel()
			if !errors.Is(err, jetsource.ErrStreamNotFound) {
				t.Errorf("%s: got %v, want ErrStreamNotFound", name, err)
			}
			if took := time.Since(start); took > deadline/3 {
				t.Errorf("%s took %v, want an answer well before the %v deadline", name, took, deadline)
			}
		}
	})

	if replicas == 1 {
		return
	}

	t.Run("ProvisionMoreReplicasThanServers", func(t *testing.T) {
		_, js := env.conn(t, 0)
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		start := time.Now()
		_, err := jetstore.Provision(pctx, js, jetstore.StreamConfig{Name: "R5", Subjects: []string{"r5.>"}, Replicas: 5})
		if !errors.Is(err, jetsource.ErrUnavailable) {
			t.Errorf("got %v, want ErrUnavailable", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("took %v with a 1s deadline", took)
		}
	})

	t.Run("LeaderStepDown", func(t *testing.T) {
		f := newStrictFixture(t, env, replicas, "StepDown")
		mustAppend(t, f.strict, f.subject("A.added"), jetsource.ExpectSequence(0))
		stepDown := func(t *testing.T) time.Time {
			t.Helper()
			// Refused while the election of the step down before goes on.
			checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
				resp, err := f.otherNC.Request("$JS.API.STREAM.LEADER.STEPDOWN.STRICT_StepDown", nil, 5*time.Second)
				if err != nil {
					return err
				}
				if !strings.Contains(string(resp.Data), `"success":true`) {
					return fmt.Errorf("step down: %s", resp.Data)
				}
				return nil
			})
			return time.Now()
		}
		// Each right after a step down, while the stream elects a new
		// leader, within the default 5s deadline.
		ops := []struct {
			name string
			run  func(t *testing.T) error
		}{
			{"NewAndStrictAppend", func(t *testing.T) error {
				_, js := env.conn(t, 1)
				st, err := jetstore.New(ctx, js, "STRICT_StepDown", jetstore.WithStrict())
				if err != nil {
					return err
				}
				last, err := st.LastSequence(ctx, f.filter("A.>"))
				if err != nil {
					return err
				}
				_, err = st.Append(ctx, event(f.subject("A.renamed"), `{}`), jetsource.ExpectNoneAfter(last, f.filter("A.>")))
				return err
			}},
			{"Append", func(t *testing.T) error {
				_, err := f.plain.Append(ctx, event(f.subject("B.added"), `{}`))
				return err
			}},
			{"AppendBatch", func(t *testing.T) error {
				_, err := f.plain.AppendBatch(ctx, []jetsource.Event{event(f.subject("B.renamed"), `{}`), event(f.subject("B.removed"), `{}`)})
				return err
			}},
			{"StrictAppend", func(t *testing.T) error {
				_, err := f.strict.Append(ctx, event(f.subject("A.removed"), `{}`), jetsource.ExpectSequence(2)) // A.renamed
				return err
			}},
		}
		for _, op := range ops {
			start := stepDown(t)
			if err := op.run(t); err != nil {
				t.Errorf("%s during an election: %v", op.name, err)
			}
			t.Logf("%s done %v after the step down", op.name, time.Since(start).Round(time.Millisecond))
		}
		// Each append stored once, as the leader has it.
		if got := f.last(t, ">"); got != 6 {
			t.Errorf("last sequence %d, want 6", got)
		}
		ids := map[string]bool{}
		for seq := range uint64(6) {
			ids[f.msgID(t, seq+1)] = true
		}
		if len(ids) != 6 {
			t.Errorf("%d distinct event ids in 6 events, want 6", len(ids))
		}
	})
}

// slogCounter returns a logger that counts the records whose message
// contains msg.
func slogCounter(n *atomic.Int64, msg string) *slog.Logger {
	return slog.New(countHandler{n: n, msg: msg})
}

type countHandler struct {
	n   *atomic.Int64
	msg string
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		h.n.Add(1)
	}
	return nil
}

func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }
