package flags_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/jetsource/jetsource/flags"
)

// newAPI returns an OpenFeature API of its own (not the SDK's global one)
// with p as its provider.
func newAPI(t *testing.T, p openfeature.FeatureProvider) *openfeature.Client {
	t.Helper()
	api := isolated.NewAPI()
	t.Cleanup(func() {
		if err := api.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := api.SetProviderAndWait(ctx, p); err != nil {
		t.Fatal(err)
	}
	return api.NewClient()
}

func TestProviderEvaluation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := newSet(t, flags.WithBucket(e.kv), flags.WithDefinitions(sampleDefinitions))
	watch(t, s)
	if _, err := s.Put(ctx, "billing.v2", true, flags.WithActor("alice")); err != nil {
		t.Fatal(err)
	}
	enabledWithin(t, s, "billing.v2", true)
	hook := &countingHook{}
	p, err := flags.NewProvider(s, flags.WithProviderHooks(hook))
	if err != nil {
		t.Fatal(err)
	}
	client := newAPI(t, p)
	ec := openfeature.NewTargetlessEvaluationContext(nil)
	if m := p.Metadata(); m.Name != flags.ProviderName {
		t.Fatalf("metadata %+v", m)
	}

	cases := []struct {
		flag    string
		def     bool
		want    bool
		reason  openfeature.Reason
		variant string
		code    openfeature.ErrorCode
		source  string
	}{
		{"billing.v2", false, true, openfeature.StaticReason, "on", "", "kv"},
		{"new-checkout", false, true, openfeature.DefaultReason, "on", "", "file"},
		{"search.fuzzy", true, false, openfeature.DefaultReason, "off", "", "file"},
		{"beta-banner", true, false, openfeature.DefaultReason, "off", "", "default"},
		{"no-such-flag", true, true, openfeature.ErrorReason, "", openfeature.FlagNotFoundCode, ""},
	}
	for _, c := range cases {
		t.Run(c.flag, func(t *testing.T) {
			d, err := client.BooleanValueDetails(ctx, c.flag, c.def, ec)
			if (c.code == "") != (err == nil) {
				t.Fatalf("error %v, want code %q", err, c.code)
			}
			if d.Value != c.want || d.Reason != c.reason || d.Variant != c.variant || d.ErrorCode != c.code {
				t.Fatalf("got value %v reason %s variant %q code %s, want %v %s %q %s", d.Value, d.Reason, d.Variant, d.ErrorCode, c.want, c.reason, c.variant, c.code)
			}
			if c.source != "" {
				if src, _ := d.FlagMetadata.GetString("source"); src != c.source {
					t.Fatalf("metadata source %q, want %q", src, c.source)
				}
			}
		})
	}
	t.Run("ProviderHooksRun", func(t *testing.T) {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		if hook.before != len(cases) {
			t.Fatalf("provider hook ran %d times, want %d", hook.before, len(cases))
		}
	})
	t.Run("MetadataOfBucketValue", func(t *testing.T) {
		d, _ := client.BooleanValueDetails(ctx, "billing.v2", false, ec)
		actor, _ := d.FlagMetadata.GetString("actor")
		rev, _ := d.FlagMetadata.GetInt("revision")
		if actor != "alice" || rev == 0 {
			t.Fatalf("metadata %v", d.FlagMetadata)
		}
	})
	t.Run("OtherTypesMismatch", func(t *testing.T) {
		sd, err := client.StringValueDetails(ctx, "billing.v2", "x", ec)
		if err == nil || sd.Value != "x" || sd.ErrorCode != openfeature.TypeMismatchCode {
			t.Fatalf("string: %+v %v", sd, err)
		}
		id, err := client.IntValueDetails(ctx, "new-checkout", 7, ec)
		if err == nil || id.Value != 7 || id.ErrorCode != openfeature.TypeMismatchCode {
			t.Fatalf("int: %+v %v", id, err)
		}
		fd, err := client.FloatValueDetails(ctx, "new-checkout", 1.5, ec)
		if err == nil || fd.Value != 1.5 || fd.ErrorCode != openfeature.TypeMismatchCode {
			t.Fatalf("float: %+v %v", fd, err)
		}
		od, err := client.ObjectValueDetails(ctx, "new-checkout", "obj", ec)
		if err == nil || od.Value != "obj" || od.ErrorCode != openfeature.TypeMismatchCode {
			t.Fatalf("object: %+v %v", od, err)
		}
		nd, err := client.StringValueDetails(ctx, "no-such-flag", "x", ec)
		if err == nil || nd.ErrorCode != openfeature.FlagNotFoundCode {
			t.Fatalf("unknown string flag: %+v %v", nd, err)
		}
	})
	t.Run("LiveValue", func(t *testing.T) {
		if _, err := s.Put(ctx, "new-checkout", false); err != nil {
			t.Fatal(err)
		}
		checkFor(t, toggleWithin, func() error {
			if client.Boolean(ctx, "new-checkout", true, ec) {
				return errors.New("still on")
			}
			return nil
		})
	})
}

// TestProviderConfigurationChanged: a change in the bucket reaches the
// SDK's handlers as PROVIDER_CONFIGURATION_CHANGED naming the flag.
func TestProviderConfigurationChanged(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := newSet(t, flags.WithBucket(e.kv))
	watch(t, s)
	p, err := flags.NewProvider(s, flags.WithProviderName("test-flags"))
	if err != nil {
		t.Fatal(err)
	}
	client := newAPI(t, p)
	var mu sync.Mutex
	var got []openfeature.EventDetails
	cb := func(d openfeature.EventDetails) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, d)
	}
	client.AddHandler(openfeature.ProviderConfigChange, &cb)

	start := time.Now()
	if _, err := s.Put(ctx, "checkout", true); err != nil {
		t.Fatal(err)
	}
	checkFor(t, toggleWithin, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range got {
			if d.ProviderName == "test-flags" && slices.Contains(d.FlagChanges, "checkout") {
				return nil
			}
		}
		return errors.New("no configuration change for checkout")
	})
	t.Logf("configuration change delivered %v after the put", time.Since(start).Round(time.Microsecond))
}

func TestProviderInitWaitsForBucket(t *testing.T) {
	e := newEnv(t)
	s := newSet(t, flags.WithBucket(e.kv))
	p, err := flags.NewProvider(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.InitWithContext(ctx, openfeature.EvaluationContext{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Init before the Set is ready: got %v, want the deadline", err)
	}
	watch(t, s)
	if err := p.InitWithContext(context.Background(), openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	if err := p.ShutdownWithContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Shutdown() // idempotent

	for _, opt := range []flags.ProviderOption{flags.WithProviderName(""), flags.WithProviderHooks(nil), flags.WithInitTimeout(0)} {
		if _, err := flags.NewProvider(s, opt); !errors.Is(err, flags.ErrInvalidOption) {
			t.Errorf("got %v, want ErrInvalidOption", err)
		}
	}
	if _, err := flags.NewProvider(nil); !errors.Is(err, flags.ErrInvalidOption) {
		t.Errorf("nil set: got %v", err)
	}
}

// countingHook counts the evaluations it sees.
type countingHook struct {
	openfeature.UnimplementedHook
	mu     sync.Mutex
	before int
}

func (h *countingHook) Before(context.Context, openfeature.HookContext, openfeature.HookHints) (*openfeature.EvaluationContext, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.before++
	return nil, nil
}
