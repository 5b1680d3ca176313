// Package storetest is the compliance suite of [jetsource.Store]: every
// backend runs it from one short test and so keeps the same contract.
//
//	func TestCompliance(t *testing.T) {
//		storetest.Run(t, storetest.Features{}, func(t testing.TB, filter string) jetsource.Store {
//			return newEmptyStoreCapturing(t, filter)
//		})
//	}
//
// Each case runs in parallel on a store of its own, which must be empty and
// capture the subjects matching the filter it is given. A failure names the contract
// that broke.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Features states what a backend promises beyond the common contract.
type Features struct {
	// Root prefixes the first token of every subject the suite writes
	// (default "test"): case i writes under Root followed by i.
	Root string
	// MaxPayload is the largest event the store accepts (default 1 MiB).
	MaxPayload int
	// Timeout bounds every operation of a case (default 10s).
	Timeout time.Duration
}

// NewStore returns an empty store that captures the subjects matching
// filter (such as "test07.>"); it is called once per case, each case with a
// filter of its own, and should clean up with t.Cleanup.
type NewStore func(t testing.TB, filter string) jetsource.Store

type suite struct {
	f   Features
	new NewStore
}

// Run runs every case of the suite as a parallel subtest of t.
func Run(t *testing.T, f Features, newStore NewStore) {
	if f.Root == "" {
		f.Root = "test"
	}
	if f.MaxPayload == 0 {
		f.MaxPayload = 1 << 20
	}
	if f.Timeout == 0 {
		f.Timeout = 10 * time.Second
	}
	s := &suite{f: f, new: newStore}
	cases := []struct {
		name string
		run  func(s *suite, t *testing.T, ctx context.Context, st jetsource.Store)
	}{
		{"AppendAssignsIncreasingSequences", (*suite).appendSequences},
		{"AppendFillsDefaults", (*suite).appendDefaults},
		{"AppendRoundTripsEveryAttribute", (*suite).appendRoundTrip},
		{"AppendSameIDStoresOnce", (*suite).dedup},
		{"AppendRetryWithStaleExpectationIsDuplicate", (*suite).dedupRetryWithExpectation},
		{"ExpectZeroMeansNewAggregate", (*suite).expectNew},
		{"ExpectConflictReportsCurrentSequence", (*suite).expectConflict},
		{"ExpectCoversWholeAggregate", (*suite).expectWholeAggregate},
		{"ExpectIgnoresOtherAggregatesCoversNested", (*suite).expectOtherAggregates},
		{"BadInputWritesNothing", (*suite).badInput},
		{"ReadAllInOrder", (*suite).readAll},
		{"ReadFilters", (*suite).readFilters},
		{"ReadFromSequenceAndLimit", (*suite).readRange},
		{"ReadSince", (*suite).readSince},
		{"ReadEmptyEndsAtOnce", (*suite).readEmpty},
		{"ReadStopsAtHead", (*suite).readStopsAtHead},
		{"ReadFollowDeliversNewEvents", (*suite).readFollow},
		{"LoadAggregate", (*suite).load},
		{"LatestPerSubject", (*suite).latest},
		{"LastSequence", (*suite).lastSequence},
		{"ConcurrentWritersOneWinnerPerRound", (*suite).concurrentOneWinner},
		{"ConcurrentAppendsToDistinctAggregates", (*suite).concurrentDistinct},
		{"ExpectLastOnAnyFilter", (*suite).expectLast},
		{"ExpectNoneAfterReadPosition", (*suite).expectNoneAfter},
		{"ExpectNoneAfterSeveralFilters", (*suite).expectNoneAfterSeveral},
		{"ConcurrentBoundaryOneWinnerPerRound", (*suite).concurrentBoundary},
		{"BatchStoresAllContiguously", (*suite).batch},
		{"BatchRetryIsDuplicate", (*suite).batchRetry},
		{"BatchConditionFailureWritesNothing", (*suite).batchCondition},
		{"EveryConditionOfAnAppendIsChecked", (*suite).everyCondition},
		{"BatchConditionsOnSubjectsItWrites", (*suite).batchOwnSubjects},
		{"BatchBadInputWritesNothing", (*suite).batchBadInput},
		{"ReadersNeverSeeHalfABatch", (*suite).batchIsolation},
		{"SystemSubjectsAreRefused", (*suite).systemSubjects},
		{"ReusedIDWithOtherContentIsRefused", (*suite).reusedID},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cs := *s
			cs.f.Root = fmt.Sprintf("%s%02d", s.f.Root, i)
			st := s.new(t, cs.f.Root+".>")
			ctx, cancel := context.WithTimeout(context.Background(), s.f.Timeout)
			defer cancel()
			c.run(&cs, t, ctx, st)
		})
	}
}

func (s *suite) subj(t testing.TB, rest string) subjects.Subject {
	t.Helper()
	sub, err := subjects.Parse(s.f.Root + "." + rest)
	if err != nil {
		t.Fatalf("bad test subject: %v", err)
	}
	return sub
}

func (s *suite) filter(t testing.TB, rest string) subjects.Filter {
	t.Helper()
	f, err := subjects.ParseFilter(s.f.Root + "." + rest)
	if err != nil {
		t.Fatalf("bad test filter: %v", err)
	}
	return f
}

func (s *suite) event(t testing.TB, rest, data string) jetsource.Event {
	t.Helper()
	return jetsource.Event{Subject: s.subj(t, rest), Data: []byte(data)}
}

func mustAppend(t testing.TB, ctx context.Context, st jetsource.Store, e jetsource.Event, opts ...jetsource.AppendOption) jetsource.Ack {
	t.Helper()
	ack, err := st.Append(ctx, e, opts...)
	if err != nil {
		t.Fatalf("append %s: %v", e.Subject, err)
	}
	return ack
}

func collect(t testing.TB, seq func(func(jetsource.Event, error) bool)) []jetsource.Event {
	t.Helper()
	var out []jetsource.Event
	for e, err := range seq {
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, e)
	}
	return out
}

func seqs(evs []jetsource.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Sequence
	}
	return out
}

