// Package subjects models the NATS subjects that jetsource stores events
// on, and the filters that select them, as value types that are checked
// once, when they are parsed.
//
// A [Subject] is a literal subject such as users.A.added and a [Filter] a
// subject filter such as users.A.> or users.*.added. Both are comparable
// values in the manner of net/netip: build them with [Parse], [Join] or
// [ParseFilter], turn them back into text with String, and carry them
// through JSON, flags and configuration files with MarshalText and
// UnmarshalText. Once a value exists it is valid, so code that receives a
// Subject or a Filter does not check it again.
//
// # Layout
//
// Events live on hierarchical subjects. The last token names the event and
// everything before it names the aggregate the event belongs to:
//
//	subject    users.A.added
//	aggregate  users.A      (Subject.Aggregate)
//	event      added        (Subject.Event)
//	filter     users.A.>    (Subject.AggregateFilter)
//
// The filter selects every event of the aggregate. An aggregate has one
// or more tokens and an event name exactly one, so a subject needs at
// least two tokens to hold an event. Since ">" matches one or more
// tokens, the filter of users.A also matches the events of users.A.B: a
// layout should not put one aggregate inside another. Escaping each identifier into a single token
// (see below) keeps ids with dots from creating such nested aggregates.
//
// # Tokens
//
// A valid literal token is non-empty, valid UTF-8, and holds no '.', no
// wildcard ('*' or '>') and no space or control byte. Everything else is
// allowed, non-ASCII letters included. [Join] and [Subject.Append] check
// each token and do not escape anything: a bad token is an error that
// names it. Subjects and filters are at most [MaxLen] bytes long.
//
// # Escaping
//
// Identifiers that come from outside (email addresses, paths, names with
// spaces or dots) may hold any byte. [Escape] turns any string into one
// valid literal token, keeping A-Z, a-z, 0-9, '_' and '-' and writing every
// other byte as '=' and two upper-case hex digits:
//
//	Escape("ann@example.com") == "ann=40example=2Ecom"
//	Escape("") == "="
//
// [Unescape] is its strict inverse: it accepts only what Escape produces,
// so each string has exactly one escaped form and two writers that escape
// the same identifier always build the same subject.
//
// # Canonical filters
//
// A filter has exactly one text form. [ParseFilter] accepts only that form
// and [Filter.String] returns it, and every filter the toolkit sends to the
// server goes through String. A list of filters has a canonical form too:
// [Canonical] drops zero filters, duplicates and filters covered by
// another one, and sorts the rest.
//
// The identical string matters most for optimistic concurrency. A writer
// appends to an aggregate only if the last event stored on the aggregate's
// filter still has the sequence it read, which it says with the
// Nats-Expected-Last-Subject-Sequence header and the filter in the
// Nats-Expected-Last-Subject-Sequence-Subject header. On a replicated
// stream the leader checks that expectation before the write is
// replicated, and it guards the writes still in flight by the exact text
// of that filter: a second write naming the same text is refused until the
// first one has been applied. Two writers that spelled the filter of one
// aggregate differently, say users.A.> and users.A.*, would both slip past
// that guard and could both pass the check against the same last
// sequence, so one of their events would silently break the other's
// expectation. [Subject.AggregateFilter] therefore returns the one filter
// of an aggregate that every writer uses.
//
// # Matching
//
// [Filter.Match], [Filter.Covers] and [Filter.Overlaps] follow the NATS
// server: "*" matches exactly one token and ">" one or more trailing
// tokens. The zero Filter matches nothing.
package subjects
