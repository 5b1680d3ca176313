package flags

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
)

// ProviderName is the name in an OpenFeature [Provider]'s metadata
// unless [WithProviderName] gives another.
const ProviderName = "jetsource-flags"

// ProviderOption configures a [Provider].
type ProviderOption func(*Provider) error

// WithProviderName sets the name in the provider's metadata.
func WithProviderName(name string) ProviderOption {
	return func(p *Provider) error {
		if name == "" {
			return fmt.Errorf("%w: empty provider name", ErrInvalidOption)
		}
		p.name = name
		return nil
	}
}

// WithProviderHooks sets hooks that run around every evaluation of the
// provider.
func WithProviderHooks(hooks ...openfeature.Hook) ProviderOption {
	return func(p *Provider) error {
		for _, h := range hooks {
			if h == nil {
				return fmt.Errorf("%w: nil hook", ErrInvalidOption)
			}
		}
		p.hooks = append(p.hooks, hooks...)
		return nil
	}
}

// WithInitTimeout bounds how long Init waits for the Set's values when
// the SDK calls it without a context (default 10s).
func WithInitTimeout(d time.Duration) ProviderOption {
	return func(p *Provider) error {
		if d <= 0 {
			return fmt.Errorf("%w: init timeout %v must be positive", ErrInvalidOption, d)
		}
		p.initTimeout = d
		return nil
	}
}

// Provider is an OpenFeature provider (github.com/open-feature/go-sdk)
// over a [Set], so code written against OpenFeature reads the same flags
// as [Gate] and [Set.Enabled].
//
// Flags are booleans. BooleanEvaluation returns the flag's value with the
// reason STATIC when the bucket sets it and DEFAULT when the file's
// default (or off, for a flag the file declares without a value) applies;
// the variant is "on" or "off" and the flag metadata holds the source and,
// for a bucket value, its revision and actor. A flag neither the file nor
// the bucket knows resolves to the caller's default with the error
// FLAG_NOT_FOUND. The other typed evaluations return the caller's default
// with TYPE_MISMATCH for a known flag and FLAG_NOT_FOUND for an unknown
// one. The evaluation context is not used: there is no targeting.
//
// The provider emits PROVIDER_CONFIGURATION_CHANGED, naming the flags,
// when the Set sees a change. Its initialisation waits until the Set has
// loaded the bucket ([Set.Ready]), so run [Set.Watch] before or while
// registering it. Register it with a non-global API where the SDK offers
// one (openfeature/isolated.NewAPI).
type Provider struct {
	set         *Set
	name        string
	hooks       []openfeature.Hook
	initTimeout time.Duration
	events      chan openfeature.Event

	mu      sync.Mutex // guards the fields below
	remove  func()
	stop    chan struct{}
	done    chan struct{}
	wake    chan struct{}
	pending []string
}

var (
	_ openfeature.FeatureProvider          = (*Provider)(nil)
	_ openfeature.ContextAwareStateHandler = (*Provider)(nil)
	_ openfeature.EventHandler             = (*Provider)(nil)
)

// NewProvider returns a provider over set. It returns an error matching
// [ErrInvalidOption] for a nil set or a bad option.
func NewProvider(set *Set, opts ...ProviderOption) (*Provider, error) {
	if set == nil {
		return nil, fmt.Errorf("%w: nil flag set", ErrInvalidOption)
	}
	p := &Provider{set: set, name: ProviderName, initTimeout: 10 * time.Second, events: make(chan openfeature.Event, 1)}
	for _, opt := range opts {
		if err := opt(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Metadata returns the provider's name.
func (p *Provider) Metadata() openfeature.Metadata { return openfeature.Metadata{Name: p.name} }

// Hooks returns the hooks of [WithProviderHooks].
func (p *Provider) Hooks() []openfeature.Hook { return p.hooks }

// BooleanEvaluation resolves the flag: see [Provider].
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, defaultValue bool, _ openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	f, known := p.set.Flag(flag)
	if !known {
		return openfeature.BoolResolutionDetail{Value: defaultValue, ProviderResolutionDetail: notFound(flag)}
	}
	reason := openfeature.DefaultReason
	md := openfeature.FlagMetadata{"source": string(f.Source)}
	if f.Source == SourceKV {
		reason = openfeature.StaticReason
		md["revision"] = int64(f.Revision)
		if f.Actor != "" {
			md["actor"] = f.Actor
		}
	}
	if f.Description != "" {
		md["description"] = f.Description
	}
	return openfeature.BoolResolutionDetail{
		Value: f.Enabled,
		ProviderResolutionDetail: openfeature.ProviderResolutionDetail{
			Reason:       reason,
			Variant:      ValueOf(f.Enabled).String(),
			FlagMetadata: md,
		},
	}
}

// StringEvaluation returns defaultValue with TYPE_MISMATCH (or
// FLAG_NOT_FOUND): flags are booleans.
func (p *Provider) StringEvaluation(_ context.Context, flag string, defaultValue string, _ openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	return openfeature.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.mismatch(flag, "string")}
}

// FloatEvaluation returns defaultValue with TYPE_MISMATCH (or
// FLAG_NOT_FOUND): flags are booleans.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, defaultValue float64, _ openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	return openfeature.FloatResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.mismatch(flag, "float")}
}

