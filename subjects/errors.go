package subjects

import "errors"

// Sentinel errors. Every error returned by this package wraps one or more
// of them together with the quoted input; match them with [errors.Is].
var (
	// ErrInvalidSubject is wrapped by every error of [Parse], [Join],
	// [Subject.Append] and [Subject.UnmarshalText].
	ErrInvalidSubject = errors.New("subjects: invalid subject")

	// ErrInvalidToken is wrapped, next to [ErrInvalidSubject] or
	// [ErrInvalidFilter], when a single token is not a valid literal token:
	// it is empty, is not valid UTF-8, or holds '.', '*', '>', a space or a
	// control byte.
	ErrInvalidToken = errors.New("subjects: invalid token")

	// ErrInvalidFilter is wrapped by every error of [ParseFilter] and
	// [Filter.UnmarshalText].
	ErrInvalidFilter = errors.New("subjects: invalid filter")

	// ErrInvalidEscape is returned by [Unescape] for a token that
	// [Escape] cannot have produced.
	ErrInvalidEscape = errors.New("subjects: invalid escaped token")

	// ErrTooLong is wrapped, next to [ErrInvalidSubject] or
	// [ErrInvalidFilter], when a subject or filter is longer than [MaxLen]
	// bytes.
	ErrTooLong = errors.New("subjects: subject too long")
)
