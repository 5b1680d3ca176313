package subjects

import (
	"fmt"
	"iter"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLen is the largest length in bytes of a subject or filter string. It
// fits the 4 KiB control line of the NATS protocol with room left for a
// reply subject.
const MaxLen = 3072

// Subject is a literal subject such as users.A.added: one or more valid
// literal tokens separated by '.'.
//
// Subject is a comparable value type: use == to compare and use it as a map
// key. The zero value is the empty subject, which is not valid; it is what
// [Subject.Aggregate] returns when there is no aggregate. Build a Subject
// with [Parse], [Join] or [Subject.Append].
type Subject struct {
	s string
}

// Parse parses s as a literal subject: one or more tokens separated by
// '.', where each token is a valid literal token, and at most [MaxLen]
// bytes in all. A valid literal token is non-empty, valid UTF-8, and holds
// no '.', '*', '>', space or control byte (below 0x20, or 0x7F); every other
// byte, including non-ASCII letters, '$', '=', '-' and '~', is allowed.
//
// Parse accepts only this exact form, so Parse(s).String() == s.
//
// Every error wraps [ErrInvalidSubject]. It also wraps [ErrInvalidToken]
// when a token is bad, and [ErrTooLong] when s is longer than [MaxLen].
func Parse(s string) (Subject, error) {
	if err := checkString(s, false); err != nil {
		return Subject{}, err
	}
	return Subject{s}, nil
}

// MustParse is like [Parse] but panics when s is not a valid subject. It is
// meant for tests and for subjects fixed in code, not for input from users
// or the network.
func MustParse(s string) Subject {
	subj, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return subj
}

// Join builds a subject from its tokens. Each token must already be a valid
// literal token (see [Parse]); Join does no escaping, so pass identifiers
// that may hold any byte through [Escape] first.
//
// Every error wraps [ErrInvalidSubject]. It also wraps [ErrInvalidToken],
// naming the bad token, when a token is not a valid literal token, and
// [ErrTooLong] when the result would be longer than [MaxLen].
func Join(tokens ...string) (Subject, error) {
	return Subject{}.Append(tokens...)
}

// String returns the subject as text, which [Parse] accepts unchanged. It
// returns "" for the zero Subject.
func (s Subject) String() string {
	return s.s
}

// IsZero reports whether s is the zero Subject.
func (s Subject) IsZero() bool {
	return s.s == ""
}

// Tokens returns the tokens of s in order, in a new slice. It returns nil
// for the zero Subject.
func (s Subject) Tokens() []string {
	if s.s == "" {
		return nil
	}
	return strings.Split(s.s, ".")
}

// NumTokens returns the number of tokens of s, 0 for the zero Subject.
func (s Subject) NumTokens() int {
	if s.s == "" {
		return 0
	}
	return strings.Count(s.s, ".") + 1
}

// Token returns the token at index i, counting from 0. It returns "" when i
// is out of range.
func (s Subject) Token(i int) string {
	if i < 0 || s.s == "" {
		return ""
	}
	n := 0
	for tok := range strings.SplitSeq(s.s, ".") {
		if n == i {
			return tok
		}
		n++
	}
	return ""
}

// Append returns the subject made of the tokens of s followed by tokens,
// checked as [Join] checks them. Appending nothing to a valid subject
// returns it unchanged; on the zero Subject, Append behaves like
// [Join](tokens...).
//
// Every error wraps [ErrInvalidSubject]. It also wraps [ErrInvalidToken],
// naming the bad token, and [ErrTooLong] when the result would be longer
// than [MaxLen].
func (s Subject) Append(tokens ...string) (Subject, error) {
	if len(tokens) == 0 {
		if s.s == "" {
			return Subject{}, fmt.Errorf("%w: no tokens", ErrInvalidSubject)
		}
		return s, nil
	}
	n := len(s.s)
	for i, tok := range tokens {
		if p := tokenProblem(tok); p != "" {
			return Subject{}, fmt.Errorf("%w: %w: %q (token %d): %s", ErrInvalidSubject, ErrInvalidToken, tok, i+1, p)
		}
		if n > 0 {
			n++
		}
		n += len(tok)
	}
	var b strings.Builder
	if n <= MaxLen {
		b.Grow(n)
	}
	b.WriteString(s.s)
	for _, tok := range tokens {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
		if b.Len() > MaxLen {
			break
		}
	}
	if n > MaxLen {
		return Subject{}, tooLong(ErrInvalidSubject, b.String(), n)
	}
	return Subject{b.String()}, nil
}

// Event returns the last token of s, which names the event in the layout
// aggregate.event. It returns "" for the zero Subject.
func (s Subject) Event() string {
	return s.s[strings.LastIndexByte(s.s, '.')+1:]
}

// Aggregate returns all tokens of s but the last, which name the aggregate
// in the layout aggregate.event: the aggregate of users.A.added is users.A.
// It returns the zero Subject when s has fewer than two tokens.
func (s Subject) Aggregate() Subject {
	i := strings.LastIndexByte(s.s, '.')
	if i < 0 {
		return Subject{}
	}
	return Subject{s.s[:i]}
}

// AggregateFilter returns the filter that matches every event of the
// aggregate of s: users.A.> for users.A.added. It returns the zero [Filter]
// when s has no aggregate (see [Subject.Aggregate]).
//
// This is the one canonical filter for an aggregate. Every reader and
// writer of the toolkit uses this exact string, in particular for the
// expected last sequence of an aggregate; see the package documentation.
func (s Subject) AggregateFilter() Filter {
	agg := s.Aggregate()
	if agg.IsZero() {
		return Filter{}
	}
	return Filter{agg.s + ".>"}
}

// Filter returns the literal filter that matches s and nothing else. It
// returns the zero [Filter] for the zero Subject.
func (s Subject) Filter() Filter {
	return Filter{s.s}
}

// MarshalText implements [encoding.TextMarshaler]. It returns the same text
// as [Subject.String]; the zero Subject marshals as empty text.
func (s Subject) MarshalText() ([]byte, error) {
	return []byte(s.s), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler]. Empty text sets s to
// the zero Subject without error; other text is parsed with [Parse], and
// on error s is set to the zero Subject.
func (s *Subject) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*s = Subject{}
		return nil
	}
	var err error
	*s, err = Parse(string(text))
	return err
}

