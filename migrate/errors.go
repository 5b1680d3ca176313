package migrate

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidMapping is a mapping file or value that cannot be used.
	ErrInvalidMapping = errors.New("migrate: invalid mapping")
	// ErrUnknownTable is a mapped table (or CSV file) the source does not
	// have.
	ErrUnknownTable = errors.New("migrate: unknown table")
	// ErrUnknownColumn is a mapped column the table does not have.
	ErrUnknownColumn = errors.New("migrate: unknown column")
	// ErrNullKey is a row whose key column is NULL (or empty in a CSV file).
	ErrNullKey = errors.New("migrate: null key")
	// ErrUnsupportedType is a value that does not map to JSON, such as a
	// BLOB or NaN, or that a transform cannot convert.
	ErrUnsupportedType = errors.New("migrate: value does not map to JSON")
	// ErrSource is a source that failed: it could not be opened, or it
	// dropped while rows were read.
	ErrSource = errors.New("migrate: source failed")
	// ErrBadRows is a run with validation, or [Runner.Validate], that
	// found bad rows: nothing was written. It wraps the first
	// [*RowError] too.
	ErrBadRows = errors.New("migrate: bad rows")
	// ErrInvalidOption is an option with a bad argument.
	ErrInvalidOption = errors.New("migrate: invalid option")
)

// RowError is a row that cannot become an event. It names the table, the
// row's position in the source (1-based, in key order; the line for a
// CSV file) and its key when known, and wraps the cause ([ErrNullKey],
// [ErrUnsupportedType], ...).
type RowError struct {
	Table string
	Row   int64
	Key   string
	Err   error
}

func (e *RowError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("table %s, row %d (%s): %v", e.Table, e.Row, e.Key, e.Err)
	}
	return fmt.Sprintf("table %s, row %d: %v", e.Table, e.Row, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }
