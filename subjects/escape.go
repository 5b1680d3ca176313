package subjects

import (
	"fmt"
	"strings"
)

// Escape turns any string into one valid literal token, so that an
// identifier from the outside world (an email address, a path, a name with
// spaces or dots) can be used as a token with [Join] or [Subject.Append].
//
// The bytes A-Z, a-z, 0-9, '_' and '-' stay as they are. Every other byte,
// '=' included, becomes '=' followed by two upper-case hex digits, so
// "a.b c" becomes "a=2Eb=20c". The empty string becomes "=". Escape works
// on bytes, so it accepts non-UTF-8 input too, and it never fails; note
// that the result can be up to three times as long as raw, and that
// [Parse], [Join] and [Subject.Append] return [ErrTooLong] for a subject
// longer than [MaxLen].
//
// [Unescape] reverses Escape.
func Escape(raw string) string {
	if raw == "" {
		return "="
	}
	n := 0
	for i := 0; i < len(raw); i++ {
		if !plain(raw[i]) {
			n++
		}
	}
	if n == 0 {
		return raw
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(raw)+2*n)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if plain(c) {
			b = append(b, c)
		} else {
			b = append(b, '=', hex[c>>4], hex[c&0xF])
		}
	}
	return string(b)
}

// Unescape returns the string that [Escape] turned into tok.
//
// Unescape is strict: it accepts only what Escape produces, so that every
// string has exactly one escaped form. It returns an error wrapping
// [ErrInvalidEscape] for an empty tok, a byte other than A-Z, a-z, 0-9,
// '_', '-' and the '=' of an escape, an escape cut short, an escape with a
// digit other than 0-9 and A-F (lower case included), or an escape of a
// byte that is never escaped. Hence Escape(Unescape(tok)) == tok whenever
// Unescape accepts tok, and Unescape(Escape(s)) == s for every s.
func Unescape(tok string) (string, error) {
	if tok == "=" {
		return "", nil
	}
	if tok == "" {
		return "", fmt.Errorf("%w: %q: empty", ErrInvalidEscape, tok)
	}
	if strings.IndexByte(tok, '=') < 0 {
		for i := 0; i < len(tok); i++ {
			if !plain(tok[i]) {
				return "", fmt.Errorf("%w: %q: byte %q at offset %d is not escaped", ErrInvalidEscape, tok, tok[i], i)
			}
		}
		return tok, nil
	}
	b := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); {
		c := tok[i]
		switch {
		case plain(c):
			b = append(b, c)
			i++
		case c == '=':
			if i+2 >= len(tok) {
				return "", fmt.Errorf("%w: %q: escape at offset %d is cut short", ErrInvalidEscape, tok, i)
			}
			hi, ok1 := unhex(tok[i+1])
			lo, ok2 := unhex(tok[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("%w: %q: escape %q at offset %d is not '=' and two upper-case hex digits", ErrInvalidEscape, tok, tok[i:i+3], i)
			}
			v := hi<<4 | lo
			if plain(v) {
				return "", fmt.Errorf("%w: %q: escape %q at offset %d stands for %q, which is never escaped", ErrInvalidEscape, tok, tok[i:i+3], i, v)
			}
			b = append(b, v)
			i += 3
		default:
			return "", fmt.Errorf("%w: %q: byte %q at offset %d is not escaped", ErrInvalidEscape, tok, c, i)
		}
	}
	return string(b), nil
}

// plain reports whether Escape keeps c as it is.
func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// unhex returns the value of an upper-case hex digit.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
