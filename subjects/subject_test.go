package subjects_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jetsource/jetsource/subjects"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		errs []error // nil means no error
	}{
		{"OK", "users.A.added", nil},
		{"OKOneToken", "users", nil},
		{"OKDollarPrefix", "$events.A.added", nil},
		{"OKEscapedToken", "users.ann=40example=2Ecom.added", nil},
		{"OKPunctuation", "a-b.c_d.e~f.g$h.i=j.k/l.m:n", nil},
		{"OKNonASCII", "utilisateurs.Zoë.ajouté", nil},
		{"OKTokenWithEquals", "a=b.c", nil},
		{"OKMaxLen", strings.Repeat("a", subjects.MaxLen), nil},
		{"ErrEmpty", "", []error{subjects.ErrInvalidSubject}},
		{"ErrEmptyToken", "users..added", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrLeadingDot", ".users", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrTrailingDot", "users.", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrOnlyDot", ".", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrStarWildcard", "users.*.added", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrGreaterWildcard", "users.>", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrStarInsideToken", "users.a*b", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrGreaterInsideToken", "users.a>", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrSpace", "users.a b", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrTab", "users.a\tb", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrNewline", "users.a\n", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrCarriageReturn", "users\r.a", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrNUL", "users.a\x00", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrDEL", "users.\x7f", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrInvalidUTF8", "users.\xff", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrTruncatedUTF8", "users.Zo\xc3", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrTooLong", strings.Repeat("a", subjects.MaxLen+1), []error{subjects.ErrInvalidSubject, subjects.ErrTooLong}},
		{"ErrTooLongManyTokens", strings.Repeat("a.", subjects.MaxLen/2) + "a", []error{subjects.ErrInvalidSubject, subjects.ErrTooLong}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := subjects.Parse(tt.in)
			if tt.errs == nil {
				if err != nil {
					t.Fatalf("Parse(%q) error: %v", tt.in, err)
				}
				if got.String() != tt.in {
					t.Errorf("Parse(%q).String() = %q, want the input", tt.in, got.String())
				}
				if got.IsZero() {
					t.Errorf("Parse(%q).IsZero() = true", tt.in)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error", tt.in, got)
			}
			for _, want := range tt.errs {
				if !errors.Is(err, want) {
					t.Errorf("Parse(%q) error %v, want errors.Is %v", tt.in, err, want)
				}
			}
			if !got.IsZero() {
				t.Errorf("Parse(%q) returned %q with its error, want zero Subject", tt.in, got)
			}
			if errors.Is(err, subjects.ErrInvalidFilter) {
				t.Errorf("Parse(%q) error %v matches ErrInvalidFilter", tt.in, err)
			}
		})
	}
}

func TestParseErrorQuotesInput(t *testing.T) {
	_, err := subjects.Parse("users.a b.added")
	if err == nil || !strings.Contains(err.Error(), `"users.a b.added"`) || !strings.Contains(err.Error(), `"a b"`) {
		t.Errorf("error %v, want it to quote the input and the bad token", err)
	}
	_, err = subjects.Join("users", "a.b")
	if err == nil || !strings.Contains(err.Error(), `"a.b"`) {
		t.Errorf("error %v, want it to quote the bad token", err)
	}
	long := strings.Repeat("x", 10*subjects.MaxLen)
	_, err = subjects.Parse(long)
	if err == nil {
		t.Fatal("Parse of a too long subject: no error")
	}
	if len(err.Error()) > 300 {
		t.Errorf("error for a too long subject is %d bytes, want a short message", len(err.Error()))
	}
}

func TestMustParse(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		if got := subjects.MustParse("users.A.added").String(); got != "users.A.added" {
			t.Errorf("MustParse = %q", got)
		}
	})
	t.Run("PanicsOnInvalid", func(t *testing.T) {
		defer func() {
			r := recover()
			err, ok := r.(error)
			if !ok || !errors.Is(err, subjects.ErrInvalidSubject) {
				t.Errorf("recovered %v, want an ErrInvalidSubject error", r)
			}
		}()
		subjects.MustParse("users.*")
	})
	t.Run("FilterPanicsOnInvalid", func(t *testing.T) {
		defer func() {
			r := recover()
			err, ok := r.(error)
			if !ok || !errors.Is(err, subjects.ErrInvalidFilter) {
				t.Errorf("recovered %v, want an ErrInvalidFilter error", r)
			}
		}()
		subjects.MustParseFilter("users.>.added")
	})
}

