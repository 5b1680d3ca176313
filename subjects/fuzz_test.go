package subjects_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetsource/jetsource/subjects"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		"users.A.added",                   // aggregate and event
		"users",                           // one token, no aggregate
		"$events.tenant-1.order_7.placed", // allowed punctuation
		"users.ann=40example=2Ecom.added", // escaped identifier
		"utilisateurs.Zoë.ajouté",         // non-ASCII letters
		"users.*.added",                   // wildcard: filter only
		"users.A.>",                       // aggregate filter
		">",                               // all
		"users.>.added",                   // '>' not last
		"users.a*b.c>d",                   // wildcard bytes inside tokens
		"",                                // empty
		".",                               // two empty tokens
		"users..added",                    // empty token
		"users.",                          // trailing dot
		"users.a b",                       // space
		"users.a\tb\r\n",                  // other whitespace
		"users.\x00",                      // NUL
		"users.\x7f",                      // DEL
		"users.\xff\xfe",                  // invalid UTF-8
		"users.\u00a0.\u2028",             // Unicode spaces are allowed
		strings.Repeat("a.", subjects.MaxLen/2) + "b", // just over MaxLen
		strings.Repeat("x", subjects.MaxLen),          // exactly MaxLen
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkParse(t, in)
		checkParseFilter(t, in)
	})
}

func checkParse(t *testing.T, in string) {
	s, err := subjects.Parse(in)
	if want := refValid(in, false); (err == nil) != want {
		t.Fatalf("Parse(%q) error %v, want valid %v", in, err, want)
	}
	if err != nil {
		if !errors.Is(err, subjects.ErrInvalidSubject) {
			t.Fatalf("Parse(%q) error %v does not match ErrInvalidSubject", in, err)
		}
		if len(in) > subjects.MaxLen && !errors.Is(err, subjects.ErrTooLong) {
			t.Fatalf("Parse of %d bytes: error %v does not match ErrTooLong", len(in), err)
		}
		if !s.IsZero() {
			t.Fatalf("Parse(%q) returned %q with its error", in, s)
		}
		return
	}
	if s.String() != in {
		t.Fatalf("Parse(%q).String() = %q", in, s)
	}
	if s2, err := subjects.Parse(s.String()); err != nil || s2 != s {
		t.Fatalf("Parse(Parse(%q).String()) = %q, %v", in, s2, err)
	}
	text, err := s.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText(%q): %v", s, err)
	}
	var s3 subjects.Subject
	if err := s3.UnmarshalText(text); err != nil || s3 != s {
		t.Fatalf("UnmarshalText(MarshalText(%q)) = %q, %v", s, s3, err)
	}
	if !server.IsValidPublishSubject(in) || !server.IsValidLiteralSubject(in) {
		t.Fatalf("Parse accepts %q, which nats-server rejects as a publish subject", in)
	}
	toks := s.Tokens()
	if s.NumTokens() != len(toks) || strings.Join(toks, ".") != in {
		t.Fatalf("Tokens(%q) = %q, NumTokens %d", in, toks, s.NumTokens())
	}
	if j, err := subjects.Join(toks...); err != nil || j != s {
		t.Fatalf("Join(Tokens(%q)...) = %q, %v", in, j, err)
	}
	if s.Event() != toks[len(toks)-1] {
		t.Fatalf("Event(%q) = %q", in, s.Event())
	}
	if agg := s.Aggregate(); len(toks) >= 2 {
		if back, err := agg.Append(s.Event()); err != nil || back != s {
			t.Fatalf("Aggregate(%q).Append(Event()) = %q, %v", in, back, err)
		}
		af := s.AggregateFilter()
		if p, err := subjects.ParseFilter(af.String()); err != nil || p != af || !af.Match(s) {
			t.Fatalf("AggregateFilter(%q) = %q: ParseFilter %v, matches %v", in, af, err, af.Match(s))
		}
	} else if !agg.IsZero() || !s.AggregateFilter().IsZero() {
		t.Fatalf("one-token %q has aggregate %q, filter %q", in, agg, s.AggregateFilter())
	}
	if sf, ok := s.Filter().Subject(); !ok || sf != s || !s.Filter().Match(s) {
		t.Fatalf("Filter(%q).Subject() = %q, %v", in, sf, ok)
	}
}

