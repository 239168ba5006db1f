package conversation

import (
	"errors"
	"fmt"
)

// Errors a client can see carry a stable code; ports map them with errors.Is.
var (
	// ErrNotFound also covers "not a participant", so conversation ids cannot be probed.
	ErrNotFound        = errors.New("conversation not found")
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTooLarge: a message body over MaxBodyBytes (PROTOCOL.md: 413 payload_too_large).
	ErrTooLarge = errors.New("too large")
	// ErrConcurrentUpdate is returned when another writer appended first (aggregate version taken).
	ErrConcurrentUpdate = errors.New("conversation was changed concurrently")
)

// ValidationError explains which input was wrong; it matches ErrInvalidArgument.
type ValidationError struct{ Reason string }

func (e *ValidationError) Error() string        { return e.Reason }
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidArgument }

func invalid(reason string) error { return &ValidationError{Reason: reason} }

// TooLargeError says which input was over its size limit; it matches ErrTooLarge.
type TooLargeError struct{ Reason string }

func (e *TooLargeError) Error() string        { return e.Reason }
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// DuplicateMessageError says the sender already posted this client_msg_id; Original is what was stored.
type DuplicateMessageError struct{ Original Message }

func (e *DuplicateMessageError) Error() string {
	return "message " + e.Original.ClientMsgID + " was already posted"
}

// ErrConflict: the request contradicts what is stored (a client_msg_id reused for another body).
var ErrConflict = errors.New("conflict")

// ErrClientMsgIDReused is a send that repeats a client_msg_id with a different body.
var ErrClientMsgIDReused = fmt.Errorf("%w: client_msg_id was already used for a different body", ErrConflict)
