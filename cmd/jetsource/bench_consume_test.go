package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchConsume(t *testing.T) {
	ctx := context.Background()
	code, out, errOut := run(t, ctx, "", "bench", "consume", "--json", "--events", "300", "--rounds", "1", "--concurrency", "3", "--aggregates", "7")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	var r benchResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if r.Scenario != "consume" || r.Events != 300 || r.Concurrency != 3 || r.JetsourcePerSec <= 0 || r.RawPerSec <= 0 || r.Target != 0.8 || r.Fsync != "always" {
		t.Fatalf("result %+v", r)
	}
}

func TestBenchConsumeBadFlags(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"--events", "0"},
		{"--concurrency", "0"},
		{"--aggregates", "-1"},
		{"--rounds", "0"},
	} {
		code, out, _ := run(t, ctx, "", append([]string{"bench", "consume"}, args...)...)
		if code != exitUsage || out != "" {
			t.Errorf("%v: code %d, out %q; want usage error and no output", args, code, out)
		}
	}
}
