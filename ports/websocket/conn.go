package websocket

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/jsonenc"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/ports/apierror"
	"github.com/nova-chat/nova/ports/auth"
)

// Stats are the port's running totals (exported as metrics).
type Stats struct {
	Connections, SlowCutoffs int64
}

type wsCounts struct{ Connections, SlowCutoffs atomic.Int64 }

var errCutOff = errors.New("connection cut off")

// conn is one WebSocket connection. Its reader goroutine handles frames in order; a writer
// goroutine, started while frames are queued, drains a byte-bounded queue, so a slow client
// never blocks delivery to others.
type conn struct {
	h      *Handler
	ws     *websocket.Conn
	user   conversation.UserID
	client clientsync.ClientID
	expiry time.Time
	ctx    context.Context
	cancel context.CancelFunc

	qmu       sync.Mutex
	queue     []outFrame
	queued    int
	cut       bool
	writing   chan struct{} // non-nil while a writer runs; closed when it stops
	room      chan struct{} // closed (and replaced) when the queue drains below the high mark
	keepAlive *time.Timer

	subsMu sync.Mutex
	subs   map[conversation.ID]*delivery.Subscription

	revalidating atomic.Bool
	verifiedAt   atomic.Int64 // when every subscription's membership was last confirmed (Unix ns)

	amu        sync.Mutex
	acks       map[conversation.ID]int64 // acknowledged, not yet stored durably
	flushTimer *time.Timer               // set while a durable flush is scheduled
	flushing   sync.Mutex                // held while acks are being stored (flushAcks)
	endedAt    atomic.Int64              // when the connection ended (Unix ns; 0 while it runs)
	finalRan   bool                      // the final flush has begun (under flushing)

	frames *rate.Limiter // frames this connection may send

	closeOnce sync.Once

	handling sync.Mutex  // held while a frame is handled, so a shutdown lets it finish
	leaving  atomic.Bool // set by goAway: frames read from now on are not handled
}

func newConn(h *Handler, ws *websocket.Conn, claims auth.Claims, client clientsync.ClientID) *conn {
	return &conn{h: h, ws: ws, user: claims.User, client: client, expiry: claims.ExpiresAt,
		room: make(chan struct{}), frames: rate.NewLimiter(framesPerSecond, framesBurst),
		subs: map[conversation.ID]*delivery.Subscription{}, acks: map[conversation.ID]int64{}}
}

func (c *conn) run(parent context.Context, initial conversation.ID) {
	c.ctx, c.cancel = context.WithCancel(parent)
	defer c.cancel()
	// One long-lived goroutine per idle connection (this reader): idle connections are what an
	// instance holds most of, so the writer runs only while frames are queued, and keep-alive,
	// token expiry and ack flushes are timers.
	c.verifiedAt.Store(time.Now().UnixNano())
	c.keepAlive = time.AfterFunc(c.h.opts.PingInterval, c.keepAliveRound)
	expiry := time.AfterFunc(time.Until(c.expiry), func() { c.closeWith(statusTokenExpired, "token_expired") })

	if initial != "" {
		c.subscribe(inFrame{Type: "subscribe", ConversationID: string(initial)})
	}
	c.readLoop()

	c.cancel()
	c.keepAlive.Stop()
	expiry.Stop()
	c.subsMu.Lock()
	for _, s := range c.subs {
		s.Close()
	}
	c.subsMu.Unlock()
	c.qmu.Lock()
	c.cut = true // no writer starts any more
	writing := c.writing
	c.qmu.Unlock()
	if writing != nil {
		<-writing
	}
	c.amu.Lock()
	if c.flushTimer != nil {
		c.flushTimer.Stop()
		c.flushTimer = nil
	}
	c.amu.Unlock()
	c.endedAt.Store(time.Now().UnixNano())
	c.flushAcks(context.WithoutCancel(parent), true)
	_ = c.ws.CloseNow()
}

var errTooManyFrames = apierror.New(http.StatusTooManyRequests, "rate_limited", "too many frames; slow down")

// frameError is the answer to a frame that failed with err: rate_limited once the connection
// is over its frame budget, so that malformed frames cannot be sent without limit either.
func frameError(allowed bool, err *apierror.Error) *apierror.Error {
	if !allowed {
		return errTooManyFrames
	}
	return err
}

