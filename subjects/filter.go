package subjects

import (
	"slices"
	"strings"
)

// Filter is a subject filter such as users.A.> or users.*.added. Its
// tokens are valid literal tokens (see [Parse]) or the wildcards "*", which
// matches exactly one token, and ">", which matches one or more trailing
// tokens and may only be the last token.
//
// Filter is a comparable value type. The zero value is the empty filter,
// which matches nothing; it is what [Subject.AggregateFilter] returns when
// there is no aggregate. Build a Filter with [ParseFilter], [All],
// [Subject.Filter] or [Subject.AggregateFilter].
type Filter struct {
	s string
}

// ParseFilter parses s as a filter: one or more tokens separated by '.',
// where each token is a valid literal token (see [Parse]), exactly "*", or
// exactly ">" as the last token, and at most [MaxLen] bytes in all.
//
// ParseFilter accepts only this exact form, so
// ParseFilter(s).String() == s.
//
// Every error wraps [ErrInvalidFilter]. It also wraps [ErrInvalidToken]
// when a token is bad, and [ErrTooLong] when s is longer than [MaxLen].
func ParseFilter(s string) (Filter, error) {
	if err := checkString(s, true); err != nil {
		return Filter{}, err
	}
	return Filter{s}, nil
}

// MustParseFilter is like [ParseFilter] but panics when s is not a valid
// filter. It is meant for tests and for filters fixed in code, not for
// input from users or the network.
func MustParseFilter(s string) Filter {
	f, err := ParseFilter(s)
	if err != nil {
		panic(err)
	}
	return f
}

// All returns the filter ">", which matches every subject.
func All() Filter {
	return Filter{">"}
}

// String returns the filter as text. A filter has exactly one text form,
// which [ParseFilter] accepts unchanged, so String is also its canonical
// form. Every filter the toolkit sends to the server goes through String,
// which means equal filters always reach the server as identical strings.
// String returns "" for the zero Filter.
func (f Filter) String() string {
	return f.s
}

// IsZero reports whether f is the zero Filter.
func (f Filter) IsZero() bool {
	return f.s == ""
}

// IsLiteral reports whether f has no wildcard, so that it matches exactly
// one subject. The zero Filter is not literal.
func (f Filter) IsLiteral() bool {
	if f.s == "" {
		return false
	}
	for tok := range strings.SplitSeq(f.s, ".") {
		if tok == "*" || tok == ">" {
			return false
		}
	}
	return true
}

// Subject returns the one subject that f matches and true when f is
// literal (see [Filter.IsLiteral]), and the zero [Subject] and false
// otherwise.
func (f Filter) Subject() (Subject, bool) {
	if !f.IsLiteral() {
		return Subject{}, false
	}
	return Subject{f.s}, true
}

// Tokens returns the tokens of f in order, wildcards included, in a new
// slice. It returns nil for the zero Filter.
func (f Filter) Tokens() []string {
	if f.s == "" {
		return nil
	}
	return strings.Split(f.s, ".")
}

// Match reports whether f matches s, with the semantics of the NATS server:
// "*" matches exactly one token and ">" one or more trailing tokens. The
// zero Filter matches nothing, and nothing matches the zero [Subject].
func (f Filter) Match(s Subject) bool {
	if f.s == "" || s.s == "" {
		return false
	}
	return match(f.s, s.s)
}

// MatchString is like [Filter.Match] on a subject given as text. It
// reports false when subject is not a valid literal subject (see [Parse]).
func (f Filter) MatchString(subject string) bool {
	if f.s == "" || !validSubject(subject) {
		return false
	}
	return match(f.s, subject)
}

// Covers reports whether f matches every subject that g matches: users.>
// covers users.A.> and users.*.added, and users.* covers users.A but not
// users.A.>. Every filter covers itself. The zero Filter matches nothing,
// so it is covered by every filter and covers only the zero Filter.
func (f Filter) Covers(g Filter) bool {
	if g.s == "" {
		return true
	}
	if f.s == "" {
		return false
	}
	return covers(f.s, g.s)
}