func TestJoin(t *testing.T) {
	tests := []struct {
		name   string
		tokens []string
		want   string
		errs   []error
	}{
		{"OK", []string{"users", "A", "added"}, "users.A.added", nil},
		{"OKOneToken", []string{"users"}, "users", nil},
		{"OKEscapedToken", []string{"users", subjects.Escape("ann@example.com"), "added"}, "users.ann=40example=2Ecom.added", nil},
		{"OKMaxLen", []string{strings.Repeat("a", subjects.MaxLen-2), "b"}, strings.Repeat("a", subjects.MaxLen-2) + ".b", nil},
		{"ErrNoTokens", nil, "", []error{subjects.ErrInvalidSubject}},
		{"ErrEmptyToken", []string{"users", "", "added"}, "", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrDotInToken", []string{"users", "a.b"}, "", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrStarToken", []string{"users", "*"}, "", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrGreaterToken", []string{"users", ">"}, "", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrSpaceInToken", []string{"users", "ann smith"}, "", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrInvalidUTF8", []string{"users", "\xc0"}, "", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrTooLong", []string{strings.Repeat("a", subjects.MaxLen-1), "b"}, "", []error{subjects.ErrInvalidSubject, subjects.ErrTooLong}},
		{"ErrTooLongEscapedID", []string{"users", subjects.Escape(strings.Repeat(".", subjects.MaxLen))}, "", []error{subjects.ErrInvalidSubject, subjects.ErrTooLong}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := subjects.Join(tt.tokens...)
			checkSubjectResult(t, "Join", got, err, tt.want, tt.errs)
		})
	}
}

func TestAppend(t *testing.T) {
	tests := []struct {
		name   string
		base   subjects.Subject
		tokens []string
		want   string
		errs   []error
	}{
		{"OK", subjects.MustParse("users.A"), []string{"added"}, "users.A.added", nil},
		{"OKSeveral", subjects.MustParse("users"), []string{"A", "added"}, "users.A.added", nil},
		{"OKNothingAppended", subjects.MustParse("users.A"), nil, "users.A", nil},
		{"OKZeroBaseActsLikeJoin", subjects.Subject{}, []string{"users", "A"}, "users.A", nil},
		{"ErrZeroBaseNoTokens", subjects.Subject{}, nil, "", []error{subjects.ErrInvalidSubject}},
		{"ErrBadToken", subjects.MustParse("users"), []string{"A", "b c"}, "", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrEmptyToken", subjects.MustParse("users"), []string{""}, "", []error{subjects.ErrInvalidSubject, subjects.ErrInvalidToken}},
		{"ErrTooLong", subjects.MustParse(strings.Repeat("a", subjects.MaxLen-1)), []string{"b"}, "", []error{subjects.ErrInvalidSubject, subjects.ErrTooLong}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.base.Append(tt.tokens...)
			checkSubjectResult(t, "Append", got, err, tt.want, tt.errs)
		})
	}
}

func checkSubjectResult(t *testing.T, op string, got subjects.Subject, err error, want string, errs []error) {
	t.Helper()
	if errs == nil {
		if err != nil {
			t.Fatalf("%s error: %v", op, err)
		}
		if got.String() != want {
			t.Errorf("%s = %q, want %q", op, got, want)
		}
		if p, err := subjects.Parse(got.String()); err != nil || p != got {
			t.Errorf("Parse(%s result %q) = %q, %v; want the same subject", op, got, p, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("%s = %q, want error", op, got)
	}
	for _, w := range errs {
		if !errors.Is(err, w) {
			t.Errorf("%s error %v, want errors.Is %v", op, err, w)
		}
	}
	if !got.IsZero() {
		t.Errorf("%s returned %q with its error, want zero Subject", op, got)
	}
}

func TestSubjectParts(t *testing.T) {
	tests := []struct {
		name      string
		subject   subjects.Subject
		tokens    []string
		event     string
		aggregate string
		aggFilter string
	}{
		{"ThreeTokens", subjects.MustParse("users.A.added"), []string{"users", "A", "added"}, "added", "users.A", "users.A.>"},
		{"TwoTokens", subjects.MustParse("users.added"), []string{"users", "added"}, "added", "users", "users.>"},
		{"OneTokenHasNoAggregate", subjects.MustParse("users"), []string{"users"}, "users", "", ""},
		{"ZeroSubject", subjects.Subject{}, nil, "", "", ""},
		{"DeepAggregate", subjects.MustParse("t.org.users.A.added"), []string{"t", "org", "users", "A", "added"}, "added", "t.org.users.A", "t.org.users.A.>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.subject
			if got := s.Tokens(); !slices.Equal(got, tt.tokens) {
				t.Errorf("Tokens() = %q, want %q", got, tt.tokens)
			}
			if got := s.NumTokens(); got != len(tt.tokens) {
				t.Errorf("NumTokens() = %d, want %d", got, len(tt.tokens))
			}
			for i := -1; i <= len(tt.tokens); i++ {
				want := ""
				if i >= 0 && i < len(tt.tokens) {
					want = tt.tokens[i]
				}
				if got := s.Token(i); got != want {
					t.Errorf("Token(%d) = %q, want %q", i, got, want)
				}
			}
			if got := s.Event(); got != tt.event {
				t.Errorf("Event() = %q, want %q", got, tt.event)
			}
			if got := s.Aggregate().String(); got != tt.aggregate {
				t.Errorf("Aggregate() = %q, want %q", got, tt.aggregate)
			}
			af := s.AggregateFilter()
			if got := af.String(); got != tt.aggFilter {
				t.Errorf("AggregateFilter() = %q, want %q", got, tt.aggFilter)
			}
			if !af.IsZero() {
				if !af.Match(s) {
					t.Errorf("AggregateFilter() %q does not match %q", af, s)
				}
				if p, err := subjects.ParseFilter(af.String()); err != nil || p != af {
					t.Errorf("ParseFilter(%q) = %q, %v; want the same filter", af, p, err)
				}
			}
			f := s.Filter()
			if f.String() != s.String() {
				t.Errorf("Filter() = %q, want %q", f, s)
			}
			if got, ok := f.Subject(); ok != !s.IsZero() || got != s {
				t.Errorf("Filter().Subject() = %q, %v; want %q, %v", got, ok, s, !s.IsZero())
			}
			if !s.IsZero() && (!f.IsLiteral() || !f.Match(s)) {
				t.Errorf("Filter() %q is not a literal filter matching %q", f, s)
			}
		})
	}
}

func TestTokensReturnsNewSlice(t *testing.T) {
	s := subjects.MustParse("users.A.added")
	s.Tokens()[0] = "changed"
	if got := s.Token(0); got != "users" {
		t.Errorf("Token(0) = %q after changing a Tokens slice, want %q", got, "users")
	}
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		literal bool
		errs    []error
	}{
		{"OKLiteral", "users.A.added", true, nil},
		{"OKAll", ">", false, nil},
		{"OKStar", "*", false, nil},
		{"OKAggregate", "users.A.>", false, nil},
		{"OKStarMiddle", "users.*.added", false, nil},
		{"OKStarThenGreater", "*.*.>", false, nil},
		{"OKMaxLen", strings.Repeat("a", subjects.MaxLen-2) + ".>", false, nil},
		{"ErrEmpty", "", false, []error{subjects.ErrInvalidFilter}},
		{"ErrGreaterNotLast", "users.>.added", false, []error{subjects.ErrInvalidFilter}},
		{"ErrTwoGreater", ">.>", false, []error{subjects.ErrInvalidFilter}},
		{"ErrEmptyToken", "users..>", false, []error{subjects.ErrInvalidFilter, subjects.ErrInvalidToken}},
		{"ErrTrailingDot", "users.>.", false, []error{subjects.ErrInvalidFilter}},
		{"ErrStarInsideToken", "users.A*", false, []error{subjects.ErrInvalidFilter, subjects.ErrInvalidToken}},
		{"ErrGreaterInsideToken", "users.>>", false, []error{subjects.ErrInvalidFilter, subjects.ErrInvalidToken}},
		{"ErrDoubleStar", "users.**", false, []error{subjects.ErrInvalidFilter, subjects.ErrInvalidToken}},
		{"ErrSpace", "users. >", false, []error{subjects.ErrInvalidFilter, subjects.ErrInvalidToken}},
		{"ErrControl", "users.\x01", false, []error{subjects.ErrInvalidFilter, subjects.ErrInvalidToken}},
		{"ErrInvalidUTF8", "users.\xfe.>", false, []error{subjects.ErrInvalidFilter, subjects.ErrInvalidToken}},
		{"ErrTooLong", strings.Repeat("a", subjects.MaxLen-1) + ".>", false, []error{subjects.ErrInvalidFilter, subjects.ErrTooLong}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := subjects.ParseFilter(tt.in)
			if tt.errs == nil {
				if err != nil {
					t.Fatalf("ParseFilter(%q) error: %v", tt.in, err)
				}
				if got.String() != tt.in {
					t.Errorf("ParseFilter(%q).String() = %q, want the input", tt.in, got)
				}
				if got.IsLiteral() != tt.literal {
					t.Errorf("ParseFilter(%q).IsLiteral() = %v, want %v", tt.in, got.IsLiteral(), tt.literal)
				}
				if !slices.Equal(got.Tokens(), strings.Split(tt.in, ".")) {
					t.Errorf("ParseFilter(%q).Tokens() = %q", tt.in, got.Tokens())
				}
				s, ok := got.Subject()
				if ok != tt.literal || (ok && s.String() != tt.in) || (!ok && !s.IsZero()) {
					t.Errorf("ParseFilter(%q).Subject() = %q, %v", tt.in, s, ok)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseFilter(%q) = %q, want error", tt.in, got)
			}
			for _, want := range tt.errs {
				if !errors.Is(err, want) {
					t.Errorf("ParseFilter(%q) error %v, want errors.Is %v", tt.in, err, want)
				}
			}
			if errors.Is(err, subjects.ErrInvalidSubject) {
				t.Errorf("ParseFilter(%q) error %v matches ErrInvalidSubject", tt.in, err)
			}
			if !got.IsZero() {
				t.Errorf("ParseFilter(%q) returned %q with its error, want zero Filter", tt.in, got)
			}
		})
	}
}

