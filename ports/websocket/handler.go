package websocket

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/application"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/apierror"
	"github.com/nova-chat/nova/ports/auth"
	"github.com/nova-chat/nova/ports/ratelimit"
)

// Limits of one connection (PROTOCOL.md section 4).
const (
	maxFrameBytes   = 128 << 10
	maxQueuedBytes  = 1 << 20   // a client that lets this much pile up is cut off with 1008
	backlogHighMark = 256 << 10 // backlog paging waits while more than this is queued
	pingInterval    = 20 * time.Second
	// statusTokenExpired closes a connection whose token expired (PROTOCOL.md section 4).
	statusTokenExpired websocket.StatusCode = 4001
	pingTimeout                             = 10 * time.Second
	writeTimeout                            = 10 * time.Second
	ackFlushEvery                           = time.Second
)

// Options are the port's settings from the configuration.
type Options struct {
	OriginPatterns  []string // empty: same host only
	MaxConnsPerUser int
}

// PresenceRecorder tells other instances which users hold a connection here (heartbeats with a TTL).
type PresenceRecorder interface {
	Vouch(ctx context.Context, users []conversation.UserID) error
	Leave(ctx context.Context, user conversation.UserID) error
}

// presenceHeartbeat renews this instance's presence claims well within their TTL.
const presenceHeartbeat = 10 * time.Second

// Handler upgrades authenticated requests and runs their connections.
type Handler struct {
	running  sync.WaitGroup // connections not yet finished (their last ack flush included)
	app      application.Application
	presence PresenceRecorder
	hub      *delivery.Hub
	authn    *auth.Authenticator
	limiter  *ratelimit.PerUser
	opts     Options
	obs      monitoring.Observer
	log      *slog.Logger
	Stats    Stats

	members *memberships

	mu      sync.Mutex
	perUser map[conversation.UserID]int
	conns   map[*conn]struct{}
	closing bool
}

func NewHandler(app application.Application, hub *delivery.Hub, presence PresenceRecorder, authn *auth.Authenticator,
	limiter *ratelimit.PerUser, opts Options, obs monitoring.Observer, log *slog.Logger) *Handler {
	if hub == nil || presence == nil || authn == nil || limiter == nil || obs == nil || log == nil {
		panic("websocket.NewHandler: nil dependency")
	}
	if opts.MaxConnsPerUser < 1 {
		opts.MaxConnsPerUser = 32
	}
	return &Handler{app: app, hub: hub, presence: presence, authn: authn, limiter: limiter, opts: opts, obs: obs, log: log.With("component", "websocket"),
		perUser: map[conversation.UserID]int{}, conns: map[*conn]struct{}{},
		members: &memberships{convs: app.Queries.Conversations, entries: map[conversation.ID]membershipEntry{}}}
}

// Register adds the WebSocket routes to the public router.
func (h *Handler) Register(e *echo.Echo) {
	e.GET("/v1/ws", h.serve)
	e.GET("/v1/conversations/:id/ws", h.serve)
}

func (h *Handler) serve(c echo.Context) error {
	r := c.Request()
	claims, err := h.authenticate(r)
	if err != nil {
		return apierror.Unauthenticated
	}
	client, err := clientsync.ParseClientID(r.URL.Query().Get("client_id"))
	if err != nil {
		return apierror.InvalidArgument("client_id must be a UUID")
	}
	var initial conversation.ID
	if id := c.Param("id"); id != "" {
		if initial, err = conversation.ParseID(id); err != nil {
			return apierror.NotFound
		}
		if _, err := h.app.Queries.Conversations.Get(r.Context(), claims.User, initial); err != nil {
			return err
		}
	}
	if !h.admit(r.Context(), claims.User) {
		return apierror.New(http.StatusTooManyRequests, "rate_limited", "too many connections for this user")
	}
	ctx := context.WithoutCancel(r.Context())
	ws, err := websocket.Accept(smallBuffers{c.Response()}, r, &websocket.AcceptOptions{OriginPatterns: h.opts.OriginPatterns})
	if err != nil {
		h.release(ctx, claims.User)
		return nil // Accept has answered (e.g. 403 for a foreign Origin)
	}
	ws.SetReadLimit(maxFrameBytes)
	cn := newConn(h, ws, claims, client)
	if !h.track(cn) {
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		h.release(ctx, claims.User)
		return nil
	}
	// The connection lives on in a goroutine of its own and the HTTP handler returns, so that
	// net/http lets go of what it held for the request (its response writer and buffers, the
	// handler's deep stack): a quarter of an idle connection's memory.
	go func() {
		defer h.release(ctx, claims.User)
		defer h.untrack(cn)
		cn.run(ctx, initial)
	}()
	return nil
}

// authenticate takes the token from the Authorization header, or from ?access_token= for browsers.
func (h *Handler) authenticate(r *http.Request) (auth.Claims, error) {
	token, ok := auth.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		token = r.URL.Query().Get("access_token")
	}
	return h.authn.Verify(token)
}

func (h *Handler) admit(ctx context.Context, u conversation.UserID) bool {
	h.mu.Lock()
	if h.perUser[u] >= h.opts.MaxConnsPerUser {
		h.mu.Unlock()
		return false
	}
	h.perUser[u]++
	first := h.perUser[u] == 1
	h.mu.Unlock()
	if first {
		if err := h.presence.Vouch(ctx, []conversation.UserID{u}); err != nil {
			h.log.Warn("presence not recorded; the next heartbeat retries", "error", err)
		}
	}
	return true
}

func (h *Handler) release(ctx context.Context, u conversation.UserID) {
	h.mu.Lock()
	h.perUser[u]--
	last := h.perUser[u] <= 0
	if last {
		delete(h.perUser, u)
	}
	h.mu.Unlock()
	if last {
		if err := h.presence.Leave(ctx, u); err != nil {
			h.log.Warn("presence not withdrawn; it expires by itself", "error", err)
		}
	}
}

// RunPresence renews this instance's presence claims until ctx ends.
func (h *Handler) RunPresence(ctx context.Context) error {
	t := time.NewTicker(presenceHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		h.mu.Lock()
		users := make([]conversation.UserID, 0, len(h.perUser))
		for u := range h.perUser {
			users = append(users, u)
		}
		h.mu.Unlock()
		if len(users) > 0 {
			if err := h.presence.Vouch(ctx, users); err != nil && ctx.Err() == nil {
				h.log.Warn("presence heartbeat failed", "users", len(users), "error", err)
			}
		}
	}
}

func (h *Handler) track(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.conns[c] = struct{}{}
	h.running.Add(1)
	h.Stats.Connections.Add(1)
	return true
}

func (h *Handler) untrack(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c]; ok {
		delete(h.conns, c)
		h.Stats.Connections.Add(-1)
		h.running.Done()
	}
}

// Revoke ends user's live subscriptions to conv on this instance at once (they were removed
// from it; messaging.Revoker). The membership the connections share is forgotten too.
func (h *Handler) Revoke(conv conversation.ID, user conversation.UserID) {
	h.members.forget(conv)
	h.mu.Lock()
	var theirs []*conn
	for c := range h.conns {
		if c.user == user {
			theirs = append(theirs, c)
		}
	}
	h.mu.Unlock()
	for _, c := range theirs {
		c.endSubscription(conv)
	}
}

// Shutdown closes every connection with 1001 (going away) and waits for them to finish, within
// ctx: each one first finishes the frame it is handling (a send is stored and answered), writes
// what is queued, and after the close stores its last acknowledged cursors.
func (h *Handler) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.closing = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); c.goAway(ctx) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); h.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
