package embedded

import "errors"

var (
	// ErrInvalidOption is returned by an option given a bad argument.
	ErrInvalidOption = errors.New("embedded: invalid option")
	// ErrStart is returned when the server does not start.
	ErrStart = errors.New("embedded: server did not start")
)