func TestZeroFilter(t *testing.T) {
	var f subjects.Filter
	if !f.IsZero() || f.IsLiteral() || f.Tokens() != nil || f.String() != "" {
		t.Errorf("zero Filter: IsZero %v, IsLiteral %v, Tokens %q, String %q", f.IsZero(), f.IsLiteral(), f.Tokens(), f)
	}
	if s, ok := f.Subject(); ok || !s.IsZero() {
		t.Errorf("zero Filter Subject() = %q, %v", s, ok)
	}
	if f.Match(subjects.MustParse("a")) || f.MatchString("a") {
		t.Error("zero Filter matches a subject")
	}
	if subjects.All().Match(subjects.Subject{}) || subjects.All().MatchString("") {
		t.Error("All() matches the zero Subject")
	}
	if got := subjects.All().String(); got != ">" {
		t.Errorf("All() = %q, want %q", got, ">")
	}
}

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		name    string
		filter  string
		subject string
		want    bool
	}{
		{"LiteralEqual", "users.A.added", "users.A.added", true},
		{"LiteralOtherToken", "users.A.added", "users.B.added", false},
		{"LiteralPrefix", "users.A", "users.A.added", false},
		{"LiteralLonger", "users.A.added", "users.A", false},
		{"LiteralTokenPrefix", "users.A", "users.AB", false},
		{"StarOneToken", "users.*.added", "users.A.added", true},
		{"StarNotZeroTokens", "users.*", "users", false},
		{"StarNotTwoTokens", "users.*", "users.A.added", false},
		{"StarAlone", "*", "users", true},
		{"GreaterOneToken", "users.>", "users.A", true},
		{"GreaterManyTokens", "users.>", "users.A.B.added", true},
		{"GreaterNotZeroTokens", "users.A.>", "users.A", false},
		{"GreaterOtherPrefix", "users.A.>", "users.AB.added", false},
		{"AllMatchesOneToken", ">", "users", true},
		{"StarThenGreater", "*.A.>", "users.A.added", true},
		{"StarThenGreaterMismatch", "*.A.>", "users.B.added", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := subjects.MustParseFilter(tt.filter)
			if got := f.Match(subjects.MustParse(tt.subject)); got != tt.want {
				t.Errorf("%q.Match(%q) = %v, want %v", tt.filter, tt.subject, got, tt.want)
			}
			if got := f.MatchString(tt.subject); got != tt.want {
				t.Errorf("%q.MatchString(%q) = %v, want %v", tt.filter, tt.subject, got, tt.want)
			}
		})
	}
	t.Run("MatchStringRejectsInvalidSubjects", func(t *testing.T) {
		for _, s := range []string{"", "users.*", "users.>", "users..added", "users.a b", "users.\xff", strings.Repeat("a", subjects.MaxLen+1)} {
			if subjects.All().MatchString(s) {
				t.Errorf("All().MatchString(%q) = true, want false", s)
			}
		}
	})
}

