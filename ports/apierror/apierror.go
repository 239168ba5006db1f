// Package apierror is the one table from application errors to the client-visible codes,
// shared by the HTTP and WebSocket ports (PROTOCOL.md section 3).
package apierror

import (
	"context"
	"errors"
	"net/http"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/auth"
)

// Error is a client-visible error: an HTTP status, a stable code and a human message.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func New(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

var (
	RateLimited     = New(http.StatusTooManyRequests, "rate_limited", "too many messages; slow down")
	TooLarge        = New(http.StatusRequestEntityTooLarge, "payload_too_large", "request body is too large")
	Unauthenticated = New(http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required")
	NotFound        = New(http.StatusNotFound, "not_found", "conversation not found")
)

func InvalidArgument(msg string) *Error { return New(http.StatusBadRequest, "invalid_argument", msg) }

var mapping = []struct {
	target error
	status int
	code   string
}{
	{conversation.ErrNotFound, http.StatusNotFound, "not_found"},
	{conversation.ErrInvalidArgument, http.StatusBadRequest, "invalid_argument"},
	{conversation.ErrTooLarge, http.StatusRequestEntityTooLarge, "payload_too_large"},
	{conversation.ErrConflict, http.StatusConflict, "conflict"},
	// Retries ran out against concurrent writers: the client did nothing wrong and may retry.
	{conversation.ErrConcurrentUpdate, http.StatusServiceUnavailable, "unavailable"},
	{auth.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
}

// From maps any error; errors.Is sees through wrapping. What the table does not name is an
// infrastructure failure: 503 with a generic text (the cause belongs in the log, not the answer).
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range mapping {
		if errors.Is(err, m.target) {
			if m.target == conversation.ErrNotFound {
				return NotFound // the same text whether the conversation is absent or hidden
			}
			return New(m.status, m.code, err.Error())
		}
	}
	if errors.Is(err, context.Canceled) {
		return New(499, "unavailable", "request cancelled")
	}
	return New(http.StatusServiceUnavailable, "unavailable", "the service is temporarily unavailable; retry")
}