func eq(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (s *suite) appendSequences(t *testing.T, ctx context.Context, st jetsource.Store) {
	var last uint64
	for i := range 5 {
		ack := mustAppend(t, ctx, st, s.event(t, fmt.Sprintf("A%d.added", i), `{}`))
		if ack.Sequence <= last || ack.Duplicate {
			t.Fatalf("contract: every append gets a larger sequence; got %+v after %d", ack, last)
		}
		if ack.Stream == "" {
			t.Fatalf("contract: the ack names the stream; got %+v", ack)
		}
		last = ack.Sequence
	}
}

func (s *suite) appendDefaults(t *testing.T, ctx context.Context, st jetsource.Store) {
	before := time.Now().Add(-time.Second)
	ack := mustAppend(t, ctx, st, s.event(t, "A.added", `{"name":"Ann"}`))
	evs := collect(t, st.Read(ctx, jetsource.Query{}))
	if len(evs) != 1 {
		t.Fatalf("contract: one append, one event; got %d", len(evs))
	}
	e := evs[0]
	want := s.f.Root + ".added"
	switch {
	case e.ID == "":
		t.Error("contract: an event without id gets one")
	case e.Type != want:
		t.Errorf("contract: type derives from the subject: got %q, want %q", e.Type, want)
	case e.Source == "":
		t.Error("contract: an event without source gets the default source")
	case e.Time.Before(before):
		t.Errorf("contract: time defaults to the append time; got %v", e.Time)
	case e.DataContentType != "application/json":
		t.Errorf("contract: data defaults to application/json; got %q", e.DataContentType)
	case e.Sequence != ack.Sequence || e.Stream != ack.Stream:
		t.Errorf("contract: the read event carries the acked position; got %d/%s, ack %+v", e.Sequence, e.Stream, ack)
	case e.Stored.IsZero():
		t.Error("contract: a read event carries its stored time")
	}
}

func (s *suite) appendRoundTrip(t *testing.T, ctx context.Context, st jetsource.Store) {
	in := jetsource.Event{
		ID: "evt-1 with spaces & ünïcode", Source: "/svc/users", Type: "com.example.user.added",
		Subject: s.subj(t, "A.added"), Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		DataContentType: "application/json; charset=utf-8", DataSchema: "https://example.com/user.json",
		Data: []byte(`{"name":"Zoë \"Z\" 100%"}`), Actor: "ann@example.com", ClientIP: "2001:db8::1",
		CorrelationID: "corr-1", CausationID: "cause-1", SchemaRevision: 3, TransactionID: "tx-9",
		Extensions: map[string]string{"tenant": "acme corp", "region": "eu%west"},
	}
	mustAppend(t, ctx, st, in)
	evs := collect(t, st.Read(ctx, jetsource.Query{}))
	if len(evs) != 1 {
		t.Fatalf("contract: one append, one event; got %d", len(evs))
	}
	got := evs[0]
	got.Sequence, got.Stream, got.Stored = 0, "", time.Time{}
	if !got.Time.Equal(in.Time) {
		t.Errorf("contract: time round-trips: got %v, want %v", got.Time, in.Time)
	}
	got.Time = in.Time
	if fmt.Sprint(got) != fmt.Sprint(in) || !bytes.Equal(got.Data, in.Data) {
		t.Errorf("contract: every attribute round-trips:\n got %+v\nwant %+v", got, in)
	}
}

func (s *suite) dedup(t *testing.T, ctx context.Context, st jetsource.Store) {
	e := s.event(t, "A.added", `{"n":1}`)
	e.ID = "same-id"
	first := mustAppend(t, ctx, st, e)
	second := mustAppend(t, ctx, st, e)
	if !second.Duplicate || second.Sequence != first.Sequence {
		t.Fatalf("contract: the same id is stored once and the original sequence returned; got %+v then %+v", first, second)
	}
	if n := len(collect(t, st.Read(ctx, jetsource.Query{}))); n != 1 {
		t.Fatalf("contract: a duplicate writes nothing; %d events stored", n)
	}
}

func (s *suite) dedupRetryWithExpectation(t *testing.T, ctx context.Context, st jetsource.Store) {
	e := s.event(t, "A.added", `{}`)
	e.ID = "retry-id"
	first := mustAppend(t, ctx, st, e, jetsource.ExpectSequence(0))
	again, err := st.Append(ctx, e, jetsource.ExpectSequence(0))
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("contract: retrying a successful conditional append is a duplicate, not a conflict; got %+v, %v", again, err)
	}
}

func (s *suite) expectNew(t *testing.T, ctx context.Context, st jetsource.Store) {
	ack := mustAppend(t, ctx, st, s.event(t, "A.added", `{}`), jetsource.ExpectSequence(0))
	_, err := st.Append(ctx, s.event(t, "A.added", `{}`), jetsource.ExpectSequence(0))
	var ce *jetsource.ConflictError
	if !errors.Is(err, jetsource.ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("contract: expect 0 on an existing aggregate is a conflict; got %v", err)
	}
	if !ce.CurrentKnown || ce.Current != ack.Sequence {
		t.Fatalf("contract: the conflict tells the current sequence %d; got %+v", ack.Sequence, ce)
	}
}

func (s *suite) expectConflict(t *testing.T, ctx context.Context, st jetsource.Store) {
	a1 := mustAppend(t, ctx, st, s.event(t, "A.added", `{}`))
	a2 := mustAppend(t, ctx, st, s.event(t, "A.renamed", `{}`), jetsource.ExpectSequence(a1.Sequence))
	_, err := st.Append(ctx, s.event(t, "A.renamed", `{}`), jetsource.ExpectSequence(a1.Sequence))
	var ce *jetsource.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, jetsource.ErrConflict) {
		t.Fatalf("contract: a stale expectation is a conflict; got %v", err)
	}
	if ce.Expected != a1.Sequence || !ce.CurrentKnown || ce.Current != a2.Sequence {
		t.Fatalf("contract: the conflict tells expected %d and current %d; got %+v", a1.Sequence, a2.Sequence, ce)
	}
	if want := s.f.Root + ".A.>"; ce.Filter != want {
		t.Fatalf("contract: the conflict names the canonical aggregate filter %q; got %q", want, ce.Filter)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(a2.Sequence)) {
		t.Fatalf("contract: the message says the current sequence; got %q", err)
	}
	if n := len(collect(t, st.Read(ctx, jetsource.Query{}))); n != 2 {
		t.Fatalf("contract: a conflict writes nothing; %d events stored", n)
	}
}

