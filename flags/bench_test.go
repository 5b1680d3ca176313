package flags_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/flags"
)

// BenchmarkSetEnabled measures a flag check: what a handler pays before
// every unit of work.
func BenchmarkSetEnabled(b *testing.B) {
	s, err := flags.New(flags.WithDefinitions(flags.Definitions{"a": {Default: flags.On}, "b": {Default: flags.Off}}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !s.Enabled(ctx, "a") {
				b.Fatal("a is off")
			}
		}
	})
}

// BenchmarkToggle measures a Put on one connection until a Set watching
// on another connection sees it: the latency of a toggle.
func BenchmarkToggle(b *testing.B) {
	srv := embeddedtest.Run(b)
	ctx := context.Background()
	open := func() jetstream.KeyValue {
		js, err := jetstream.New(embeddedtest.Connect(b, srv))
		if err != nil {
			b.Fatal(err)
		}
		kv, err := flags.EnsureBucket(ctx, js, jetstream.KeyValueConfig{})
		if err != nil {
			b.Fatal(err)
		}
		return kv
	}
	watcher, _ := flags.New(flags.WithBucket(open()))
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- watcher.Watch(wctx) }()
	defer func() { cancel(); <-done }()
	<-watcher.Ready()
	writer, _ := flags.New(flags.WithBucket(open()))
	var worst time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		on := i%2 == 0
		ch := watcher.Changed()
		start := time.Now()
		if _, err := writer.Put(ctx, "bench", on); err != nil {
			b.Fatal(err)
		}
		for watcher.Enabled(ctx, "bench") != on {
			select {
			case <-ch:
				ch = watcher.Changed()
			case <-time.After(time.Second):
				b.Fatal("toggle not seen within a second")
			}
		}
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
}
