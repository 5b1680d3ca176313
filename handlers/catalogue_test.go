package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/projections/projectiontest"
	"github.com/jetsource/jetsource/subjects"
	"github.com/jetsource/jetsource/subscriber"
)

// streamMsgs returns how many messages a stream holds (0 when it does not
// exist).
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		return 0
	}
	info, err := st.Info(context.Background())
	must(t, err)
	return info.State.Msgs
}

// The catalogue of malformed messages, published with a plain NATS client
// between good events: every worker goes on past them. A subscriber and a
// rule's worker dead-letter each malformed message and handle the good
// events; the KV and SQL document projections skip them (counted) and
// reach the head, a rebuild too; a decision whose boundary holds them
// folds only the good events and is recorded.
func TestMalformedCatalogueEveryWorkerGoesOn(t *testing.T) {
	e := newRxEnv(t)
	ctx := context.Background()
	appendGood := func(subj, data string) uint64 {
		ack, err := e.store.Append(ctx, jetsource.Event{Subject: subjects.MustParse(subj), Data: []byte(data)})
		must(t, err)
		return ack.Sequence
	}
	first := appendGood("users.g.added", `{"name":"Ann"}`)
	shapes, seqs := embeddedtest.PublishMalformed(t, e.nc, "users")
	malformed := 0
	for i, s := range shapes {
		if jetsource.DecodeStored(s.Msg.Subject, s.Msg.Header, s.Msg.Data, jetsource.Stored{Stream: "EVENTS", Sequence: seqs[i]}).Malformed != nil {
			malformed++
		}
	}
	if malformed < 5 {
		t.Fatalf("only %d malformed shapes", malformed)
	}
	head := appendGood("users.g.renamed", `{"name":"Anne"}`)
	src := projectiontest.Lenient{JS: e.js, Stream: "EVENTS", Last: e.store}

	// A durable subscriber.
	var subGood atomic.Int64
	sub, err := subscriber.New(e.js, "EVENTS", "catalogue", func(ctx context.Context, ev jetsource.Event) error {
		if ev.Malformed != nil {
			t.Errorf("subscriber handler got malformed sequence %d", ev.Sequence)
		}
		if ev.Sequence == first || ev.Sequence == head {
			subGood.Add(1)
		}
		return nil
	}, subscriber.WithDeadLetterStream("DLQ_CATALOGUE"), subscriber.WithDeadLetter("dlq.catalogue"))
	must(t, err)
	must(t, sub.Start(ctx))
	t.Cleanup(func() { _ = sub.Close() })

	// A rule whose Go reaction sees every event under users.
	reactions := handlers.NewReactions()
	var ruleGood atomic.Int64
	must(t, reactions.Register("watch", handlers.ReactionFunc(func(ctx context.Context, ev jetsource.Event, send handlers.Sender) error {
		if ev.Malformed != nil {
			t.Errorf("reaction got malformed sequence %d", ev.Sequence)
		}
		if ev.Sequence == first || ev.Sequence == head {
			ruleGood.Add(1)
		}
		return nil
	})))
	rules := parseRules(t, `
handlers:
  - name: watch
    on: users.>
    go: watch
    start: all
`, handlers.WithCommands(exampleCommands...), handlers.WithReactions(reactions))
	r := e.start(t, rules, e.proc, handlers.WithSubscriberOptions(subscriber.WithDeadLetterStream("DLQ_RULES")))

	// KV and SQL document projections, run and rebuilt.
	users := []subjects.Filter{subjects.MustParseFilter("users.>")}
	d := projections.Documents{Name: "docs", Filters: users}
	db, err := projections.OpenSQLite(t.TempDir() + "/read.db")
	must(t, err)
	t.Cleanup(func() { db.Close() })
	sqlDocs, err := projections.NewSQL(ctx, db, d.SQL("", ""))
	must(t, err)
	kdef := d.KV("kvdocs")
	kdef.Name, kdef.Memory = "kvdocs", true
	kvDocs, err := projections.NewKV(ctx, e.js, kdef)
	must(t, err)
	runner, err := projections.NewRunner(src, []projections.Projection{sqlDocs, kvDocs}, projections.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
	must(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// A decision over every user event.
	var folded atomic.Int64
	countAll := handlers.New(handlers.Funcs[struct{}, int]{
		QueryFunc: func(struct{}) ([]subjects.Filter, error) { return users, nil },
		EvolveFunc: func(n int, ev jetsource.Event) int {
			if ev.Malformed != nil {
				t.Errorf("Evolve got malformed sequence %d", ev.Sequence)
			}
			return n + 1
		},
		DecideFunc: func(n int, _ struct{}) ([]jetsource.Event, error) {
			folded.Store(int64(n))
			return []jetsource.Event{{Subject: subjects.MustParse("users.counter.counted"), Data: []byte(`{}`)}}, nil
		},
	})
	reg := handlers.NewRegistry()
	must(t, reg.Register("CountAll", countAll))
	proc, err := handlers.NewProcessor(e.store, reg, handlers.WithReader(src))
	must(t, err)
	res, err := proc.Send(ctx, "CountAll", nil)
	if err != nil || res.Status != handlers.StatusAccepted || len(res.Sequences) != 1 {
		t.Fatalf("decision over malformed messages: %+v, %v", res, err)
	}
	if want := int64(2 + len(shapes) - malformed); folded.Load() != want {
		t.Errorf("folded %d events, want %d (the good ones)", folded.Load(), want)
	}
	end := res.Sequences[0]

	waitFor(t, 20*time.Second, func() error {
		switch {
		case subGood.Load() != 2 || streamMsgs(t, e.js, "DLQ_CATALOGUE") != uint64(malformed):
			return fmt.Errorf("subscriber: %d good, %d dead letters", subGood.Load(), streamMsgs(t, e.js, "DLQ_CATALOGUE"))
		case ruleGood.Load() != 2 || streamMsgs(t, e.js, "DLQ_RULES") != uint64(malformed):
			return fmt.Errorf("rule: %d good, %d dead letters", ruleGood.Load(), streamMsgs(t, e.js, "DLQ_RULES"))
		}
		for _, p := range []projections.Projection{sqlDocs, kvDocs} {
			if cp, err := p.Checkpoint(ctx); err != nil || cp != end {
				return fmt.Errorf("%s at %d, want %d (%v)", p.Name(), cp, end, err)
			}
		}
		return nil
	})
	settled(t, r, "watch", uint64(len(shapes)-malformed+3))
	sts, err := runner.Status(ctx)
	must(t, err)
	for _, st := range sts {
		if st.Skipped < uint64(malformed) || st.LastError != "" {
			t.Errorf("%s: %d skipped, want at least %d; error %q", st.Name, st.Skipped, malformed, st.LastError)
		}
	}
	var doc string
	if err := db.QueryRow(`SELECT document FROM docs WHERE entity = 'users.g'`).Scan(&doc); err != nil || doc != `{"name":"Anne"}` {
		t.Errorf("document %q, %v", doc, err)
	}
	for _, p := range []projections.Projection{sqlDocs, kvDocs} {
		pr, err := projections.Rebuild(ctx, src, p)
		if err != nil || pr.Checkpoint != end || pr.Skipped < uint64(malformed) {
			t.Errorf("rebuild %s: %+v, %v", p.Name(), pr, err)
		}
	}
}

// A Go reaction that panics has its event dead-lettered with the panic
// and the stack; the rule's worker goes on with the next event.
func TestReactionPanicIsDeadLettered(t *testing.T) {
	e := newRxEnv(t)
	reactions := handlers.NewReactions()
	var after atomic.Int64
	must(t, reactions.Register("boom", handlers.ReactionFunc(func(ctx context.Context, ev jetsource.Event, send handlers.Sender) error {
		if ev.Name() == "boom" {
			panic("reaction went boom")
		}
		after.Add(1)
		return nil
	})))
	rules := parseRules(t, `
handlers:
  - name: boomer
    on: users.>
    go: boom
    max_deliver: 2
    backoff: [10ms]
`, handlers.WithCommands(exampleCommands...), handlers.WithReactions(reactions))
	r := e.start(t, rules, e.proc, handlers.WithSubscriberOptions(subscriber.WithDeadLetterStream("DLQ_BOOM")))
	for _, s := range []string{"users.x.boom", "users.x.after"} {
		_, err := e.store.Append(context.Background(), jetsource.Event{Subject: subjects.MustParse(s), Data: []byte(`{}`)})
		must(t, err)
	}
	waitFor(t, 10*time.Second, func() error {
		if after.Load() != 1 || streamMsgs(t, e.js, "DLQ_BOOM") != 1 {
			return fmt.Errorf("%d handled after, %d dead letters", after.Load(), streamMsgs(t, e.js, "DLQ_BOOM"))
		}
		return nil
	})
	settled(t, r, "boomer", 1)
	st, err := e.js.Stream(context.Background(), "DLQ_BOOM")
	must(t, err)
	m, err := st.GetMsg(context.Background(), 1)
	must(t, err)
	if !strings.Contains(m.Header.Get(subscriber.HeaderError), "reaction went boom") || !strings.Contains(m.Header.Get(subscriber.HeaderStack), "TestReactionPanicIsDeadLettered") {
		t.Errorf("dead letter headers %v", m.Header)
	}
}
