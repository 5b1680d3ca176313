package example_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/handlers/example"
	"github.com/jetsource/jetsource/jetstore"
)

func setup(t *testing.T) (*jetstore.Store, func(opts ...handlers.Option) *handlers.Processor) {
	t.Helper()
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>", "groups.>", "companies.>"}}); err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	return st, func(opts ...handlers.Option) *handlers.Processor {
		reg := handlers.NewRegistry()
		if err := example.Register(reg); err != nil {
			t.Fatal(err)
		}
		p, err := handlers.NewProcessor(st, reg, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func TestUsersAndGroups(t *testing.T) {
	st, newProcessor := setup(t)
	p := newProcessor()
	ctx := context.Background()
	steps := []struct {
		name    string
		command string
		payload any
		status  handlers.Status
		reason  string
	}{
		{"InsertHomer", "InsertUser", example.InsertUser{Company: "acme", ID: "1", Name: "Homer", Username: "homer"}, handlers.StatusAccepted, ""},
		{"InsertBart", "InsertUser", example.InsertUser{Company: "acme", ID: "2", Name: "Bart", Username: "bart"}, handlers.StatusAccepted, ""},
		{"UsernameTaken", "InsertUser", example.InsertUser{Company: "acme", ID: "3", Name: "Homer J", Username: "homer"}, handlers.StatusRejected, "username homer is taken in company acme"},
		{"UsernameFreeInOtherCompany", "InsertUser", example.InsertUser{Company: "other", ID: "1", Name: "Homer", Username: "homer"}, handlers.StatusAccepted, ""},
		{"IDTaken", "InsertUser", example.InsertUser{Company: "acme", ID: "1", Name: "X", Username: "x"}, handlers.StatusRejected, "user 1 exists"},
		{"MissingFields", "InsertUser", example.InsertUser{Company: "acme"}, handlers.StatusRejected, "id is required"},
		{"SetAPIKey", "SetAPIKey", example.SetAPIKey{Company: "acme", ID: "1", Key: "d0a"}, handlers.StatusAccepted, ""},
		{"SetAPIKeyNoUser", "SetAPIKey", example.SetAPIKey{Company: "acme", ID: "9", Key: "k"}, handlers.StatusRejected, "user 9 does not exist"},
		{"AddToGroup", "AddUserToGroup", example.Membership{Company: "acme", Group: "simpsons", User: "1"}, handlers.StatusAccepted, ""},
		{"AddToGroupTwice", "AddUserToGroup", example.Membership{Company: "acme", Group: "simpsons", User: "1"}, handlers.StatusRejected, "already a member"},
		{"AddToSecondGroup", "AddUserToGroup", example.Membership{Company: "acme", Group: "power plant", User: "1"}, handlers.StatusAccepted, ""},
		{"AddNoUser", "AddUserToGroup", example.Membership{Company: "acme", Group: "simpsons", User: "9"}, handlers.StatusRejected, "does not exist"},
		{"DeleteMember", "DeleteUser", example.DeleteUser{Company: "acme", ID: "1"}, handlers.StatusRejected, "member of the groups power plant, simpsons"},
		{"RemoveFromGroup", "RemoveUserFromGroup", example.Membership{Company: "acme", Group: "simpsons", User: "1"}, handlers.StatusAccepted, ""},
		{"RemoveTwice", "RemoveUserFromGroup", example.Membership{Company: "acme", Group: "simpsons", User: "1"}, handlers.StatusRejected, "not a member"},
		{"DeleteStillMember", "DeleteUser", example.DeleteUser{Company: "acme", ID: "1"}, handlers.StatusRejected, "member of the groups power plant:"},
		{"RemoveFromSecond", "RemoveUserFromGroup", example.Membership{Company: "acme", Group: "power plant", User: "1"}, handlers.StatusAccepted, ""},
		{"Delete", "DeleteUser", example.DeleteUser{Company: "acme", ID: "1"}, handlers.StatusAccepted, ""},
		{"DeleteTwice", "DeleteUser", example.DeleteUser{Company: "acme", ID: "1"}, handlers.StatusRejected, "user 1 is deleted"},
		{"SetAPIKeyDeleted", "SetAPIKey", example.SetAPIKey{Company: "acme", ID: "1", Key: "k"}, handlers.StatusRejected, "is deleted"},
		{"UsernameReleased", "InsertUser", example.InsertUser{Company: "acme", ID: "4", Name: "Homer II", Username: "homer"}, handlers.StatusAccepted, ""},
	}
	for _, s := range steps {
		res, err := p.Send(ctx, s.command, s.payload, handlers.WithActor("admin"))
		if err != nil || res.Status != s.status || (s.reason != "" && !strings.Contains(strings.Join(res.Reasons, "; "), s.reason)) {
			t.Fatalf("%s: got %+v, %v; want %s %q", s.name, res, err, s.status, s.reason)
		}
	}
	var types []string
	for e, err := range st.Read(ctx, jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Actor != "admin" {
			t.Fatalf("event without the actor: %+v", e)
		}
		types = append(types, e.Type)
	}
	want := []string{"users.inserted", "companies.claimed", "users.inserted", "companies.claimed", "users.inserted", "companies.claimed",
		"users.apikeyset", "groups.added", "groups.added", "groups.removed", "groups.removed", "users.deleted", "companies.released",
		"users.inserted", "companies.claimed"}
	if !slices.Equal(types, want) {
		t.Fatalf("events:\n got %v\nwant %v", types, want)
	}
}

// Two workers (processors that do not queue for each other) race for one
// username: exactly one user gets it.
func TestUsernameRace(t *testing.T) {
	_, newProcessor := setup(t)
	ctx := context.Background()
	procs := []*handlers.Processor{newProcessor(), newProcessor()}
	const n = 6
	results := make([]handlers.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], _ = procs[i%2].Send(ctx, "InsertUser", example.InsertUser{Company: "acme", ID: string(rune('a' + i)), Name: "N", Username: "lisa"})
		})
	}
	wg.Wait()
	accepted := 0
	for _, r := range results {
		switch r.Status {
		case handlers.StatusAccepted:
			accepted++
		case handlers.StatusRejected:
			if !strings.Contains(r.Reasons[0], "username lisa is taken") {
				t.Fatalf("rejected for another reason: %+v", r)
			}
		default:
			t.Fatalf("got %+v", r)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d users got the username lisa: %+v", accepted, results)
	}
}
