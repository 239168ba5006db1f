package http

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/internal/jsonenc"
)

// jsonSerializer is Echo's default serializer without HTML escaping: a message body full of
// '<' is answered as sent, not six times larger (see internal/jsonenc).
type jsonSerializer struct{}

func (jsonSerializer) Serialize(c echo.Context, i any, _ string) error {
	return jsonenc.Encode(c.Response(), i)
}

func (jsonSerializer) Deserialize(c echo.Context, i any) error {
	if err := json.NewDecoder(c.Request().Body).Decode(i); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error()).SetInternal(err)
	}
	return nil
}