func TestCoversOverlaps(t *testing.T) {
	tests := []struct {
		name     string
		f, g     string
		covers   bool // f covers g
		covered  bool // g covers f
		overlaps bool
	}{
		{"Same", "users.A.>", "users.A.>", true, true, true},
		{"AllCoversAggregate", ">", "users.A.>", true, false, true},
		{"GreaterCoversDeeperGreater", "users.>", "users.A.>", true, false, true},
		{"GreaterCoversStar", "users.>", "users.*.added", true, false, true},
		{"GreaterCoversLiteral", "users.A.>", "users.A.added", true, false, true},
		{"GreaterDoesNotCoverItsPrefix", "users.A.>", "users.A", false, false, false},
		{"StarCoversLiteral", "users.*", "users.A", true, false, true},
		{"StarDoesNotCoverGreater", "users.*", "users.>", false, true, true},
		{"StarDoesNotCoverDeeper", "users.*", "users.A.>", false, false, false},
		{"StarCrossLiteral", "users.*.added", "users.A.*", false, false, true},
		{"StarCrossGreater", "users.*.added", "users.A.>", false, false, true},
		{"DisjointAggregates", "users.A.>", "users.B.>", false, false, false},
		{"DisjointLengths", "users.*", "users.*.*", false, false, false},
		{"GreaterVsStars", "a.>", "*.*.*", false, false, true},
		{"StarGreaterVsShortStar", "a.*.>", "*.b", false, false, false},
		{"StarGreaterCoveredByGreater", "*.>", ">", false, true, true},
		{"LiteralsEqual", "a.b", "a.b", true, true, true},
		{"LiteralsDiffer", "a.b", "a.c", false, false, false},
		{"TokenPrefixIsNotAMatch", "users.A.>", "users.AB.>", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, g := subjects.MustParseFilter(tt.f), subjects.MustParseFilter(tt.g)
			if got := f.Covers(g); got != tt.covers {
				t.Errorf("%q.Covers(%q) = %v, want %v", f, g, got, tt.covers)
			}
			if got := g.Covers(f); got != tt.covered {
				t.Errorf("%q.Covers(%q) = %v, want %v", g, f, got, tt.covered)
			}
			if got := f.Overlaps(g); got != tt.overlaps {
				t.Errorf("%q.Overlaps(%q) = %v, want %v", f, g, got, tt.overlaps)
			}
			if got := g.Overlaps(f); got != tt.overlaps {
				t.Errorf("%q.Overlaps(%q) = %v, want %v", g, f, got, tt.overlaps)
			}
		})
	}
	t.Run("ZeroFilter", func(t *testing.T) {
		var zero subjects.Filter
		all := subjects.All()
		if !all.Covers(zero) || !zero.Covers(zero) {
			t.Error("the zero Filter matches nothing, so every filter must cover it")
		}
		if zero.Covers(all) {
			t.Error("the zero Filter covers All()")
		}
		if zero.Overlaps(all) || all.Overlaps(zero) || zero.Overlaps(zero) {
			t.Error("the zero Filter overlaps a filter")
		}
	})
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   []string // "" stands for the zero Filter
		want []string // nil means a nil result
	}{
		{"Nothing", nil, nil},
		{"OnlyZero", []string{"", ""}, nil},
		{"One", []string{"users.A.>"}, []string{"users.A.>"}},
		{"Sorted", []string{"users.B.>", "orders.>", "users.A.>"}, []string{"orders.>", "users.A.>", "users.B.>"}},
		{"DropsDuplicates", []string{"users.A.>", "users.A.>"}, []string{"users.A.>"}},
		{"DropsZero", []string{"", "users.A.>", ""}, []string{"users.A.>"}},
		{"DropsCovered", []string{"users.A.added", "users.A.>", "users.*.removed", "users.>"}, []string{"users.>"}},
		{"AllCoversEverything", []string{"users.A.>", ">", "orders"}, []string{">"}},
		{"KeepsPartialOverlaps", []string{"users.A.>", "users.*.added"}, []string{"users.*.added", "users.A.>"}},
		{"StarCoversLiteralNotDeeper", []string{"users.A", "users.*", "users.A.added"}, []string{"users.*", "users.A.added"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []subjects.Filter
			for _, s := range tt.in {
				var f subjects.Filter
				if s != "" {
					f = subjects.MustParseFilter(s)
				}
				in = append(in, f)
			}
			got := subjects.Canonical(in...)
			var gotStrings []string
			for _, f := range got {
				gotStrings = append(gotStrings, f.String())
			}
			if !slices.Equal(gotStrings, tt.want) || (tt.want == nil) != (got == nil) {
				t.Errorf("Canonical(%q) = %q, want %q", tt.in, gotStrings, tt.want)
			}
			slices.Reverse(in)
			if again := subjects.Canonical(in...); !slices.Equal(again, got) {
				t.Errorf("Canonical of the reversed input = %q, want %q", again, got)
			}
			if again := subjects.Canonical(got...); !slices.Equal(again, got) {
				t.Errorf("Canonical(Canonical(...)) = %q, want %q", again, got)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"PlainStaysTheSame", "Ann_smith-42", "Ann_smith-42"},
		{"Empty", "", "="},
		{"Dot", "a.b", "a=2Eb"},
		{"Email", "ann@example.com", "ann=40example=2Ecom"},
		{"Space", "a b", "a=20b"},
		{"Wildcards", "*>", "=2A=3E"},
		{"EqualsSign", "=", "=3D"},
		{"EscapeLooking", "=3D", "=3D3D"},
		{"Dollar", "$x", "=24x"},
		{"Tilde", "~", "=7E"},
		{"Control", "\x00\x1f\x7f", "=00=1F=7F"},
		{"NonASCII", "é", "=C3=A9"},
		{"InvalidUTF8", "\xff", "=FF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := subjects.Escape(tt.raw)
			if got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.raw, got, tt.want)
			}
			back, err := subjects.Unescape(got)
			if err != nil || back != tt.raw {
				t.Errorf("Unescape(%q) = %q, %v; want %q", got, back, err, tt.raw)
			}
			if _, err := subjects.Join("users", got, "added"); err != nil {
				t.Errorf("Join with escaped token %q: %v", got, err)
			}
		})
	}
	t.Run("VeryLong", func(t *testing.T) {
		raw := strings.Repeat("a.", 2*subjects.MaxLen)
		got := subjects.Escape(raw)
		if want := strings.Repeat("a=2E", 2*subjects.MaxLen); got != want {
			t.Errorf("Escape of a long id = %.20q..., want %.20q...", got, want)
		}
		if _, err := subjects.Join("users", got); !errors.Is(err, subjects.ErrTooLong) {
			t.Errorf("Join with a too long escaped id: error %v, want ErrTooLong", err)
		}
	})
}

