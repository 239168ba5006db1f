package websocket

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/application"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/outagelog"
	"github.com/nova-chat/nova/ports/apierror"
	"github.com/nova-chat/nova/ports/auth"
	"github.com/nova-chat/nova/ports/ratelimit"
)

// Limits of one connection (PROTOCOL.md section 4).
const (
	maxFrameBytes   = 128 << 10
	maxQueuedBytes  = 1 << 20   // a client that lets this much pile up is cut off with 1008
	backlogHighMark = 256 << 10 // backlog paging waits while more than this is queued
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
	// MaxSubscriptions is the most subscriptions one connection holds at once (default 1000).
	MaxSubscriptions int
	// PingInterval paces the keep-alive rounds: a ping, and a re-check of the subscriptions'
	// membership (default 20 s, PROTOCOL.md section 4).
	PingInterval time.Duration
}

// failClosedRounds: when membership could not be checked for this many keep-alive rounds in a
// row (Postgres away), the connection is closed with 1001 rather than go on delivering to a
// user who may have been removed meanwhile; the client reconnects, and its subscribes are
// checked afresh.
const failClosedRounds = 3

// Frames a connection may send: framesPerSecond sustained, framesBurst at once (enough to
// subscribe to MaxSubscriptions conversations right after connecting). Sends are limited per
// user besides (NOVA_SEND_RATE).
const (
	framesPerSecond = 100
	framesBurst     = 1000
)

// PresenceRecorder tells other instances which users hold how many connections here
// (heartbeats with a TTL), and keeps each user's connections on all instances within a limit.
type PresenceRecorder interface {
	// Admit records one more connection of user here unless the user's connections on every
	// instance would exceed limit (false: refused).
	Admit(ctx context.Context, user conversation.UserID, limit int) (bool, error)
	// Vouch renews this instance's claims: each user with a connection here, and how many.
	Vouch(ctx context.Context, conns map[conversation.UserID]int) error
	// Release records that user holds left connections here (0: the claim is withdrawn).
	Release(ctx context.Context, user conversation.UserID, left int) error
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
	counts   wsCounts

	members *memberships

	// Redis outages are logged once each, not once per connection, ack or subscribe
	presenceDown, cursorDown, durableCursorDown, offlineDown, membershipDown *outagelog.Log
	// ended connections whose last acks were left to the hot cursors: one line an outage (its
	// end says how many), not one per connection of a reconnect storm
	acksLeft *outagelog.Log

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
	if opts.MaxSubscriptions < 1 {
		opts.MaxSubscriptions = 1000
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 20 * time.Second
	}
	log = log.With("component", "websocket")
	return &Handler{app: app, hub: hub, presence: presence, authn: authn, limiter: limiter, opts: opts, obs: obs, log: log,
		perUser: map[conversation.UserID]int{}, conns: map[*conn]struct{}{},
		members: &memberships{convs: app.Queries.Conversations, entries: map[conversation.ID]membershipEntry{}},
		presenceDown: outagelog.New(log, "presence cannot be written: connection limits hold per instance, "+
			"and presence is corrected by the next heartbeat or expires by itself", "presence is written again"),
		cursorDown: outagelog.New(log, "hot cursors cannot be written; the durable copies follow", "hot cursors are written again"),
		durableCursorDown: outagelog.New(log, "acknowledged cursors cannot be stored durably; retrying every second (the hot cursors hold them meanwhile)",
			"acknowledged cursors are stored durably again"),
		acksLeft: outagelog.New(log, "acknowledged cursors not stored durably; left to the hot cursors",
			"connections that ended during the outage left their last acks to the hot cursors"),
		offlineDown: outagelog.New(log, "offline counters cannot be cleared; they expire by themselves",
			"offline counters are cleared again"),
		membershipDown: outagelog.New(log, "membership cannot be checked; closing connections whose subscriptions "+
			"went unchecked too long (their clients reconnect)", "membership is checked again")}
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

// admit decides whether u may open one more connection: refused at once when u holds the
// limit here, else asked of every instance's counts (presence). While Redis cannot be asked,
// the limit holds per instance.
func (h *Handler) admit(ctx context.Context, u conversation.UserID) bool {
	h.mu.Lock()
	if h.perUser[u] >= h.opts.MaxConnsPerUser {
		h.mu.Unlock()
		return false
	}
	h.perUser[u]++
	h.mu.Unlock()
	ok, err := h.presence.Admit(ctx, u, h.opts.MaxConnsPerUser)
	if err != nil {
		h.presenceDown.Failed(err)
		return true
	}
	h.presenceDown.OK()
	if !ok {
		h.mu.Lock()
		h.forget(u)
		h.mu.Unlock()
	}
	return ok
}

// forget takes one connection of u off the local count, and returns how many are left.
func (h *Handler) forget(u conversation.UserID) int {
	h.perUser[u]--
	left := h.perUser[u]
	if left <= 0 {
		delete(h.perUser, u)
	}
	return left
}

func (h *Handler) release(ctx context.Context, u conversation.UserID) {
	h.mu.Lock()
	left := h.forget(u)
	h.mu.Unlock()
	if err := h.presence.Release(ctx, u, max(left, 0)); err != nil {
		h.presenceDown.Failed(err)
	} else {
		h.presenceDown.OK()
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
		conns := maps.Clone(h.perUser)
		h.mu.Unlock()
		if len(conns) > 0 {
			if err := h.presence.Vouch(ctx, conns); err != nil && ctx.Err() == nil {
				h.presenceDown.Failed(err, "users", len(conns))
			} else if err == nil {
				h.presenceDown.OK()
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
	h.counts.Connections.Add(1)
	return true
}

func (h *Handler) untrack(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c]; ok {
		delete(h.conns, c)
		h.counts.Connections.Add(-1)
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

// Reverify reads conv's participants afresh and ends the local subscriptions of users no
// longer among them (messaging.Revoker). The live listener calls it when conv's channel is
// confirmed: a removal notice published before that was not heard here.
func (h *Handler) Reverify(ctx context.Context, conv conversation.ID) error {
	h.members.changed(conv) // first: a subscribe not yet among the sinks checks again itself
	sinks := h.hub.Sinks(conv)
	if len(sinks) == 0 {
		return nil
	}
	participants, err := h.members.refresh(ctx, conv)
	if err != nil {
		return err
	}
	for _, s := range sinks {
		if c, ok := s.(*conn); ok && !slices.Contains(participants, c.user) {
			c.endSubscription(conv)
		}
	}
	return nil
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

// shuttingDown reports whether Shutdown has begun.
func (h *Handler) shuttingDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closing
}

// Stats returns the running totals at this moment (a copy: read-only for the caller).
func (h *Handler) Stats() Stats {
	c := &h.counts
	return Stats{Connections: c.Connections.Load(), SlowCutoffs: c.SlowCutoffs.Load()}
}
