package http

import (
	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/apierror"
	"github.com/nova-chat/nova/ports/auth"
)

const userKey = "nova.user"

// authenticate requires "Authorization: Bearer <JWT>" and stores the user for the handlers.
func authenticate(a *auth.Authenticator) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, ok := auth.BearerToken(c.Request().Header.Get("Authorization"))
			if !ok {
				return apierror.Unauthenticated
			}
			claims, err := a.Verify(token)
			if err != nil {
				return apierror.Unauthenticated
			}
			c.Set(userKey, claims.User)
			return next(c)
		}
	}
}

func currentUser(c echo.Context) conversation.UserID {
	u, _ := c.Get(userKey).(conversation.UserID)
	return u
}