func TestUnescape(t *testing.T) {
	tests := []struct {
		name string
		tok  string
		want string
		err  error
	}{
		{"OKPlain", "abc_XYZ-09", "abc_XYZ-09", nil},
		{"OKEmptyString", "=", "", nil},
		{"OKEscapes", "a=2Eb=20c", "a.b c", nil},
		{"OKEquals", "=3D", "=", nil},
		{"OKHighByte", "=FF", "\xff", nil},
		{"ErrEmpty", "", "", subjects.ErrInvalidEscape},
		{"ErrLowercaseHex", "a=2eb", "", subjects.ErrInvalidEscape},
		{"ErrNotHex", "=G0", "", subjects.ErrInvalidEscape},
		{"ErrTruncatedOneDigit", "a=2", "", subjects.ErrInvalidEscape},
		{"ErrTruncatedNoDigit", "a=", "", subjects.ErrInvalidEscape},
		{"ErrDoubleEquals", "==", "", subjects.ErrInvalidEscape},
		{"ErrEmptyMarkerWithMore", "=a", "", subjects.ErrInvalidEscape},
		{"ErrNeedlessEscapeLetter", "=41", "", subjects.ErrInvalidEscape},
		{"ErrNeedlessEscapeDigit", "=30", "", subjects.ErrInvalidEscape},
		{"ErrNeedlessEscapeUnderscore", "=5F", "", subjects.ErrInvalidEscape},
		{"ErrNeedlessEscapeDash", "=2D", "", subjects.ErrInvalidEscape},
		{"ErrUnescapedDot", "a.b", "", subjects.ErrInvalidEscape},
		{"ErrUnescapedSpace", "a b", "", subjects.ErrInvalidEscape},
		{"ErrUnescapedDollar", "$a=2E", "", subjects.ErrInvalidEscape},
		{"ErrUnescapedNonASCII", "é", "", subjects.ErrInvalidEscape},
		{"ErrUnescapedTilde", "a~", "", subjects.ErrInvalidEscape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := subjects.Unescape(tt.tok)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("Unescape(%q) error: %v", tt.tok, err)
				}
				if got != tt.want {
					t.Errorf("Unescape(%q) = %q, want %q", tt.tok, got, tt.want)
				}
				if back := subjects.Escape(got); back != tt.tok {
					t.Errorf("Escape(Unescape(%q)) = %q, want the input", tt.tok, back)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("Unescape(%q) = %q, %v; want errors.Is %v", tt.tok, got, err, tt.err)
			}
		})
	}
}