// IntEvaluation returns defaultValue with TYPE_MISMATCH (or
// FLAG_NOT_FOUND): flags are booleans.
func (p *Provider) IntEvaluation(_ context.Context, flag string, defaultValue int64, _ openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	return openfeature.IntResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.mismatch(flag, "integer")}
}

// ObjectEvaluation returns defaultValue with TYPE_MISMATCH (or
// FLAG_NOT_FOUND): flags are booleans.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, defaultValue any, _ openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	return openfeature.InterfaceResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.mismatch(flag, "object")}
}

func (p *Provider) mismatch(flag, kind string) openfeature.ProviderResolutionDetail {
	if _, known := p.set.Flag(flag); !known {
		return notFound(flag)
	}
	return openfeature.ProviderResolutionDetail{
		ResolutionError: openfeature.NewTypeMismatchResolutionError(fmt.Sprintf("flag %q is a boolean, not a %s", flag, kind)),
		Reason:          openfeature.ErrorReason,
	}
}

func notFound(flag string) openfeature.ProviderResolutionDetail {
	return openfeature.ProviderResolutionDetail{
		ResolutionError: openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("no flag %q in the file or the bucket", flag)),
		Reason:          openfeature.ErrorReason,
	}
}

// EventChannel returns the channel of the provider's events.
func (p *Provider) EventChannel() <-chan openfeature.Event { return p.events }

// Init waits, up to the init timeout, until the Set has loaded its
// values, and starts emitting configuration changes.
func (p *Provider) Init(ec openfeature.EvaluationContext) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.initTimeout)
	defer cancel()
	return p.InitWithContext(ctx, ec)
}

// InitWithContext waits until the Set has loaded its values
// ([Set.Ready]) or ctx ends, and starts emitting configuration changes.
// It returns the context's error when ctx ends first.
func (p *Provider) InitWithContext(ctx context.Context, _ openfeature.EvaluationContext) error {
	select {
	case <-p.set.Ready():
	case <-ctx.Done():
		return fmt.Errorf("flags: provider waiting for the flag bucket: %w", ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		return nil // already running
	}
	p.stop, p.done, p.wake = make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
	p.remove = p.set.OnChange(p.changed)
	go p.forward(p.stop, p.done, p.wake)
	return nil
}

// Shutdown stops emitting events and waits for the provider's goroutine.
func (p *Provider) Shutdown() { _ = p.ShutdownWithContext(context.Background()) }

// ShutdownWithContext stops emitting events and waits for the provider's
// goroutine or ctx, whose error it returns when ctx ends first.
func (p *Provider) ShutdownWithContext(ctx context.Context) error {
	p.mu.Lock()
	stop, done, remove := p.stop, p.done, p.remove
	p.stop, p.done, p.remove, p.pending = nil, nil, nil, nil
	p.mu.Unlock()
	if stop == nil {
		return nil
	}
	remove()
	close(stop)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// changed notes a change from the Set; it never blocks the Set's watch.
func (p *Provider) changed(c Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop == nil {
		return
	}
	p.pending = append(p.pending, c.Name)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// forward sends the pending changes as one event at a time.
func (p *Provider) forward(stop, done, wake chan struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case <-wake:
		}
		p.mu.Lock()
		if p.stop != stop {
			// Shut down (and perhaps started again): the pending changes
			// belong to the next run.
			p.mu.Unlock()
			return
		}
		names := p.pending
		p.pending = nil
		p.mu.Unlock()
		if len(names) == 0 {
			continue
		}
		ev := openfeature.Event{
			ProviderName: p.name,
			EventType:    openfeature.ProviderConfigChange,
			ProviderEventDetails: openfeature.ProviderEventDetails{
				Message:     "flags changed",
				FlagChanges: dedupe(names),
			},
		}
		select {
		case p.events <- ev:
		case <-stop:
			return
		}
	}
}

func dedupe(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := names[:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