func checkParseFilter(t *testing.T, in string) {
	f, err := subjects.ParseFilter(in)
	if want := refValid(in, true); (err == nil) != want {
		t.Fatalf("ParseFilter(%q) error %v, want valid %v", in, err, want)
	}
	if err != nil {
		if !errors.Is(err, subjects.ErrInvalidFilter) {
			t.Fatalf("ParseFilter(%q) error %v does not match ErrInvalidFilter", in, err)
		}
		if !f.IsZero() {
			t.Fatalf("ParseFilter(%q) returned %q with its error", in, f)
		}
		return
	}
	if f2, err := subjects.ParseFilter(f.String()); err != nil || f2 != f || f.String() != in {
		t.Fatalf("ParseFilter(ParseFilter(%q).String()) = %q, %v", in, f2, err)
	}
	text, err := f.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText(%q): %v", f, err)
	}
	var f3 subjects.Filter
	if err := f3.UnmarshalText(text); err != nil || f3 != f {
		t.Fatalf("UnmarshalText(MarshalText(%q)) = %q, %v", f, f3, err)
	}
	if !server.IsValidSubject(in) {
		t.Fatalf("ParseFilter accepts %q, which nats-server rejects", in)
	}
	_, perr := subjects.Parse(in)
	if f.IsLiteral() != (perr == nil) {
		t.Fatalf("ParseFilter(%q).IsLiteral() = %v, but Parse error is %v", in, f.IsLiteral(), perr)
	}
	if strings.Join(f.Tokens(), ".") != in {
		t.Fatalf("Tokens(%q) = %q", in, f.Tokens())
	}
}

// refValid is a plain second reading of the rules for subjects and, with
// wild set, filters.
func refValid(s string, wild bool) bool {
	if s == "" || len(s) > subjects.MaxLen {
		return false
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		if wild && (tok == "*" || tok == ">" && i == len(toks)-1) {
			continue
		}
		if tok == "" || !utf8.ValidString(tok) || strings.ContainsAny(tok, ".*> \x7f") {
			return false
		}
		for _, c := range []byte(tok) {
			if c < 0x20 {
				return false
			}
		}
	}
	return true
}

func FuzzEscape(f *testing.F) {
	seeds := []string{
		"",                        // empty: becomes "="
		"=",                       // the escape byte itself
		"=3D",                     // looks escaped already
		"plain_Token-42",          // nothing to escape
		"ann@example.com",         // email with '@' and '.'
		"a b\tc\nd",               // whitespace
		"*",                       // wildcard
		">",                       // wildcard
		"users.*.>",               // a whole filter
		"Zoë",                     // non-ASCII
		"\xff\xfe\x00",            // invalid UTF-8 and NUL
		"=2e",                     // lower-case hex: not a valid escaped token
		"=41",                     // needless escape: not a valid escaped token
		"a=",                      // cut short
		"$~",                      // allowed in tokens, but escaped
		strings.Repeat("é", 2000), // escapes to more than MaxLen
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		e := subjects.Escape(raw)
		if back, err := subjects.Unescape(e); err != nil || back != raw {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", raw, back, err)
		}
		if !server.IsValidLiteralSubject(e) || !server.IsValidPublishSubject(e) {
			t.Fatalf("Escape(%q) = %q, which nats-server rejects", raw, e)
		}
		s, err := subjects.Parse(e)
		switch {
		case len(e) > subjects.MaxLen:
			if !errors.Is(err, subjects.ErrTooLong) {
				t.Fatalf("Parse of a %d-byte escaped token: error %v, want ErrTooLong", len(e), err)
			}
		case err != nil:
			t.Fatalf("Parse(Escape(%q)) = %v", raw, err)
		case s.NumTokens() != 1:
			t.Fatalf("Escape(%q) = %q has %d tokens", raw, e, s.NumTokens())
		}

		// Read the input as an escaped token as well.
		u, err := subjects.Unescape(raw)
		if err != nil {
			if !errors.Is(err, subjects.ErrInvalidEscape) {
				t.Fatalf("Unescape(%q) error %v does not match ErrInvalidEscape", raw, err)
			}
			return
		}
		if back := subjects.Escape(u); back != raw {
			t.Fatalf("Escape(Unescape(%q)) = %q", raw, back)
		}
	})
}