// event is a record that carries a subject and a filter through JSON.
type event struct {
	Subject subjects.Subject `json:"subject"`
	Filter  subjects.Filter  `json:"filter"`
}

func TestText(t *testing.T) {
	t.Run("JSONRoundTrip", func(t *testing.T) {
		in := event{subjects.MustParse("users.A.added"), subjects.MustParseFilter("users.*.>")}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"subject":"users.A.added","filter":"users.*.\u003e"}`; string(b) != want { // encoding/json escapes '>'
			t.Errorf("json.Marshal = %s, want %s", b, want)
		}
		var out event
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if out != in {
			t.Errorf("round trip = %+v, want %+v", out, in)
		}
	})
	t.Run("ZeroRoundTrip", func(t *testing.T) {
		b, err := json.Marshal(event{})
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"subject":"","filter":""}`; string(b) != want {
			t.Errorf("json.Marshal = %s, want %s", b, want)
		}
		out := event{subjects.MustParse("x"), subjects.All()}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if out != (event{}) {
			t.Errorf("unmarshal of empty text = %+v, want zero values", out)
		}
	})
	t.Run("ErrInvalidSubject", func(t *testing.T) {
		s := subjects.MustParse("x")
		err := s.UnmarshalText([]byte("users.*"))
		if !errors.Is(err, subjects.ErrInvalidSubject) {
			t.Errorf("UnmarshalText error %v, want ErrInvalidSubject", err)
		}
		if !s.IsZero() {
			t.Errorf("UnmarshalText left %q after an error, want zero Subject", s)
		}
	})
	t.Run("ErrInvalidFilter", func(t *testing.T) {
		f := subjects.All()
		err := f.UnmarshalText([]byte("users.>.x"))
		if !errors.Is(err, subjects.ErrInvalidFilter) {
			t.Errorf("UnmarshalText error %v, want ErrInvalidFilter", err)
		}
		if !f.IsZero() {
			t.Errorf("UnmarshalText left %q after an error, want zero Filter", f)
		}
	})
}

func TestComparable(t *testing.T) {
	seen := map[subjects.Subject]int{}
	seen[subjects.MustParse("users.A.added")]++
	s, _ := subjects.Join("users", "A", "added")
	seen[s]++
	if len(seen) != 1 || seen[s] != 2 {
		t.Errorf("equal subjects are different map keys: %v", seen)
	}
	a := subjects.MustParse("users.A.added").AggregateFilter()
	b := subjects.MustParse("users.A.removed").AggregateFilter()
	if a != b || a != subjects.MustParseFilter("users.A.>") {
		t.Errorf("AggregateFilter of one aggregate differs: %q, %q", a, b)
	}
}