func (s *suite) expectWholeAggregate(t *testing.T, ctx context.Context, st jetsource.Store) {
	mustAppend(t, ctx, st, s.event(t, "A.added", `{}`))
	other := mustAppend(t, ctx, st, s.event(t, "A.renamed", `{}`))
	_, err := st.Append(ctx, s.event(t, "A.added", `{}`), jetsource.ExpectSequence(1))
	if !errors.Is(err, jetsource.ErrConflict) {
		t.Fatalf("contract: the expectation covers every subject of the aggregate (last is %d); got %v", other.Sequence, err)
	}
}

func (s *suite) expectOtherAggregates(t *testing.T, ctx context.Context, st jetsource.Store) {
	a := mustAppend(t, ctx, st, s.event(t, "A.added", `{}`))
	mustAppend(t, ctx, st, s.event(t, "AB.added", `{}`))
	mustAppend(t, ctx, st, s.event(t, "B.added", `{}`))
	renamed, err := st.Append(ctx, s.event(t, "A.renamed", `{}`), jetsource.ExpectSequence(a.Sequence))
	if err != nil {
		t.Fatalf("contract: events of other aggregates (AB, B) do not affect A's expectation; got %v", err)
	}
	// A.x is an aggregate of its own, nested in A: new to itself, but part of A.>.
	nested := mustAppend(t, ctx, st, s.event(t, "A.x.nested", `{}`), jetsource.ExpectSequence(0))
	_, err = st.Append(ctx, s.event(t, "A.renamed", `{}`), jetsource.ExpectSequence(renamed.Sequence))
	var ce *jetsource.ConflictError
	if !errors.As(err, &ce) || ce.Current != nested.Sequence {
		t.Fatalf("contract: an aggregate's expectation covers the aggregates nested in it (A.x under A.>); got %v", err)
	}
}

func (s *suite) badInput(t *testing.T, ctx context.Context, st jetsource.Store) {
	big := make([]byte, s.f.MaxPayload+1)
	for i := range big {
		big[i] = 'a'
	}
	cases := []struct {
		name string
		e    jetsource.Event
		want error
	}{
		{"ErrInvalidSubject/zero", jetsource.Event{Data: []byte(`{}`)}, jetsource.ErrInvalidSubject},
		{"ErrInvalidSubject/one token", jetsource.Event{Subject: subjects.MustParse(s.f.Root), Data: []byte(`{}`)}, jetsource.ErrInvalidSubject},
		{"ErrInvalidData/not JSON", s.event(t, "A.added", `{"name":`), jetsource.ErrInvalidData},
		{"ErrInvalidEvent/extension name", jetsource.Event{Subject: s.subj(t, "A.added"), Extensions: map[string]string{"Bad-Name": "x"}}, jetsource.ErrInvalidEvent},
		{"ErrInvalidEvent/control character", jetsource.Event{Subject: s.subj(t, "A.added"), Actor: "ann\nbob"}, jetsource.ErrInvalidEvent},
		{"ErrInvalidEvent/content type", jetsource.Event{Subject: s.subj(t, "A.added"), DataContentType: "not a type;;", Data: []byte("x")}, jetsource.ErrInvalidEvent},
		{"ErrPayloadTooLarge", jetsource.Event{Subject: s.subj(t, "A.added"), DataContentType: "text/plain", Data: big}, jetsource.ErrPayloadTooLarge},
	}
	for _, c := range cases {
		if _, err := st.Append(ctx, c.e); !errors.Is(err, c.want) {
			t.Errorf("%s: contract: bad input is refused with %v; got %v", c.name, c.want, err)
		}
	}
	if _, err := st.Append(ctx, s.event(t, "A.added", `{}`), func(*jetsource.AppendOptions) error {
		return fmt.Errorf("%w: test", jetsource.ErrInvalidOption)
	}); !errors.Is(err, jetsource.ErrInvalidOption) {
		t.Errorf("contract: an option's error is returned; got %v", err)
	}
	if n, err := st.LastSequence(ctx, subjects.All()); err != nil || n != 0 {
		t.Fatalf("contract: bad input writes nothing; last sequence %d, %v", n, err)
	}
}

func (s *suite) fill(t testing.TB, ctx context.Context, st jetsource.Store, rests ...string) []jetsource.Ack {
	t.Helper()
	var acks []jetsource.Ack
	for i, r := range rests {
		acks = append(acks, mustAppend(t, ctx, st, s.event(t, r, fmt.Sprintf(`{"i":%d}`, i))))
	}
	return acks
}

func ackSeqs(acks []jetsource.Ack, idx ...int) []uint64 {
	var out []uint64
	for _, i := range idx {
		out = append(out, acks[i].Sequence)
	}
	return out
}

func (s *suite) readAll(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "A.added", "B.added", "A.renamed", "C.added")
	got := collect(t, st.Read(ctx, jetsource.Query{}))
	if want := ackSeqs(acks, 0, 1, 2, 3); !eq(seqs(got), want) {
		t.Fatalf("contract: read yields every event in sequence order; got %v, want %v", seqs(got), want)
	}
	for i, e := range got {
		if want := fmt.Sprintf(`{"i":%d}`, i); string(e.Data) != want {
			t.Fatalf("contract: data round-trips; got %s, want %s", e.Data, want)
		}
	}
}

