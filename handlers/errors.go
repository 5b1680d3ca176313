package handlers

import (
	"errors"
	"strings"
)

var (
	// ErrRejected is the error of a command its decider refused: a business
	// rule does not hold, or the payload is invalid. The error is a
	// [*RejectedError] that lists the reasons.
	ErrRejected = errors.New("handlers: command rejected")

	// ErrUnknownCommand is returned for a command name that no handler is
	// registered for, or that no worker serves on the bus.
	ErrUnknownCommand = errors.New("handlers: unknown command")

	// ErrInvalidCommand is returned for a malformed command: a bad name or
	// id, a payload that is not JSON or cannot be encoded, or a header that
	// cannot be decoded.
	ErrInvalidCommand = errors.New("handlers: invalid command")

	// ErrCommandFailed is the error of a command that could not be
	// executed (status "error"): the store failed or the handler produced
	// invalid events.
	ErrCommandFailed = errors.New("handlers: command failed")

	// ErrExpired is the error of a command whose sender's deadline
	// ([HeaderDeadline]) passed before it could be executed or its events
	// recorded: nothing was written. The sender gave up waiting, so the
	// result often reaches nobody; sending the command again with the
	// same id is safe.
	ErrExpired = errors.New("handlers: command expired")

	// ErrInvalidOption is returned by an option given a bad argument.
	ErrInvalidOption = errors.New("handlers: invalid option")

	// ErrClosed is returned by a [Server] that was closed.
	ErrClosed = errors.New("handlers: closed")

	// ErrInvalidRules is returned for a rule file that cannot be read or
	// does not follow the format. Each problem is a [*RuleError] naming
	// the file, the line and the field.
	ErrInvalidRules = errors.New("handlers: invalid rules")

	// ErrInvalidExpression is returned for a when, entities or payload
	// expression that does not compile, and for one that fails on an
	// event (then the event is dead-lettered: the failure would repeat).
	ErrInvalidExpression = errors.New("handlers: invalid expression")

	// ErrUnknownReaction is returned for a rule whose go: names no
	// registered [Reaction].
	ErrUnknownReaction = errors.New("handlers: unknown reaction")
)

// RejectedError is the refusal of a command, with the reasons. It matches
// [ErrRejected] with [errors.Is].
type RejectedError struct {
	// Reasons tell why the command was refused, one rule each.
	Reasons []string
}

// Reject returns the error a decider returns to refuse a command, giving
// the reasons (at least one; empty reasons are dropped).
func Reject(reasons ...string) error {
	rs := make([]string, 0, len(reasons))
	for _, r := range reasons {
		if strings.TrimSpace(r) != "" {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		rs = []string{"rejected"}
	}
	return &RejectedError{Reasons: rs}
}

// Error lists the reasons.
func (e *RejectedError) Error() string {
	return ErrRejected.Error() + ": " + strings.Join(e.Reasons, "; ")
}

// Unwrap returns [ErrRejected].
func (e *RejectedError) Unwrap() error { return ErrRejected }
