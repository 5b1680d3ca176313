package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func runBenchExample(t *testing.T, args ...string) exampleBenchResult {
	t.Helper()
	code, out, errOut := run(t, context.Background(), "", append([]string{"bench", "example", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	var r exampleBenchResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	return r
}

func TestBenchExample(t *testing.T) {
	r := runBenchExample(t, "--clients", "4", "--duration", "1500ms", "--timeout", "15s")
	if r.Scenario != "example" || r.Clients != 4 || r.TimeoutS != 15 || r.Fsync != "always" || r.WorkerConcurrency != 64 || r.Rules {
		t.Fatalf("result %+v", r)
	}
	if !r.Pass || r.Timeouts != 0 || r.Errors != 0 || r.FirstError != "" {
		t.Fatalf("want no timeouts and no errors: %+v", r)
	}
	if r.Accepted == 0 || r.CommandsPerSec <= 0 || r.P50Ms <= 0 || r.P99Ms < r.P50Ms {
		t.Fatalf("no commands measured: %+v", r)
	}
	// Without rules every stored event was named by an accepted answer.
	if r.EventsStored == 0 || r.EventsStored != r.EventsAccepted {
		t.Fatalf("events stored %d, named by accepted answers %d", r.EventsStored, r.EventsAccepted)
	}
	sent := 0
	for i, c := range r.ByCommand {
		if c.Command != exampleCommands[i] {
			t.Fatalf("by_command[%d] is %q, want %q", i, c.Command, exampleCommands[i])
		}
		if c.Sent == 0 || c.Accepted == 0 {
			t.Errorf("%s: sent %d, accepted %d; want some of each", c.Command, c.Sent, c.Accepted)
		}
		if got := c.Accepted + c.Rejected + c.Conflicts + c.Errors + c.Timeouts; got != c.Sent {
			t.Errorf("%s: %d outcomes for %d sent", c.Command, got, c.Sent)
		}
		sent += c.Sent
	}
	if sent != r.Sent {
		t.Errorf("the commands' sent add up to %d, the total is %d", sent, r.Sent)
	}
	inWindows := 0
	for _, w := range r.Windows {
		inWindows += w.Commands
	}
	if len(r.Windows) != 3 || r.Windows[2].ToS != r.DurationS || inWindows != r.Sent {
		t.Errorf("windows %+v hold %d commands of %d sent", r.Windows, inWindows, r.Sent)
	}
}

func TestBenchExampleConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the example configuration's projections and handlers")
	}
	r := runBenchExample(t, "--clients", "2", "--duration", "1s", "--config", "../../testdata/example/config.yaml")
	if !r.Rules || !r.Pass || r.Accepted == 0 {
		t.Fatalf("result %+v", r)
	}
	// The handler join-default-group adds inserted users to a group with
	// commands of its own.
	if r.EventsStored < r.EventsAccepted {
		t.Fatalf("events stored %d, fewer than the %d accepted answers name", r.EventsStored, r.EventsAccepted)
	}
}

func TestBenchExampleBadFlags(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"--clients", "0"},
		{"--duration", "0s"},
		{"--timeout", "-1s"},
		{"--companies", "0"},
		{"--groups", "0"},
		{"--concurrency", "-1"},
		{"--config", "no-such-file.yaml"},
	} {
		code, out, _ := run(t, ctx, "", append([]string{"bench", "example"}, args...)...)
		if code != exitUsage || out != "" {
			t.Errorf("%v: code %d, out %q; want usage error and no output", args, code, out)
		}
	}
}