func (s *suite) readFilters(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "A.added", "B.added", "A.renamed", "C.added", "B.removed")
	cases := []struct {
		name    string
		filters []subjects.Filter
		want    []uint64
	}{
		{"one aggregate", []subjects.Filter{s.filter(t, "A.>")}, ackSeqs(acks, 0, 2)},
		{"by event name", []subjects.Filter{s.filter(t, "*.added")}, ackSeqs(acks, 0, 1, 3)},
		{"several", []subjects.Filter{s.filter(t, "C.>"), s.filter(t, "A.>")}, ackSeqs(acks, 0, 2, 3)},
		{"overlapping", []subjects.Filter{s.filter(t, "*.added"), s.filter(t, "A.>")}, ackSeqs(acks, 0, 1, 2, 3)},
		{"covered", []subjects.Filter{s.filter(t, ">"), s.filter(t, "A.>")}, ackSeqs(acks, 0, 1, 2, 3, 4)},
		{"literal", []subjects.Filter{s.subj(t, "B.removed").Filter()}, ackSeqs(acks, 4)},
		{"no match", []subjects.Filter{s.filter(t, "Z.>")}, nil},
	}
	for _, c := range cases {
		got := collect(t, st.Read(ctx, jetsource.Query{Filters: c.filters}))
		if !eq(seqs(got), c.want) {
			t.Errorf("%s: contract: read yields exactly the matching events in order; got %v, want %v", c.name, seqs(got), c.want)
		}
	}
}

func (s *suite) readRange(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "A.e1", "A.e2", "A.e3", "A.e4", "A.e5")
	got := collect(t, st.Read(ctx, jetsource.Query{FromSequence: acks[2].Sequence}))
	if want := ackSeqs(acks, 2, 3, 4); !eq(seqs(got), want) {
		t.Errorf("contract: FromSequence is inclusive; got %v, want %v", seqs(got), want)
	}
	got = collect(t, st.Read(ctx, jetsource.Query{FromSequence: acks[1].Sequence, Limit: 2}))
	if want := ackSeqs(acks, 1, 2); !eq(seqs(got), want) {
		t.Errorf("contract: Limit stops after that many events; got %v, want %v", seqs(got), want)
	}
	got = collect(t, st.Read(ctx, jetsource.Query{FromSequence: acks[4].Sequence + 1}))
	if len(got) != 0 {
		t.Errorf("contract: reading past the end yields nothing; got %v", seqs(got))
	}
	for _, err := range st.Read(ctx, jetsource.Query{Limit: -1}) {
		if !errors.Is(err, jetsource.ErrInvalidOption) {
			t.Errorf("contract: a negative limit is refused; got %v", err)
		}
	}
}

func (s *suite) readSince(t *testing.T, ctx context.Context, st jetsource.Store) {
	s.fill(t, ctx, st, "A.e1", "A.e2")
	evs := collect(t, st.Read(ctx, jetsource.Query{}))
	time.Sleep(20 * time.Millisecond) // stored times must differ
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	acks := s.fill(t, ctx, st, "A.e3", "B.e4")
	got := collect(t, st.Read(ctx, jetsource.Query{Since: mid}))
	if want := ackSeqs(acks, 0, 1); !eq(seqs(got), want) {
		t.Errorf("contract: Since skips events stored before it; got %v, want %v (earlier: %v)", seqs(got), want, seqs(evs))
	}
	got = collect(t, st.Read(ctx, jetsource.Query{Since: mid, Filters: []subjects.Filter{s.filter(t, "B.>")}}))
	if want := ackSeqs(acks, 1); !eq(seqs(got), want) {
		t.Errorf("contract: Since combines with filters; got %v, want %v", seqs(got), want)
	}
	got = collect(t, st.Read(ctx, jetsource.Query{Since: time.Now().Add(time.Hour)}))
	if len(got) != 0 {
		t.Errorf("contract: Since in the future yields nothing; got %v", seqs(got))
	}
}

func (s *suite) readEmpty(t *testing.T, ctx context.Context, st jetsource.Store) {
	start := time.Now()
	if got := collect(t, st.Read(ctx, jetsource.Query{})); len(got) != 0 {
		t.Fatalf("contract: an empty store reads nothing; got %v", seqs(got))
	}
	if got := collect(t, st.Latest(ctx, subjects.All())); len(got) != 0 {
		t.Fatalf("contract: an empty store has no latest events; got %v", seqs(got))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("contract: an empty read ends at once; took %v", d)
	}
}

func (s *suite) readStopsAtHead(t *testing.T, ctx context.Context, st jetsource.Store) {
	s.fill(t, ctx, st, "A.e1", "A.e2", "A.e3")
	n := 0
	for _, err := range st.Read(ctx, jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			s.fill(t, ctx, st, "A.late")
		}
		n++
	}
	if n != 3 {
		t.Fatalf("contract: a read yields the events stored when it began; got %d, want 3", n)
	}
	// Breaking out early must not block or leak.
	for range st.Read(ctx, jetsource.Query{}) {
		break
	}
}

func (s *suite) readFollow(t *testing.T, ctx context.Context, st jetsource.Store) {
	s.fill(t, ctx, st, "A.e1")
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got []uint64
	var wg sync.WaitGroup
	started := make(chan struct{})
	var once sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer once.Do(func() { close(started) })
		for e, err := range st.Read(fctx, jetsource.Query{Follow: true, Filters: []subjects.Filter{s.filter(t, "A.>")}}) {
			if err != nil {
				return
			}
			got = append(got, e.Sequence)
			once.Do(func() { close(started) })
			if len(got) == 3 {
				cancel()
			}
		}
	}()
	<-started
	acks := s.fill(t, ctx, st, "B.other", "A.e2", "A.e3")
	wg.Wait()
	if want := []uint64{1, acks[1].Sequence, acks[2].Sequence}; !eq(got, want) {
		t.Fatalf("contract: Follow yields matching events appended after the read began; got %v, want %v", got, want)
	}
}

func (s *suite) load(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "A.added", "AB.added", "A.renamed", "A.x.nested", "B.added")
	got := collect(t, st.Load(ctx, s.subj(t, "A"), 0))
	if want := ackSeqs(acks, 0, 2, 3); !eq(seqs(got), want) {
		t.Fatalf("contract: Load yields the aggregate's events (A.>), not AB's; got %v, want %v", seqs(got), want)
	}
	got = collect(t, st.Load(ctx, s.subj(t, "A"), acks[2].Sequence))
	if want := ackSeqs(acks, 2, 3); !eq(seqs(got), want) {
		t.Fatalf("contract: Load from a sequence; got %v, want %v", seqs(got), want)
	}
	if got := collect(t, st.Load(ctx, s.subj(t, "none"), 0)); len(got) != 0 {
		t.Fatalf("contract: loading an unknown aggregate yields nothing; got %v", seqs(got))
	}
}

