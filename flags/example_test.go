package flags_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/jetsource/jetsource/flags"
)

func ExampleStatic() {
	ctx := context.Background()
	var f flags.Enabler = flags.Static{"new-checkout": true}
	fmt.Println(f.Enabled(ctx, "new-checkout"), f.Enabled(ctx, "other"))
	// Output: true false
}

func ExampleParseFile() {
	defs, err := flags.ParseFile("flags.yaml", []byte(`
flags:
  new-checkout: true
  search.fuzzy:
    enabled: off
    description: fuzzy matching
`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(defs["new-checkout"].Default, defs["search.fuzzy"].Default, defs["search.fuzzy"].Description)

	_, err = flags.ParseFile("flags.yaml", []byte("flags:\n  new-checkout: maybe\n"))
	fmt.Println(err)
	// Output:
	// on off fuzzy matching
	// flags.yaml:2:17: flags.new-checkout: flags: invalid flag value: want true, false, on or off, got "maybe"
}

func ExampleGate() {
	ctx := context.Background()
	var v flags.Var
	gate, err := flags.NewGate(&v, "billing.v2", flags.SkipWhenOff)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(gate.Decide(ctx))
	_ = v.Set("billing.v2", true)
	fmt.Println(gate.Decide(ctx))
	// Output:
	// skip
	// process
}

// A worker process: file defaults, live overrides from the bucket, and a
// gate that pauses the work while the flag is off.
func ExampleSet_Watch() {
	ctx := context.Background()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := flags.EnsureBucket(ctx, js, jetstream.KeyValueConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defs, err := flags.LoadFile("flags.yaml")
	if err != nil {
		log.Fatal(err)
	}
	set, err := flags.New(flags.WithBucket(kv), flags.WithDefinitions(defs))
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := set.Watch(ctx); err != nil {
			log.Print(err)
		}
	}()
	<-set.Ready()

	gate, _ := flags.NewGate(set, "billing.v2", flags.PauseWhenOff)
	for {
		if ok, err := gate.Allow(ctx); err != nil || !ok {
			return
		}
		// ... do one unit of work
	}
}

// An operator's tool: every toggle is recorded before it is written.
func ExampleSet_Put() {
	ctx := context.Background()
	nc, _ := nats.Connect(nats.DefaultURL)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, _ := flags.EnsureBucket(ctx, js, jetstream.KeyValueConfig{})
	audit := flags.RecorderFunc(func(ctx context.Context, c flags.Change) error {
		// Append an event with id c.ID and actor c.Actor to the event store.
		return nil
	})
	set, _ := flags.New(flags.WithBucket(kv), flags.WithRecorder(audit))
	c, err := set.Put(ctx, "billing.v2", true, flags.WithActor("alice"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Name, c.Previous, "->", c.Value)
}

// OpenFeature clients read the same flags through the provider.
func ExampleNewProvider() {
	ctx := context.Background()
	set, _ := flags.New(flags.WithDefinitions(flags.Definitions{"new-checkout": {Default: flags.On}}))
	provider, _ := flags.NewProvider(set)
	api := isolated.NewAPI() // not the SDK's global API
	defer func() { _ = api.Shutdown(ctx) }()
	if err := api.SetProviderAndWait(ctx, provider); err != nil {
		log.Fatal(err)
	}
	client := api.NewClient()
	d, _ := client.BooleanValueDetails(ctx, "new-checkout", false, openfeature.EvaluationContext{})
	fmt.Println(d.Value, d.Reason, d.Variant)
	// Output: true DEFAULT on
}