func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return // closed by the peer, by us, or over the frame limit (the library sent 1009)
		}
		allowed := c.frames.Allow() // every frame counts, malformed ones too
		if typ != websocket.MessageText {
			c.sendError("", frameError(allowed, apierror.InvalidArgument("frames must be text")))
			continue
		}
		f, err := decodeFrame(data)
		if err != nil {
			c.sendError(f.ID, frameError(allowed, apierror.InvalidArgument(err.Error())))
			continue
		}
		if c.leaving.Load() {
			return // the server is shutting down; the client sends it again after reconnecting
		}
		if !allowed {
			c.sendError(f.ID, errTooManyFrames)
			continue
		}
		c.handling.Lock()
		c.handle(f)
		c.handling.Unlock()
	}
}

func (c *conn) handle(f inFrame) {
	switch f.Type {
	case "subscribe":
		c.subscribe(f)
	case "unsubscribe":
		c.dropSubscription(conversation.ID(f.ConversationID))
	case "send":
		c.send(f)
	case "ack":
		c.ack(f)
	case "ping":
		c.sendJSON(pongFrame{Type: "pong", ID: f.ID})
	}
}

func (c *conn) send(f inFrame) {
	start := time.Now()
	conv, err := conversation.ParseID(f.ConversationID)
	if err != nil {
		c.sendError(f.ID, apierror.NotFound)
		return
	}
	if !c.h.limiter.Allow(c.ctx, string(c.user)) {
		c.sendError(f.ID, apierror.RateLimited)
		return
	}
	msg, created, err := c.h.app.Commands.PostMessage.Handle(c.ctx, command.PostMessage{
		ConversationID: conv, SenderID: c.user, ClientMsgID: f.ClientMsgID, Body: f.Body,
	})
	if err != nil {
		apiErr := apierror.From(err)
		c.h.obs.SendHandled("ws", time.Since(start), monitoring.Outcome(false, err, apiErr.Status < 500))
		c.sendError(f.ID, apiErr)
		return
	}
	c.sendJSON(sentFrame{Type: "sent", ID: f.ID, Message: messagejson.From(msg)})
	c.h.obs.SendHandled("ws", time.Since(start), monitoring.Outcome(created, nil, false))
}

// keepAliveRound pings every PingInterval (dropping a peer that does not answer within
// pingTimeout) and re-checks the live subscriptions' membership, then arms the next round.
func (c *conn) keepAliveRound() {
	if c.ctx.Err() != nil {
		return
	}
	if c.revalidating.CompareAndSwap(false, true) {
		go c.revalidate()
	}
	c.ping()
	if c.ctx.Err() == nil {
		c.keepAlive.Reset(c.h.opts.PingInterval)
	}
}

// ping waits for the pong (in the keep-alive timer's goroutine, so frames keep flowing meanwhile).
func (c *conn) ping() {
	pctx, cancel := context.WithTimeout(c.ctx, min(pingTimeout, c.h.opts.PingInterval))
	defer cancel()
	if err := c.ws.Ping(pctx); err != nil {
		c.cancel()
	}
}

// goAway is a graceful close for a shutdown: the frame being handled finishes (a send is stored
// and its answer queued), what is queued is written (within ctx), then the close with 1001.
func (c *conn) goAway(ctx context.Context) {
	c.leaving.Store(true)
	c.handling.Lock()
	c.handling.Unlock() // taken only to wait for the frame in hand
	for {
		c.qmu.Lock()
		writing := c.writing
		c.qmu.Unlock()
		if writing == nil {
			break
		}
		select {
		case <-writing:
		case <-ctx.Done():
		case <-c.ctx.Done():
		}
		if ctx.Err() != nil || c.ctx.Err() != nil {
			break
		}
	}
	c.closeWith(websocket.StatusGoingAway, "server shutting down")
}

// closeWith performs the close handshake with code; the reader loop then ends.
func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.qmu.Lock()
		c.cut = true
		c.qmu.Unlock()
		_ = c.ws.Close(code, reason)
		c.cancel()
	})
}

func (c *conn) sendJSON(v any) {
	data, err := jsonenc.Marshal(v)
	if err != nil {
		c.h.log.Error("encode frame", "error", err)
		return
	}
	_ = c.enqueue("", data)
}

func (c *conn) sendError(id string, e *apierror.Error) {
	c.sendJSON(errorFrame{Type: "error", ID: id, Code: e.Code, Message: e.Message})
}