func (s *suite) latest(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "A.state", "B.state", "A.state", "C.other", "B.state", "A.note")
	got := collect(t, st.Latest(ctx, s.filter(t, "*.state")))
	if want := ackSeqs(acks, 2, 4); !eq(seqs(got), want) {
		t.Fatalf("contract: Latest yields the last event of each matching subject in order; got %v, want %v", seqs(got), want)
	}
	if string(got[0].Data) != `{"i":2}` {
		t.Fatalf("contract: Latest yields the whole event; got %s", got[0].Data)
	}
}

func (s *suite) lastSequence(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "A.added", "B.added", "A.renamed", "C.added")
	cases := []struct {
		f    subjects.Filter
		want uint64
	}{
		{s.filter(t, "A.>"), acks[2].Sequence},
		{s.filter(t, "*.added"), acks[3].Sequence},
		{s.subj(t, "B.added").Filter(), acks[1].Sequence},
		{s.filter(t, "Z.>"), 0},
	}
	for _, c := range cases {
		got, err := st.LastSequence(ctx, c.f)
		if err != nil || got != c.want {
			t.Errorf("contract: LastSequence(%s) is the last matching sequence %d; got %d, %v", c.f, c.want, got, err)
		}
	}
}

func (s *suite) concurrentOneWinner(t *testing.T, ctx context.Context, st jetsource.Store) {
	const writers, rounds = 8, 10
	for round := range rounds {
		expected, err := st.LastSequence(ctx, s.filter(t, "A.>"))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := s.event(t, "A.changed", fmt.Sprintf(`{"round":%d,"writer":%d}`, round, w))
				_, err := st.Append(ctx, e, jetsource.ExpectSequence(expected))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, jetsource.ErrConflict):
					conflicts++
				default:
					t.Errorf("append: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || conflicts != writers-1 {
			t.Fatalf("contract: of %d writers on one expectation exactly one wins; round %d: %d wins, %d conflicts", writers, round, wins, conflicts)
		}
	}
	if n := len(collect(t, st.Read(ctx, jetsource.Query{}))); n != rounds {
		t.Fatalf("contract: losers write nothing; %d events for %d rounds", n, rounds)
	}
}

func (s *suite) concurrentDistinct(t *testing.T, ctx context.Context, st jetsource.Store) {
	const writers, each = 8, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for i := range each {
				ack, err := st.Append(ctx, s.event(t, fmt.Sprintf("W%d.step", w), fmt.Sprintf(`{"i":%d}`, i)), jetsource.ExpectSequence(last))
				if err != nil {
					t.Errorf("contract: writers on distinct aggregates never conflict; writer %d: %v", w, err)
					return
				}
				last = ack.Sequence
			}
		}()
	}
	wg.Wait()
	evs := collect(t, st.Read(ctx, jetsource.Query{}))
	if len(evs) != writers*each {
		t.Fatalf("contract: every acknowledged append is stored once; got %d events, want %d", len(evs), writers*each)
	}
	for i, e := range evs {
		if e.Sequence != uint64(i)+1 {
			t.Fatalf("contract: sequences have no gaps or repeats; event %d has sequence %d", i, e.Sequence)
		}
	}
}

func (s *suite) expectLast(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "A.added", "B.added")
	added := s.filter(t, "*.added")
	if _, err := st.Append(ctx, s.event(t, "C.added", `{}`), jetsource.ExpectLast(added, acks[0].Sequence)); !errors.Is(err, jetsource.ErrConflict) {
		t.Fatalf("contract: ExpectLast with a stale sequence is a conflict; got %v", err)
	}
	if _, err := st.Append(ctx, s.event(t, "C.added", `{}`), jetsource.ExpectLast(added, acks[1].Sequence)); err != nil {
		t.Fatalf("contract: ExpectLast with the current sequence succeeds; got %v", err)
	}
	if _, err := st.Append(ctx, s.event(t, "D.added", `{}`), jetsource.ExpectLast(s.filter(t, "Z.>"), 0)); err != nil {
		t.Fatalf("contract: ExpectLast 0 on a filter nothing matches succeeds; got %v", err)
	}
}

func (s *suite) expectNoneAfter(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "A.added", "B.added")
	pos := acks[1].Sequence // the read position
	s.fill(t, ctx, st, "C.other")
	boundary := s.filter(t, "*.added")
	ack, err := st.Append(ctx, s.event(t, "D.added", `{}`), jetsource.ExpectNoneAfter(pos, boundary))
	if err != nil {
		t.Fatalf("contract: events outside the boundary after the read position do not conflict; got %v", err)
	}
	_, err = st.Append(ctx, s.event(t, "E.added", `{}`), jetsource.ExpectNoneAfter(pos, boundary))
	var ce *jetsource.ConflictError
	if !errors.As(err, &ce) || !ce.ReadPosition || ce.Current != ack.Sequence || ce.Expected != pos {
		t.Fatalf("contract: a matching event after the read position is a conflict naming it (%d after %d); got %v", ack.Sequence, pos, err)
	}
	if _, err := st.Append(ctx, s.event(t, "E.added", `{}`), jetsource.ExpectNoneAfter(ack.Sequence, boundary)); err != nil {
		t.Fatalf("contract: with a fresh read position the append succeeds; got %v", err)
	}
	for _, err := range []error{
		func() error {
			_, err := st.Append(ctx, s.event(t, "E.added", `{}`), jetsource.ExpectNoneAfter(1))
			return err
		}(),
		func() error {
			_, err := st.Append(ctx, s.event(t, "E.added", `{}`), jetsource.ExpectLast(subjects.Filter{}, 1))
			return err
		}(),
	} {
		if !errors.Is(err, jetsource.ErrInvalidOption) {
			t.Errorf("contract: a condition without a filter is refused; got %v", err)
		}
	}
}

