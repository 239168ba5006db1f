// Package http is the public HTTP port: echo handlers, authentication and error mapping.
package http

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/nova-chat/nova/application"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/ports/apierror"
	"github.com/nova-chat/nova/ports/auth"
	"github.com/nova-chat/nova/ports/ratelimit"
)

// Addr is NOVA_HTTP_ADDR, the public listener.
type Addr string

// ReadinessCheck is one dependency /readyz asks about.
type ReadinessCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

type handlers struct {
	app     application.Application
	limiter *ratelimit.PerUser
	ready   []ReadinessCheck
	obs     monitoring.Observer
	log     *slog.Logger
}

// Routes are more routes on the public router, from another port (the WebSocket one).
type Routes interface{ Register(e *echo.Echo) }

// NewEcho builds the public router.
func NewEcho(app application.Application, authn *auth.Authenticator, limiter *ratelimit.PerUser,
	ready []ReadinessCheck, more []Routes, obs monitoring.Observer, log *slog.Logger) *echo.Echo {
	if authn == nil || limiter == nil || obs == nil || log == nil {
		panic("http.NewEcho: nil dependency")
	}
	h := &handlers{app: app, limiter: limiter, ready: ready, obs: obs, log: log}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.JSONSerializer = jsonSerializer{}
	e.HTTPErrorHandler = errorHandler(log)
	e.Use(middleware.Recover())

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", h.readyz)

	v1 := e.Group("/v1", authenticate(authn))
	v1.POST("/conversations", h.createConversation)
	v1.GET("/conversations", h.listConversations)
	v1.GET("/conversations/:id", h.getConversation)
	v1.POST("/conversations/:id/participants", h.addParticipant)
	v1.DELETE("/conversations/:id/participants/:user_id", h.removeParticipant)
	v1.POST("/conversations/:id/messages", h.postMessage)
	v1.GET("/conversations/:id/messages", h.listMessages)
	v1.GET("/unread", h.unread)
	for _, r := range more {
		r.Register(e)
	}
	return e
}

func (h *handlers) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	var down []string
	for _, rc := range h.ready {
		if err := rc.Check(ctx); err != nil {
			// the cause (hosts, users, addresses) goes to the log, not to whoever asks
			h.log.Warn("not ready", "dependency", rc.Name, "error", err)
			down = append(down, rc.Name)
		}
	}
	if len(down) > 0 {
		return apierror.New(http.StatusServiceUnavailable, "unavailable", "not ready: "+strings.Join(down, ", "))
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// NewServer wraps the router in an http.Server with timeouts against slow clients. Headers may be
// up to 2 MiB so that an oversized Authorization header is answered with 401, not a bare 431.
func NewServer(addr Addr, e *echo.Echo) *http.Server {
	return &http.Server{
		Addr:              string(addr),
		Handler:           e,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    2 << 20,
	}
}
