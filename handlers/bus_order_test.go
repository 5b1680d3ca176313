package handlers_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetsource/jetsource/handlers"
)

// received returns a condition for waitFor: the server has received n
// commands.
func received(s *handlers.Server, n uint64) func() error {
	return func() error {
		if got := s.Received(); got != n {
			return fmt.Errorf("received %d commands, want %d", got, n)
		}
		return nil
	}
}

// TestServerStartsCommandsInArrivalOrder: with every slot busy, commands
// wait in the order they came, whatever their name. Before, each name's
// subscription held one command waiting for a slot, so the names took
// turns: a command of a rare name overtook every queued command of a
// frequent one, which under load (AddUserToGroup, 40% of the example's
// commands, against 64 slots) waited several times longer than the rest.
func TestServerStartsCommandsInArrivalOrder(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var mu sync.Mutex
	var order []string
	record := func(ctx context.Context, _ handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
		mu.Lock()
		order = append(order, cmd.Name)
		mu.Unlock()
		return handlers.Decision{}, nil
	}
	block := handlers.HandlerFunc(func(ctx context.Context, _ handlers.Reader, cmd handlers.Command) (handlers.Decision, error) {
		started <- struct{}{}
		<-release
		return handlers.Decision{}, nil
	})
	reg := registry(t, map[string]handlers.Handler{"Block": block, "Hot": handlers.HandlerFunc(record), "Cold": handlers.HandlerFunc(record)})
	s, err := handlers.Serve(context.Background(), e.nc, processor(t, e, reg), handlers.WithConcurrency(1))
	must(t, err)
	t.Cleanup(func() { s.Close() })
	c, err := handlers.NewClient(e.nc)
	must(t, err)

	var wg sync.WaitGroup
	send := func(name string) {
		wg.Go(func() {
			res, err := c.Send(context.Background(), name, nil)
			if err != nil || res.Status != handlers.StatusAccepted {
				t.Errorf("%s: %+v, %v", name, res, err)
			}
		})
	}
	send("Block")
	<-started // the one slot is taken
	const hot = 10
	for range hot {
		send("Hot")
	}
	waitFor(t, 10*time.Second, received(s, 1+hot))
	send("Cold")
	waitFor(t, 10*time.Second, received(s, 2+hot))
	close(release)
	wg.Wait()

	want := append(slices.Repeat([]string{"Hot"}, hot), "Cold")
	if !slices.Equal(order, want) {
		t.Fatalf("started in the order %v, want %v (the order they came)", order, want)
	}
}