func (s *suite) expectNoneAfterSeveral(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "course.C1.created", "student.S1.registered")
	pos := acks[1].Sequence
	boundary := []subjects.Filter{s.filter(t, "course.C1.>"), s.filter(t, "student.S1.>")}
	s.fill(t, ctx, st, "student.S1.renamed")
	_, err := st.Append(ctx, s.event(t, "course.C1.subscribed", `{"student":"S1"}`), jetsource.ExpectNoneAfter(pos, boundary...))
	if !errors.Is(err, jetsource.ErrConflict) {
		t.Fatalf("contract: a change under any of the boundary's filters is a conflict; got %v", err)
	}
	last, _ := st.LastSequence(ctx, subjects.All())
	before := s.count(t, ctx, st)
	ack, err := st.Append(ctx, s.event(t, "course.C1.subscribed", `{"student":"S1"}`), jetsource.ExpectNoneAfter(last, boundary...))
	if err != nil {
		t.Fatalf("contract: a boundary of several filters read at the head succeeds; got %v", err)
	}
	// A backend may store internal messages beside the event (guards):
	// count the events, not the sequences.
	if n := s.count(t, ctx, st); n != before+1 || ack.Sequence <= last {
		t.Fatalf("contract: one append stores one event, after the head; %d events, want %d; sequence %d after the head %d", n, before+1, ack.Sequence, last)
	}
}

func (s *suite) concurrentBoundary(t *testing.T, ctx context.Context, st jetsource.Store) {
	const writers, rounds = 10, 10
	boundary := s.filter(t, "*.seat")
	for round := range rounds {
		pos, err := st.LastSequence(ctx, subjects.All())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := s.event(t, fmt.Sprintf("W%d.seat", w), fmt.Sprintf(`{"round":%d}`, round))
				_, err := st.Append(ctx, e, jetsource.ExpectNoneAfter(pos, boundary))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, jetsource.ErrConflict):
					t.Errorf("append: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("contract: of %d writers on one boundary exactly one wins; round %d: %d wins", writers, round, wins)
		}
	}
}

func (s *suite) batch(t *testing.T, ctx context.Context, st jetsource.Store) {
	s.fill(t, ctx, st, "X.before")
	evs := []jetsource.Event{s.event(t, "A.added", `{"i":0}`), s.event(t, "B.added", `{"i":1}`), s.event(t, "A.renamed", `{"i":2}`)}
	acks, err := st.AppendBatch(ctx, evs, jetsource.WithTransactionID("tx-1"))
	if err != nil {
		t.Fatalf("append batch: %v", err)
	}
	if len(acks) != 3 || acks[1].Sequence != acks[0].Sequence+1 || acks[2].Sequence != acks[0].Sequence+2 {
		t.Fatalf("contract: a batch is stored contiguously, acks in event order; got %+v", acks)
	}
	got := collect(t, st.Read(ctx, jetsource.Query{FromSequence: acks[0].Sequence}))
	if len(got) != 3 {
		t.Fatalf("contract: every event of the batch is stored; got %d", len(got))
	}
	for i, e := range got {
		if e.TransactionID != "tx-1" || string(e.Data) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("contract: each event carries the transaction id, in order; event %d: %+v", i, e)
		}
	}
	acks, err = st.AppendBatch(ctx, []jetsource.Event{s.event(t, "C.added", `{}`), s.event(t, "C.renamed", `{}`)})
	if err != nil {
		t.Fatal(err)
	}
	got = collect(t, st.Read(ctx, jetsource.Query{FromSequence: acks[0].Sequence}))
	if len(got) != 2 || got[0].TransactionID == "" || got[0].TransactionID != got[1].TransactionID {
		t.Fatalf("contract: a batch without a transaction id gets one, shared by its events; got %+v", got)
	}
	one, err := st.AppendBatch(ctx, []jetsource.Event{s.event(t, "D.added", `{}`)})
	if err != nil || len(one) != 1 {
		t.Fatalf("contract: a batch of one event works; got %+v, %v", one, err)
	}
}

