package publisher

import "errors"

var (
	// ErrAggregateFailed is the error of an append that was not stored
	// because an earlier append to the same aggregate failed. It wraps
	// that earlier error too.
	ErrAggregateFailed = errors.New("publisher: an earlier append to the aggregate failed")

	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("publisher: closed")

	// ErrInvalidOption is returned for a bad option.
	ErrInvalidOption = errors.New("publisher: invalid option")
)
