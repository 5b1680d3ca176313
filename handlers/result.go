package handlers

import (
	"errors"
	"fmt"

	"github.com/jetsource/jetsource"
)

// Status is the outcome of a command.
type Status string

// The statuses of a [Result].
const (
	// StatusAccepted: the command's events are stored (or it needed
	// none). Sequences lists where.
	StatusAccepted Status = "accepted"
	// StatusRejected: the command was refused; Reasons tells why.
	// Nothing was written.
	StatusRejected Status = "rejected"
	// StatusConflict: the events the command decided on kept changing
	// and every attempt lost the race. Nothing was written.
	StatusConflict Status = "conflict"
	// StatusError: the command could not be executed. Nothing was written
	// unless the error came after the store took the events (a lost
	// acknowledgement); sending the command again with the same id is safe.
	StatusError Status = "error"
)

// Result is the envelope every command answers with. Commands return no
// payload: only the status, where their events were stored, or why they
// were not.
type Result struct {
	// Status is the outcome.
	Status Status `json:"status"`
	// Command is the command's name.
	Command string `json:"command,omitempty"`
	// ID is the command's id: the idempotency key, and the causation id
	// of its events.
	ID string `json:"id,omitempty"`
	// Sequences are the stream sequences of the events, in the order the
	// decider returned them (accepted only).
	Sequences []uint64 `json:"sequences,omitempty"`
	// Duplicate is true when the command had been executed before (the
	// same id): nothing new was written and Sequences are the original's.
	Duplicate bool `json:"duplicate,omitempty"`
	// Reasons tell why the command was rejected.
	Reasons []string `json:"reasons,omitempty"`
	// Error describes a conflict or an error.
	Error string `json:"error,omitempty"`
	// Conflict describes the last conflict when the attempts ran out.
	Conflict *Conflict `json:"conflict,omitempty"`
	// Attempts is how many times the command was decided: 1 without
	// conflicts.
	Attempts int `json:"attempts,omitempty"`
}

// Conflict describes a failed consistency condition.
type Conflict struct {
	// Filter is the filter an event was stored on after the read.
	Filter string `json:"filter"`
	// Position is the read position of the last attempt.
	Position uint64 `json:"position"`
	// Current is the sequence of the last event matching Filter, when
	// known.
	Current uint64 `json:"current,omitempty"`
}

// Err returns nil for an accepted command, and otherwise an error
// matching the status: [*RejectedError] ([ErrRejected]) for a rejection,
// [jetsource.ErrConflict] for a conflict, [ErrCommandFailed] for an error.
func (r Result) Err() error {
	switch r.Status {
	case StatusAccepted:
		return nil
	case StatusRejected:
		return &RejectedError{Reasons: r.Reasons}
	case StatusConflict:
		return fmt.Errorf("%w: command %s: %s", jetsource.ErrConflict, r.Command, r.Error)
	default:
		return fmt.Errorf("%w: command %s: %s", ErrCommandFailed, r.Command, r.Error)
	}
}

func rejected(cmd Command, err error) Result {
	var re *RejectedError
	reasons := []string{err.Error()}
	if errors.As(err, &re) {
		reasons = re.Reasons
	}
	return Result{Status: StatusRejected, Command: cmd.Name, ID: cmd.ID, Reasons: reasons}
}

func failed(cmd Command, err error) Result {
	return Result{Status: StatusError, Command: cmd.Name, ID: cmd.ID, Error: err.Error()}
}