func (s *suite) batchRetry(t *testing.T, ctx context.Context, st jetsource.Store) {
	evs := []jetsource.Event{s.event(t, "A.added", `{}`), s.event(t, "A.renamed", `{}`)}
	evs[0].ID, evs[1].ID = "tx-e1", "tx-e2"
	first, err := st.AppendBatch(ctx, evs, jetsource.WithTransactionID("tx-r"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := st.AppendBatch(ctx, evs, jetsource.WithTransactionID("tx-r"))
	if err != nil || len(again) != 2 || !again[0].Duplicate || again[0].Sequence != first[0].Sequence || again[1].Sequence != first[1].Sequence {
		t.Fatalf("contract: retrying a stored batch returns the original acks as duplicates; got %+v, %v (first %+v)", again, err, first)
	}
	if n, _ := st.LastSequence(ctx, subjects.All()); n != first[1].Sequence {
		t.Fatalf("contract: a retried batch writes nothing; last sequence %d", n)
	}
	mixed := []jetsource.Event{s.event(t, "B.added", `{}`), evs[1]}
	if _, err := st.AppendBatch(ctx, mixed, jetsource.WithTransactionID("tx-r")); !errors.Is(err, jetsource.ErrInvalidEvent) {
		t.Fatalf("contract: a batch with some ids stored before is refused whole; got %v", err)
	}
	if n, _ := st.LastSequence(ctx, subjects.All()); n != first[1].Sequence {
		t.Fatalf("contract: a refused batch writes nothing; last sequence %d", n)
	}
}

func (s *suite) batchCondition(t *testing.T, ctx context.Context, st jetsource.Store) {
	a := s.fill(t, ctx, st, "A.added")[0]
	agg := s.filter(t, "A.>")
	evs := []jetsource.Event{s.event(t, "A.renamed", `{}`), s.event(t, "B.added", `{}`)}
	if _, err := st.AppendBatch(ctx, evs, jetsource.ExpectLast(agg, a.Sequence)); err != nil {
		t.Fatalf("contract: a batch whose condition holds is stored; got %v", err)
	}
	evs = []jetsource.Event{s.event(t, "B.renamed", `{}`), s.event(t, "A.renamed", `{}`)}
	_, err := st.AppendBatch(ctx, evs, jetsource.ExpectLast(agg, a.Sequence))
	var ce *jetsource.ConflictError
	if !errors.As(err, &ce) || ce.Filter != agg.String() {
		t.Fatalf("contract: a batch whose condition fails is a conflict naming the filter; got %v", err)
	}
	pos, _ := st.LastSequence(ctx, subjects.All())
	s.fill(t, ctx, st, "B.other")
	_, err = st.AppendBatch(ctx, evs, jetsource.ExpectNoneAfter(pos, agg), jetsource.ExpectNoneAfter(pos, s.filter(t, "B.>")))
	if !errors.Is(err, jetsource.ErrConflict) {
		t.Fatalf("contract: every condition of a batch is checked; got %v", err)
	}
	if n, _ := st.LastSequence(ctx, subjects.All()); n != pos+1 {
		t.Fatalf("contract: a batch that fails a condition writes nothing; last %d, want %d", n, pos+1)
	}
}

func (s *suite) everyCondition(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "A.added", "B.added")
	pos := acks[1].Sequence
	s.fill(t, ctx, st, "C.added")
	for name, opts := range map[string][]jetsource.AppendOption{
		"expectation holds, boundary moved": {jetsource.ExpectSequence(acks[0].Sequence), jetsource.ExpectNoneAfter(pos, s.filter(t, "C.>"))},
		"boundary holds, expectation stale": {jetsource.ExpectNoneAfter(pos, s.filter(t, "B.>")), jetsource.ExpectSequence(0)},
		"last of three fails":               {jetsource.ExpectLast(s.filter(t, "B.>"), acks[1].Sequence), jetsource.ExpectNoneAfter(pos, s.filter(t, "A.>")), jetsource.ExpectLast(s.filter(t, "C.>"), 0)},
	} {
		_, err := st.Append(ctx, s.event(t, "A.renamed", `{}`), opts...)
		if !errors.Is(err, jetsource.ErrConflict) {
			t.Errorf("contract: %s: every condition of an append is checked; got %v", name, err)
		}
	}
	if n, _ := st.LastSequence(ctx, s.filter(t, ">")); n != pos+1 {
		t.Fatalf("contract: a refused append writes nothing; last %d, want %d", n, pos+1)
	}
	head := pos + 1
	ack, err := st.Append(ctx, s.event(t, "A.renamed", `{}`), jetsource.ExpectSequence(acks[0].Sequence),
		jetsource.ExpectNoneAfter(head, s.filter(t, "B.>")), jetsource.ExpectLast(s.filter(t, "C.>"), head))
	// A backend may store internal messages beside the event (guards).
	if last, _ := st.LastSequence(ctx, s.filter(t, ">")); err != nil || ack.Sequence <= head || last != ack.Sequence {
		t.Fatalf("contract: an append whose three conditions hold is stored; got %+v %v", ack, err)
	}
}

func (s *suite) batchOwnSubjects(t *testing.T, ctx context.Context, st jetsource.Store) {
	acks := s.fill(t, ctx, st, "X.step", "Y.step")
	x, y := s.filter(t, "X.step"), s.filter(t, "Y.step")
	evs := []jetsource.Event{s.event(t, "X.step", `{}`), s.event(t, "Y.step", `{}`), s.event(t, "X.step", `{}`)}
	got, err := st.AppendBatch(ctx, evs, jetsource.ExpectLast(y, acks[1].Sequence), jetsource.ExpectLast(x, acks[0].Sequence))
	if err != nil || len(got) != 3 {
		t.Fatalf("contract: conditions on the subjects a batch writes hold against the state before it; got %+v %v", got, err)
	}
	_, err = st.AppendBatch(ctx, evs, jetsource.ExpectLast(y, got[1].Sequence), jetsource.ExpectLast(x, acks[0].Sequence))
	var ce *jetsource.ConflictError
	if !errors.As(err, &ce) || ce.Filter != x.String() {
		t.Fatalf("contract: a stale condition on a subject the batch writes is a conflict naming it; got %v", err)
	}
}

func (s *suite) batchBadInput(t *testing.T, ctx context.Context, st jetsource.Store) {
	tooMany := make([]jetsource.Event, jetsource.MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = s.event(t, fmt.Sprintf("A%d.added", i), `{}`)
	}
	bad := s.event(t, "B.added", `{"x":`)
	other := s.event(t, "C.added", `{}`)
	other.TransactionID = "other"
	same := s.event(t, "D.added", `{}`)
	same.ID = "dup"
	cases := []struct {
		name   string
		events []jetsource.Event
		opts   []jetsource.AppendOption
		want   error
	}{
		{"ErrBatchTooLarge", tooMany, nil, jetsource.ErrBatchTooLarge},
		{"ErrInvalidOption/empty", nil, nil, jetsource.ErrInvalidOption},
		{"ErrInvalidOption/ExpectSequence", []jetsource.Event{s.event(t, "A.added", `{}`)}, []jetsource.AppendOption{jetsource.ExpectSequence(0)}, jetsource.ErrInvalidOption},
		{"ErrInvalidData/one bad event", []jetsource.Event{s.event(t, "A.added", `{}`), bad}, nil, jetsource.ErrInvalidData},
		{"ErrInvalidEvent/two transactions", []jetsource.Event{s.event(t, "A.added", `{}`), other}, []jetsource.AppendOption{jetsource.WithTransactionID("tx")}, jetsource.ErrInvalidEvent},
		{"ErrInvalidEvent/repeated id", []jetsource.Event{same, same}, nil, jetsource.ErrInvalidEvent},
	}
	for _, c := range cases {
		if _, err := st.AppendBatch(ctx, c.events, c.opts...); !errors.Is(err, c.want) {
			t.Errorf("%s: contract: refused with %v; got %v", c.name, c.want, err)
		}
	}
	if n, _ := st.LastSequence(ctx, subjects.All()); n != 0 {
		t.Fatalf("contract: a refused batch writes nothing; last sequence %d", n)
	}
}

func (s *suite) batchIsolation(t *testing.T, ctx context.Context, st jetsource.Store) {
	const batches, size = 20, 10
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for b := range batches {
			evs := make([]jetsource.Event, size)
			for i := range evs {
				evs[i] = s.event(t, fmt.Sprintf("A%d.e", i), fmt.Sprintf(`{"b":%d}`, b))
			}
			if _, err := st.AppendBatch(ctx, evs); err != nil {
				t.Errorf("append batch: %v", err)
				return
			}
		}
	}()
	reads := 0
	for {
		select {
		case <-done:
			wg.Wait()
			if reads == 0 {
				t.Log("no read overlapped the writes")
			}
			return
		default:
		}
		count := map[string]int{}
		for e, err := range st.Read(ctx, jetsource.Query{}) {
			if err != nil {
				t.Fatal(err)
			}
			count[e.TransactionID]++
		}
		for tx, n := range count {
			if n != size {
				t.Fatalf("contract: a reader sees a whole batch or none of it; transaction %s had %d of %d events", tx, n, size)
			}
		}
		reads++
	}
}

// systemSubjects: no append ever writes a system subject (issue 9: an
// append to $JS.API.STREAM.DELETE.<stream> deleted the stream); the
// refusal matches ErrForbiddenSubject and nothing is written.
func (s *suite) systemSubjects(t *testing.T, ctx context.Context, st jetsource.Store) {
	good := jetsource.Event{Subject: subjects.MustParse(s.f.Root + ".a.added"), Data: []byte(`{}`)}
	for _, subj := range []string{"$JS.API.STREAM.DELETE.EVENTS", "$KV.flags.x", "$SYS.REQ.x", "_INBOX.a.b", "_jetsource.guard.EVENTS"} {
		e := jetsource.Event{Subject: subjects.MustParse(subj), Data: []byte(`{}`)}
		if _, err := st.Append(ctx, e); !errors.Is(err, jetsource.ErrForbiddenSubject) {
			t.Errorf("contract: Append on the system subject %s must fail with ErrForbiddenSubject; got %v", subj, err)
		}
		if _, err := st.AppendBatch(ctx, []jetsource.Event{good, e}); !errors.Is(err, jetsource.ErrForbiddenSubject) {
			t.Errorf("contract: AppendBatch with an event on the system subject %s must fail with ErrForbiddenSubject; got %v", subj, err)
		}
	}
	if n, err := st.LastSequence(ctx, subjects.MustParseFilter(s.f.Root+".>")); err != nil || n != 0 {
		t.Errorf("contract: refused appends write nothing; last sequence %d, %v", n, err)
	}
}

// count returns the number of events under the case's root.
func (s *suite) count(t *testing.T, ctx context.Context, st jetsource.Store) int {
	t.Helper()
	n := 0
	for _, err := range st.Read(ctx, jetsource.Query{Filters: []subjects.Filter{s.filter(t, ">")}}) {
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		n++
	}
	return n
}

// reusedID: an id stored before with other content (type, subject, content
// type, data) is refused with ErrIDReused naming the stored sequence,
// instead of being answered "duplicate" while the new content is dropped
// (issue 9); the same content stays a duplicate.
func (s *suite) reusedID(t *testing.T, ctx context.Context, st jetsource.Store) {
	e := s.event(t, "A.added", `{"name":"Ann"}`)
	e.ID = s.f.Root + "-reused"
	first, err := st.Append(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := st.Append(ctx, e); err != nil || !ack.Duplicate || ack.Sequence != first.Sequence {
		t.Errorf("contract: the same id with the same content is a duplicate of sequence %d; got %+v, %v", first.Sequence, ack, err)
	}
	changes := map[string]func(*jetsource.Event){
		"data":            func(e *jetsource.Event) { e.Data = []byte(`{"name":"Bob"}`) },
		"type":            func(e *jetsource.Event) { e.Type = "other.type" },
		"subject":         func(e *jetsource.Event) { e.Subject = subjects.MustParse(s.f.Root + ".A.renamed") },
		"datacontenttype": func(e *jetsource.Event) { e.DataContentType = "text/plain" },
	}
	for what, change := range changes {
		other := e.Clone()
		change(&other)
		_, err := st.Append(ctx, other)
		var re *jetsource.IDReusedError
		if !errors.As(err, &re) || !errors.Is(err, jetsource.ErrIDReused) || re.Sequence != first.Sequence || re.ID != e.ID {
			t.Errorf("contract: the id of sequence %d with another %s fails with an IDReusedError naming it; got %v", first.Sequence, what, err)
		}
		// With StoredWins the stored event wins: a duplicate.
		if ack, err := st.Append(ctx, other, jetsource.StoredWins()); err != nil || !ack.Duplicate || ack.Sequence != first.Sequence {
			t.Errorf("contract: with StoredWins the id of sequence %d with another %s is a duplicate of it; got %+v, %v", first.Sequence, what, ack, err)
		}
		// Also when a stale expectation makes it look like a retry.
		if _, err := st.Append(ctx, other, jetsource.ExpectSequence(0)); !errors.Is(err, jetsource.ErrIDReused) {
			t.Errorf("contract: the reused id of sequence %d with another %s and a stale expectation fails with ErrIDReused; got %v", first.Sequence, what, err)
		}
	}
	// A whole batch again, one event changed.
	b := []jetsource.Event{s.event(t, "B.added", `{}`), s.event(t, "B.renamed", `{"n":1}`)}
	b[0].ID, b[1].ID = s.f.Root+"-b0", s.f.Root+"-b1"
	if _, err := st.AppendBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	b[1].Data = []byte(`{"n":2}`)
	if _, err := st.AppendBatch(ctx, b); !errors.Is(err, jetsource.ErrIDReused) {
		t.Errorf("contract: a stored batch sent again with changed content fails with ErrIDReused; got %v", err)
	}
	if n := s.count(t, ctx, st); n != 3 {
		t.Errorf("contract: refused reuses write nothing; %d events, want 3", n)
	}
}