func FuzzMatch(f *testing.F) {
	seeds := [][3]string{
		{"users.A.added", "users.A.>", "users.*.added"}, // both match, partial overlap
		{"users.A.added", "users.A.added", ">"},         // literal filter and all
		{"users.A", "users.A.>", "users.*"},             // '>' needs one more token
		{"users.A.added", "users.*", "users.>"},         // '*' is exactly one token
		{"users.AB.added", "users.A.>", "users.AB.>"},   // token prefix is no match
		{"a.b.c", "a.>", "*.*.*"},                       // '>' against stars
		{"a.b", "a.*.>", "*.b"},                         // lengths rule out overlap
		{"a", "*.>", ">"},                               // '>' alone matches one token
		{"x", "*", "x"},                                 // one token each
		{"users.A.added", "users.>.added", "users..>"},  // invalid filters
		{"users.*.added", "users.*.added", "users.A.>"}, // invalid subject
		{"Zoë.é", "Zoë.*", "*.é"},                       // non-ASCII tokens
		{"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.0.1.2.3.4.5.6", "a.>", "*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*"}, // more than 32 tokens
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, subject, fs, gs string) {
		s, serr := subjects.Parse(subject)
		fl, ferr := subjects.ParseFilter(fs)
		gl, gerr := subjects.ParseFilter(gs)
		for _, c := range []struct {
			f   subjects.Filter
			err error
		}{{fl, ferr}, {gl, gerr}} {
			if c.err != nil {
				continue
			}
			if got := c.f.MatchString(subject); got != (serr == nil && c.f.Match(s)) {
				t.Fatalf("%q.MatchString(%q) = %v, Match of the parsed subject disagrees", c.f, subject, got)
			}
			if serr == nil {
				if got, want := c.f.Match(s), server.SubjectMatchesFilter(subject, c.f.String()); got != want {
					t.Fatalf("%q.Match(%q) = %v, nats-server says %v", c.f, s, got, want)
				}
			}
		}
		if ferr != nil || gerr != nil {
			return
		}

		if got, want := fl.Overlaps(gl), server.SubjectsCollide(fs, gs); got != want {
			t.Fatalf("%q.Overlaps(%q) = %v, nats-server SubjectsCollide says %v", fl, gl, got, want)
		}
		if fl.Overlaps(gl) != gl.Overlaps(fl) {
			t.Fatalf("Overlaps of %q and %q is not symmetric", fl, gl)
		}
		w, ok := overlapWitness(fl.Tokens(), gl.Tokens())
		if ok != fl.Overlaps(gl) {
			t.Fatalf("%q.Overlaps(%q) = %v, but a common subject exists: %v (%q)", fl, gl, fl.Overlaps(gl), ok, w)
		}
		if ok && (!fl.MatchString(w) || !gl.MatchString(w)) {
			t.Fatalf("common subject %q of %q and %q: matches %v, %v", w, fl, gl, fl.MatchString(w), gl.MatchString(w))
		}

		if got, want := fl.Covers(gl), server.SubjectMatchesFilter(gs, fs); got != want {
			t.Fatalf("%q.Covers(%q) = %v, nats-server subset match says %v", fl, gl, got, want)
		}
		gw := strings.Join(literalize(gl.Tokens()), ".")
		if !gl.MatchString(gw) {
			t.Fatalf("%q does not match its own instance %q", gl, gw)
		}
		if fl.Covers(gl) {
			if !fl.Overlaps(gl) {
				t.Fatalf("%q covers %q but does not overlap it", fl, gl)
			}
			if !fl.MatchString(gw) {
				t.Fatalf("%q covers %q but does not match %q", fl, gl, gw)
			}
			if serr == nil && gl.Match(s) && !fl.Match(s) {
				t.Fatalf("%q covers %q but does not match %q", fl, gl, s)
			}
			if gl.Covers(fl) && fl != gl {
				t.Fatalf("%q and %q cover each other", fl, gl)
			}
		}
		if serr == nil && fl.Match(s) && gl.Match(s) && !fl.Overlaps(gl) {
			t.Fatalf("%q and %q both match %q but do not overlap", fl, gl, s)
		}

		canon := subjects.Canonical(gl, fl, gl)
		if !slices.IsSortedFunc(canon, func(a, b subjects.Filter) int { return strings.Compare(a.String(), b.String()) }) {
			t.Fatalf("Canonical(%q, %q) = %q is not sorted", fl, gl, canon)
		}
		if again := subjects.Canonical(canon...); !slices.Equal(again, canon) {
			t.Fatalf("Canonical(%q) = %q, want it unchanged", canon, again)
		}
		for _, cand := range []string{subject, w, gw, strings.Join(literalize(fl.Tokens()), ".")} {
			want := fl.MatchString(cand) || gl.MatchString(cand)
			got := slices.ContainsFunc(canon, func(c subjects.Filter) bool { return c.MatchString(cand) })
			if got != want {
				t.Fatalf("Canonical(%q, %q) = %q matches %q: %v, the input filters: %v", fl, gl, canon, cand, got, want)
			}
		}
	})
}

// literalize replaces each wildcard token with "x", giving a subject that
// the filter made of toks matches.
func literalize(toks []string) []string {
	out := slices.Clone(toks)
	for i, tok := range out {
		if tok == "*" || tok == ">" {
			out[i] = "x"
		}
	}
	return out
}

// overlapWitness builds a subject that both filters match, token by token,
// and reports false when there is none.
func overlapWitness(f, g []string) (string, bool) {
	var out []string
	for i := 0; ; i++ {
		if i == len(f) || i == len(g) {
			return strings.Join(out, "."), i == len(f) && i == len(g)
		}
		ft, gt := f[i], g[i]
		switch {
		case ft == ">":
			return strings.Join(append(out, literalize(g[i:])...), "."), true
		case gt == ">":
			return strings.Join(append(out, literalize(f[i:])...), "."), true
		case ft == "*" && gt == "*":
			out = append(out, "x")
		case ft == "*":
			out = append(out, gt)
		case gt == "*" || ft == gt:
			out = append(out, ft)
		default:
			return "", false
		}
	}
}
