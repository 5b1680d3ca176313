package subscriber_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
	"github.com/jetsource/jetsource/subscriber"
)

// A worker that mails every new user. It needs a server, so it is not run.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	sub, err := subscriber.New(js, "EVENTS", "welcome-mail", func(ctx context.Context, e jetsource.Event) error {
		// Return nil only once the mail is sent: the event is acknowledged
		// then, and not before.
		return sendWelcome(ctx, e.Aggregate().String(), e.Data)
	},
		subscriber.WithFilters(subjects.MustParseFilter("users.*.added")),
		subscriber.WithConcurrency(16),
		subscriber.WithBackoff(time.Second, 10*time.Second, time.Minute),
		subscriber.WithMaxDeliver(6),
	)
	if err != nil {
		log.Fatal(err)
	}
	// Runs until Ctrl-C, then drains. Events that fail six times end up
	// on deadletter.welcome-mail.users.<id>.added in the stream DEADLETTER.
	if err := sub.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

func sendWelcome(context.Context, string, []byte) error { return nil }

// Replay hands stored events to a handler in order, from a position on.
func ExampleReplay() {
	ctx := context.Background()
	store, _ := jetsource.NewMemoryStore()
	for _, s := range []string{"users.A.added", "groups.G.added", "users.B.added", "users.A.renamed"} {
		_, _ = store.Append(ctx, jetsource.Event{Subject: subjects.MustParse(s), Data: []byte(`{}`)})
	}
	count := map[string]int{}
	last, err := subscriber.Replay(ctx, store, jetsource.Query{Filters: []subjects.Filter{subjects.MustParseFilter("users.>")}},
		func(_ context.Context, e jetsource.Event) error {
			count[e.Aggregate().String()]++
			fmt.Println(e.Sequence, e.Subject)
			return nil
		})
	fmt.Println("last", last, "err", err, "users.A", count["users.A"])
	// Output:
	// 1 users.A.added
	// 3 users.B.added
	// 4 users.A.renamed
	// last 4 err <nil> users.A 2
}
