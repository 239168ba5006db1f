// Package demo serves the demo chat page (NOVA_DEMO=true only): embedded assets built on the
// TypeScript client, and a development token endpoint that signs a token for any test user
// name. Never turn it on in production: anyone could act as anyone.
package demo

import (
	"embed"
	"io/fs"
	"net/http"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/apierror"
	"github.com/nova-chat/nova/ports/auth"
)

//go:embed assets
var assets embed.FS

// Enabled is NOVA_DEMO.
type Enabled bool

// Page registers /demo/ and POST /demo/token on the public router.
type Page struct {
	enabled Enabled
	authn   *auth.Authenticator
}

func New(enabled Enabled, authn *auth.Authenticator) *Page {
	if authn == nil {
		panic("demo.New: nil authenticator")
	}
	return &Page{enabled: enabled, authn: authn}
}

var userName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// namespace makes a test user's id from its name, the same on every instance and run.
var namespace = uuid.MustParse("6f1b8a4e-3c2d-4e5f-9a7b-1c2d3e4f5a6b")

// Register adds the routes, or nothing when the demo is off.
func (p *Page) Register(e *echo.Echo) {
	if !p.enabled {
		return
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil { // the embedded folder is fixed at build time: this is a programming error
		panic("demo: " + err.Error())
	}
	e.GET("/demo", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/demo/") })
	e.GET("/demo/*", echo.WrapHandler(http.StripPrefix("/demo/", http.FileServer(http.FS(sub)))))
	e.POST("/demo/token", p.token)
}

// token answers {"user_id","token"} for a test user name (?user=alice): development only.
func (p *Page) token(c echo.Context) error {
	name := c.QueryParam("user")
	if !userName.MatchString(name) {
		return apierror.InvalidArgument("user must be a short lower-case name such as alice")
	}
	id := conversation.UserID(uuid.NewSHA1(namespace, []byte(name)).String())
	token, err := p.authn.Issue(id, 12*time.Hour)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"user_id": string(id), "token": token})
}
