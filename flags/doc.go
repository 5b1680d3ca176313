// Package flags provides feature flags: named booleans that are on, off or
// unset, read from a file of defaults and overridden at run time through a
// NATS key-value bucket, with every change recorded as an event.
//
// # Checking a flag
//
// Code that does optional work asks an [Enabler] before it starts, with
// the context of the work, like [log/slog.Handler.Enabled]:
//
//	if flagger.Enabled(ctx, "billing.v2") {
//		...
//	}
//
// [Static] is a fixed map, [Var] a map that can be flipped at run time in
// memory, and [Set] the flags of a file and a bucket. Code that needs a
// flag declares the one-method interface it uses; all three fit it.
//
// # Sources and precedence
//
// A [Set] layers two sources. The file ([LoadFile], [ParseFile]) gives
// each flag's default and description:
//
//	flags:
//	  new-checkout: true
//	  search.fuzzy:
//	    enabled: false
//	    description: fuzzy matching in the search box
//
// The bucket ([EnsureBucket], default name [DefaultBucket]) holds one key
// per flag. A value there overrides the file; [Set.Unset] deletes the key,
// and the file's default applies again; a flag neither sets is off.
// [Set.Watch] keeps the Set current, so a toggle takes effect in every
// watching process within milliseconds, without a restart (the tests hold
// it to under a second). Reads never block.
//
// Flag names are 1 to 128 bytes of A-Z a-z 0-9 _ . - ([ValidName]), valid
// bucket keys all; anything else is refused before anything is written.
//
// # Audit
//
// [Set.Put] and [Set.Unset] pass each [Change] (flag, new and previous
// value and source, actor, a change ID) to a [Recorder] before they write
// it. The jetsource command line records it as an event on
// flags.<name>.changed. The record comes first: no change takes effect
// unrecorded. The bucket value carries the change ID, the link from the
// value to its record. If the write fails after the record, the record
// stays and the error says so ([ErrNotApplied]); its change ID then
// appears in no bucket value.
//
// # Gating workers
//
// A [Gate] tells a worker what to do while a flag is off: skip the work
// ([SkipWhenOff]) or wait until the flag is on again ([PauseWhenOff]).
// [Gate.Allow] blocks a pausing worker and wakes it as soon as the Set
// sees the toggle.
//
// # OpenFeature
//
// [Provider] serves the same flags to code written against the
// OpenFeature Go SDK, with configuration-change events on every toggle.
package flags
