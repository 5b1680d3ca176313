package jetstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
)

// ErrStreamBusy is returned, wrapped together with
// [jetsource.ErrUnavailable], by a conditioned append in strict mode
// ([WithStrict]) whose condition still held but which could not find a
// moment when the stream stood still: other appends kept moving the stream
// through every attempt. Nothing was written; retrying later is safe.
var ErrStreamBusy = errors.New("jetstore: stream busy")

// JetStream API error codes that jetstore translates.
const (
	codeWrongLastSequence         = 10071
	codeWrongLastSequenceConstant = 10164
	codeStreamNotMatch            = 10060
	codeMessageTooLarge           = 10054
	codeStreamNotFound            = 10059
	// Codes of a cluster that is electing, placing or catching up.
	codeClusterNoPeers      = 10005
	codeClusterNotAvailable = 10008
	codeClusterNotLeader    = 10009
	codeExpectedNotReady    = 10163
	codeDuplicateInProcess  = 10158
	// Codes of a stream, bucket, account or server that is full.
	codeStoreFailed           = 10077
	codeInsufficientResources = 10023
	codeStorageExceeded       = 10047
	codeMemoryExceeded        = 10028
)

// full reports whether err is the server's refusal of a message because
// the stream (or a bucket, which is a stream) reached its size or message
// limit with the discard-new policy, or the account or server its storage
// limit.
func full(apiErr *jetstream.APIError) bool {
	switch apiErr.ErrorCode {
	case codeInsufficientResources, codeStorageExceeded, codeMemoryExceeded:
		return true
	case codeStoreFailed:
		d := apiErr.Description
		return strings.Contains(d, "maximum bytes exceeded") || strings.Contains(d, "maximum messages exceeded") ||
			strings.Contains(d, "maximum messages per subject exceeded") || strings.Contains(d, "resource limits exceeded")
	}
	return false
}

// mapErr translates errors of nats.go into the sentinel errors of
// jetsource, keeping the original in the chain.
func mapErr(js jetstream.JetStream, err error) error {
	if err == nil {
		return nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		if full(apiErr) {
			if apiErr.ErrorCode == codeInsufficientResources {
				// Also what a cluster answers that cannot place a
				// stream for a moment.
				return fmt.Errorf("%w: %w: the server refuses new messages: %w", jetsource.ErrStorageFull, jetsource.ErrUnavailable, err)
			}
			return fmt.Errorf("%w: the server refuses new messages: %w", jetsource.ErrStorageFull, err)
		}
		switch apiErr.ErrorCode {
		case codeStreamNotMatch:
			return fmt.Errorf("%w: the subject is captured by another stream: %w", jetsource.ErrStreamNotFound, err)
		case codeMessageTooLarge:
			return fmt.Errorf("%w: %w", jetsource.ErrPayloadTooLarge, err)
		case codeStreamNotFound:
			return fmt.Errorf("%w: %w", jetsource.ErrStreamNotFound, err)
		case codeBatchTooLarge:
			return fmt.Errorf("%w: %w", jetsource.ErrBatchTooLarge, err)
		case codeBatchTooManyInFlt:
			return fmt.Errorf("%w: too many transactions in flight, retry: %w", jetsource.ErrUnavailable, err)
		case codeAtomicDisabled:
			return fmt.Errorf("%w: the stream does not allow atomic batches (jetstore.Provision enables them): %w", jetsource.ErrInvalidOption, err)
		case codeClusterNoPeers:
			return fmt.Errorf("%w: the cluster has no suitable peers now: %w", jetsource.ErrUnavailable, err)
		case codeClusterNotAvailable, codeClusterNotLeader:
			return fmt.Errorf("%w: the cluster has no leader now: %w", jetsource.ErrUnavailable, err)
		case codeExpectedNotReady:
			return fmt.Errorf("%w: the stream leader is still catching up: %w", jetsource.ErrUnavailable, err)
		case codeDuplicateInProcess:
			return fmt.Errorf("%w: an append with the same event id is in flight: %w", jetsource.ErrUnavailable, err)
		}
		if apiErr.Code == 503 {
			return fmt.Errorf("%w: %w", jetsource.ErrUnavailable, err)
		}
	}
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("%w: no stream captures the subject: %w", jetsource.ErrStreamNotFound, err)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%w: %w", jetsource.ErrStreamNotFound, err)
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: %w", jetsource.ErrPayloadTooLarge, err)
	case errors.Is(err, nats.ErrPermissionViolation):
		return fmt.Errorf("%w: %w", jetsource.ErrPermissionDenied, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w: no answer before the deadline: %w", jetsource.ErrUnavailable, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return fmt.Errorf("%w: %w", jetsource.ErrUnavailable, err)
	}
	return err
}

// denied tells a publish the server refused for lack of permission from
// one it did not answer: a denied publish is never answered, the server
// reports the violation on the connection instead. before is the
// connection's last error from before the publish; only a new violation
// naming subject counts.
func denied(nc *nats.Conn, err, before error, subject string) error {
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		return err
	}
	last := nc.LastError()
	if last == nil || last == before || !errors.Is(last, nats.ErrPermissionViolation) || !strings.Contains(last.Error(), strconv.Quote(subject)) {
		return err
	}
	return fmt.Errorf("%w: %w (no answer before the deadline)", jetsource.ErrPermissionDenied, last)
}

// conflictCurrent extracts the current sequence from a wrong-last-sequence
// error; ok is false when the error is not one, known is false when it does
// not tell the sequence.
func conflictCurrent(err error) (current uint64, known, ok bool) {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return 0, false, false
	}
	switch apiErr.ErrorCode {
	case codeWrongLastSequence:
		i := strings.LastIndexByte(apiErr.Description, ':')
		if i < 0 {
			return 0, false, true
		}
		n, perr := strconv.ParseUint(strings.TrimSpace(apiErr.Description[i+1:]), 10, 64)
		return n, perr == nil, true
	case codeWrongLastSequenceConstant:
		return 0, false, true
	}
	return 0, false, false
}

// transient reports whether err, as nats.go or the server returned it, is
// a passing state of a server or cluster that is starting, electing a
// leader, placing replicas or catching up: no responder yet, no leader
// yet, no suitable peer yet, an append with the same id or expectation in
// flight. Repeating the request later is safe: nothing was written.
func transient(err error) bool {
	// nats.go reports a JetStream API request nobody answered as
	// ErrJetStreamNotEnabled: on a cluster that is starting, the API may
	// not be served yet.
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case codeClusterNoPeers, codeClusterNotAvailable, codeClusterNotLeader, codeExpectedNotReady, codeDuplicateInProcess:
			return true
		}
	}
	return false
}

// mapErr translates err as [mapErr] does, and names the stream and its
// size limit when the stream is full.
func (s *Store) mapErr(err error) error {
	err = mapErr(s.js, err)
	if !errors.Is(err, jetsource.ErrStorageFull) {
		return err
	}
	s.capMu.RLock()
	limit := s.maxBytes
	s.capMu.RUnlock()
	if limit > 0 {
		return fmt.Errorf("stream %s is full (max_bytes %d; old events are kept, new ones refused: raise the limit or free space): %w", s.stream, limit, err)
	}
	return fmt.Errorf("stream %s cannot store more (the account's or the server's storage limit): %w", s.stream, err)
}
