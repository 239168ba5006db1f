package http

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/auth"
)

// APIError is the one error shape of the HTTP API: {"error":{"code","message"}}.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func newAPIError(status int, code, msg string) *APIError {
	return &APIError{Status: status, Code: code, Message: msg}
}

var (
	errRateLimited  = newAPIError(http.StatusTooManyRequests, "rate_limited", "too many messages; slow down")
	errTooLarge     = newAPIError(http.StatusRequestEntityTooLarge, "payload_too_large", "request body is too large")
	errUnauthorized = newAPIError(http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required")
)

// errorMapping is the one table from domain errors to HTTP; errors.Is sees through wrapping.
var errorMapping = []struct {
	target error
	status int
	code   string
}{
	{conversation.ErrNotFound, http.StatusNotFound, "not_found"},
	{conversation.ErrInvalidArgument, http.StatusBadRequest, "invalid_argument"},
	{conversation.ErrConflict, http.StatusConflict, "conflict"},
	{conversation.ErrConcurrentUpdate, http.StatusConflict, "conflict"},
	{auth.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
}

// toAPIError maps any error to the API shape. What no table names is an infrastructure failure:
// 503 with a generic text (the cause goes to the log, not to the client).
func toAPIError(err error) *APIError {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var httpErr *echo.HTTPError
	if errors.As(err, &httpErr) {
		return fromEchoError(httpErr)
	}
	for _, m := range errorMapping {
		if errors.Is(err, m.target) {
			msg := err.Error()
			if m.target == conversation.ErrNotFound {
				msg = "conversation not found" // the same text whether it is absent or hidden
			}
			return newAPIError(m.status, m.code, msg)
		}
	}
	if errors.Is(err, context.Canceled) {
		return newAPIError(499, "unavailable", "request cancelled")
	}
	return newAPIError(http.StatusServiceUnavailable, "unavailable", "the service is temporarily unavailable; retry")
}

func fromEchoError(e *echo.HTTPError) *APIError {
	msg := http.StatusText(e.Code)
	if s, ok := e.Message.(string); ok {
		msg = s
	}
	switch e.Code {
	case http.StatusNotFound:
		return newAPIError(e.Code, "not_found", msg)
	case http.StatusUnauthorized:
		return newAPIError(e.Code, "unauthenticated", msg)
	case http.StatusRequestEntityTooLarge:
		return newAPIError(e.Code, "payload_too_large", msg)
	case http.StatusTooManyRequests:
		return newAPIError(e.Code, "rate_limited", msg)
	case http.StatusServiceUnavailable:
		return newAPIError(e.Code, "unavailable", msg)
	default:
		return newAPIError(http.StatusBadRequest, "invalid_argument", msg)
	}
}

func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		apiErr := toAPIError(err)
		if apiErr.Status == http.StatusServiceUnavailable {
			log.ErrorContext(c.Request().Context(), "request failed", "method", c.Request().Method,
				"route", c.Path(), "error", err)
		}
		_ = c.JSON(apiErr.Status, map[string]*APIError{"error": apiErr})
	}
}
