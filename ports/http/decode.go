package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/ports/apierror"
)

// maxRequestBody leaves room around a 64 KiB message body for the rest of the request.
const maxRequestBody = 96 << 10

// decodeJSON reads a JSON object strictly: unknown fields, trailing data and oversized bodies are errors.
func decodeJSON(c echo.Context, dst any) error {
	r := c.Request()
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxRequestBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return apierror.TooLarge
	}
	if err != nil {
		return apierror.InvalidArgument("could not read request body")
	}
	return decodeStrict(body, dst)
}

func decodeStrict(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return apierror.InvalidArgument(fmt.Sprintf("invalid JSON body: %v", err))
	}
	// More() misses a stray '}' or ']'; only a clean end of input is accepted.
	if _, err := dec.Token(); err != io.EOF {
		return apierror.InvalidArgument("invalid JSON body: trailing data")
	}
	return nil
}