// checkString checks s as a literal subject or, with wild set, as a filter.
// The returned error wraps ErrInvalidSubject or ErrInvalidFilter.
func checkString(s string, wild bool) error {
	kind := ErrInvalidSubject
	if wild {
		kind = ErrInvalidFilter
	}
	if s == "" {
		return fmt.Errorf("%w: %q: empty", kind, s)
	}
	if len(s) > MaxLen {
		return tooLong(kind, s, len(s))
	}
	i := 0
	for tok, rest := range tokensOf(s) {
		i++
		if wild {
			if tok == "*" {
				continue
			}
			if tok == ">" {
				if rest {
					return fmt.Errorf("%w: %q: wildcard '>' (token %d) is not the last token", kind, s, i)
				}
				continue
			}
		}
		if p := tokenProblem(tok); p != "" {
			return fmt.Errorf("%w: %q: %w: %q (token %d): %s", kind, s, ErrInvalidToken, tok, i, p)
		}
	}
	return nil
}

// validSubject reports whether Parse accepts s, without building an error.
func validSubject(s string) bool {
	if s == "" || len(s) > MaxLen {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tokenProblem(tok) != "" {
			return false
		}
	}
	return true
}

// tokensOf yields each token of s and whether more tokens follow it.
func tokensOf(s string) iter.Seq2[string, bool] {
	return func(yield func(string, bool) bool) {
		for {
			tok, rest, more := strings.Cut(s, ".")
			if !yield(tok, more) || !more {
				return
			}
			s = rest
		}
	}
}

// tokenProblem says why tok is not a valid literal token, or returns ""
// when it is one.
func tokenProblem(tok string) string {
	if tok == "" {
		return "empty token"
	}
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c == '.':
			return "contains '.'"
		case c == '*':
			return "contains wildcard '*'"
		case c == '>':
			return "contains wildcard '>'"
		case c == ' ':
			return "contains a space"
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("contains control byte %#02x", c)
		}
	}
	if !utf8.ValidString(tok) {
		return "not valid UTF-8"
	}
	return ""
}

// tooLong returns an error wrapping kind and ErrTooLong for a string of n
// bytes that starts with s. Only the start of s is quoted.
func tooLong(kind error, s string, n int) error {
	const show = 64
	q := strconv.Quote(s)
	if len(s) > show {
		q = strconv.Quote(s[:show]) + "..."
	}
	return fmt.Errorf("%w: %w: %s: %d bytes, more than %d", kind, ErrTooLong, q, n, MaxLen)
}