// Overlaps reports whether some subject is matched by both f and g:
// users.*.added overlaps users.A.>, while users.A.> does not overlap
// users.B.>. The zero Filter overlaps nothing.
func (f Filter) Overlaps(g Filter) bool {
	if f.s == "" || g.s == "" {
		return false
	}
	return overlaps(f.s, g.s)
}

// MarshalText implements [encoding.TextMarshaler]. It returns the same text
// as [Filter.String]; the zero Filter marshals as empty text.
func (f Filter) MarshalText() ([]byte, error) {
	return []byte(f.s), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler]. Empty text sets f to
// the zero Filter without error; other text is parsed with [ParseFilter],
// and on error f is set to the zero Filter.
func (f *Filter) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*f = Filter{}
		return nil
	}
	var err error
	*f, err = ParseFilter(string(text))
	return err
}

// Canonical returns the canonical form of a list of filters: zero filters
// are dropped, and so are duplicates and filters covered by another filter
// of the list (see [Filter.Covers]); the rest is sorted by byte order of
// [Filter.String]. The result does not depend on the order of fs, and
// Canonical of a canonical list returns it unchanged, so use Canonical
// whenever several filters are sent together. It returns nil when no
// filter is left.
//
// Filters that only partly overlap, such as users.*.added and users.A.>,
// are all kept; check [Filter.Overlaps] where the receiver needs disjoint
// filters.
func Canonical(fs ...Filter) []Filter {
	list := make([]Filter, 0, len(fs))
	for _, f := range fs {
		if f.s != "" {
			list = append(list, f)
		}
	}
	slices.SortFunc(list, func(a, b Filter) int { return strings.Compare(a.s, b.s) })
	list = slices.Compact(list)
	var out []Filter
	for i, f := range list {
		covered := false
		for j, g := range list {
			if i != j && g.Covers(f) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, f)
		}
	}
	return out
}

// MatchRaw reports whether f matches the raw subject s as a NATS server
// matched it when the message was stored: each token of s taken
// literally, so s need not be a valid subject (a message stored on
// "users.*.added" by a foreign client is matched by "users.>" and
// "users.*.added", not by "users.A.added"). It is false for an empty s.
func (f Filter) MatchRaw(s string) bool {
	if f.IsZero() || s == "" {
		return false
	}
	return match(f.String(), s)
}

// The helpers below take valid, non-empty filter and subject strings. They
// walk both strings token by token without allocating.

// match reports whether filter f matches literal subject s.
func match(f, s string) bool {
	for {
		ft, frest, fmore := strings.Cut(f, ".")
		st, srest, smore := strings.Cut(s, ".")
		if ft == ">" {
			return true
		}
		if ft != "*" && ft != st {
			return false
		}
		if !fmore || !smore {
			return fmore == smore
		}
		f, s = frest, srest
	}
}

// covers reports whether filter f matches every subject filter g matches.
func covers(f, g string) bool {
	for {
		ft, frest, fmore := strings.Cut(f, ".")
		gt, grest, gmore := strings.Cut(g, ".")
		if ft == ">" {
			return true
		}
		if gt == ">" {
			// g matches any number of tokens from here on, f a fixed number.
			return false
		}
		if ft != "*" && ft != gt {
			return false
		}
		if !fmore || !gmore {
			return fmore == gmore
		}
		f, g = frest, grest
	}
}

// overlaps reports whether some subject is matched by both filters.
func overlaps(f, g string) bool {
	for {
		ft, frest, fmore := strings.Cut(f, ".")
		gt, grest, gmore := strings.Cut(g, ".")
		if ft == ">" || gt == ">" {
			return true
		}
		if ft != "*" && gt != "*" && ft != gt {
			return false
		}
		if !fmore || !gmore {
			return fmore == gmore
		}
		f, g = frest, grest
	}
}
