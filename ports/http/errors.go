package http

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/ports/apierror"
)

// toAPIError maps handler errors, including echo's own (unknown route, bad method), to the API shape.
func toAPIError(err error) *apierror.Error {
	var httpErr *echo.HTTPError
	if errors.As(err, &httpErr) {
		return fromEchoError(httpErr)
	}
	return apierror.From(err)
}

func fromEchoError(e *echo.HTTPError) *apierror.Error {
	msg := http.StatusText(e.Code)
	if s, ok := e.Message.(string); ok {
		msg = s
	}
	switch e.Code {
	case http.StatusNotFound:
		return apierror.New(e.Code, "not_found", msg)
	case http.StatusUnauthorized:
		return apierror.New(e.Code, "unauthenticated", msg)
	case http.StatusRequestEntityTooLarge:
		return apierror.New(e.Code, "payload_too_large", msg)
	case http.StatusTooManyRequests:
		return apierror.New(e.Code, "rate_limited", msg)
	case http.StatusServiceUnavailable:
		return apierror.New(e.Code, "unavailable", msg)
	default:
		return apierror.InvalidArgument(msg)
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
		_ = c.JSON(apiErr.Status, map[string]*apierror.Error{"error": apiErr})
	}
}
