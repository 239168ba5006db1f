package websocket

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/apierror"
	"github.com/nova-chat/nova/ports/auth"
)

// Stats are the port's running totals (exported as metrics).
type Stats struct {
	Connections, SlowCutoffs atomic.Int64
}

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

	amu        sync.Mutex
	acks       map[conversation.ID]int64 // acknowledged, not yet stored durably
	flushTimer *time.Timer               // set while a durable flush is scheduled

	closeOnce sync.Once
}

// outFrame is a queued frame; conv is set on message frames, so an unsubscribe can take back
// what is still queued for that conversation.
type outFrame struct {
	conv conversation.ID
	data []byte
}

func newConn(h *Handler, ws *websocket.Conn, claims auth.Claims, client clientsync.ClientID) *conn {
	return &conn{h: h, ws: ws, user: claims.User, client: client, expiry: claims.ExpiresAt,
		room: make(chan struct{}),
		subs: map[conversation.ID]*delivery.Subscription{}, acks: map[conversation.ID]int64{}}
}

func (c *conn) run(parent context.Context, initial conversation.ID) {
	c.ctx, c.cancel = context.WithCancel(parent)
	defer c.cancel()
	// One long-lived goroutine per idle connection (this reader): idle connections are what an
	// instance holds most of, so the writer runs only while frames are queued, and keep-alive,
	// token expiry and ack flushes are timers.
	c.keepAlive = time.AfterFunc(pingInterval, c.keepAliveRound)
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
	}
	c.amu.Unlock()
	c.flushAcks(context.WithoutCancel(parent))
	_ = c.ws.CloseNow()
}

func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return // closed by the peer, by us, or over the frame limit (the library sent 1009)
		}
		if typ != websocket.MessageText {
			c.sendError("", apierror.InvalidArgument("frames must be text"))
			continue
		}
		f, err := decodeFrame(data)
		if err != nil {
			c.sendError(f.ID, apierror.InvalidArgument(err.Error()))
			continue
		}
		c.handle(f)
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

func (c *conn) subscribe(f inFrame) {
	conv, err := conversation.ParseID(f.ConversationID)
	if err != nil {
		c.sendError(f.ID, apierror.NotFound)
		return
	}
	snap, err := c.h.app.Queries.Conversations.Get(c.ctx, c.user, conv)
	if err != nil {
		c.sendError(f.ID, apierror.From(err))
		return
	}
	from := snap.LastSeq // with neither since_seq nor a stored cursor: the live end
	if f.SinceSeq != nil {
		if *f.SinceSeq > snap.LastSeq {
			c.sendError(f.ID, apierror.InvalidArgument("since_seq is beyond the conversation's last seq"))
			return
		}
		from = *f.SinceSeq
	} else {
		acked, err := c.h.app.Queries.Cursors.AckedSeqs(c.ctx, c.user, c.client)
		if err != nil {
			c.sendError(f.ID, apierror.From(err))
			return
		}
		if seq, ok := acked[conv]; ok {
			from = min(seq, snap.LastSeq)
		}
	}
	c.dropSubscription(conv)
	c.sendJSON(subscribedFrame{Type: "subscribed", ID: f.ID, ConversationID: string(conv), FromSeq: from, LastSeq: snap.LastSeq})
	sub := c.h.hub.Subscribe(c.ctx, conv, from, c)
	c.subsMu.Lock()
	c.subs[conv] = sub
	c.subsMu.Unlock()
	if err := c.h.app.Commands.AcknowledgeSync.Synced(c.ctx, c.user, conv); err != nil {
		c.h.log.Warn("offline counter not cleared", "conversation_id", conv, "error", err)
	}
	if from < snap.LastSeq {
		c.h.log.Info("delivering offline messages", "conversation_id", conv, "user_id", c.user,
			"from_seq", from, "last_seq", snap.LastSeq, "count", snap.LastSeq-from)
	}
}

func (c *conn) send(f inFrame) {
	start := time.Now()
	conv, err := conversation.ParseID(f.ConversationID)
	if err != nil {
		c.sendError(f.ID, apierror.NotFound)
		return
	}
	if !c.h.limiter.Allow(string(c.user)) {
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
	c.sendJSON(sentFrame{Type: "sent", ID: f.ID, Message: msg})
	c.h.obs.SendHandled("ws", time.Since(start), monitoring.Outcome(created, nil, false))
}

func (c *conn) ack(f inFrame) {
	conv, err := conversation.ParseID(f.ConversationID)
	if err != nil {
		c.sendError(f.ID, apierror.NotFound)
		return
	}
	key := clientsync.Key{User: c.user, Client: c.client, Conversation: conv}
	err = c.h.app.Commands.AcknowledgeSync.Acknowledge(c.ctx, key, *f.Seq)
	if err != nil && !errors.Is(err, command.ErrHotCursorUnavailable) {
		c.sendError(f.ID, apierror.From(err))
		return
	}
	if err != nil {
		c.h.log.Warn("hot cursor not written; the durable copy follows", "conversation_id", conv, "error", err)
	}
	c.amu.Lock()
	c.acks[conv] = max(c.acks[conv], *f.Seq)
	c.scheduleFlushLocked()
	c.amu.Unlock()
}

// scheduleFlushLocked stores acknowledged cursors durably about a second after the first
// unstored ack (and once more when the connection ends). Callers hold amu.
func (c *conn) scheduleFlushLocked() {
	if c.flushTimer != nil {
		return
	}
	c.flushTimer = time.AfterFunc(ackFlushEvery, func() {
		c.amu.Lock()
		c.flushTimer = nil
		c.amu.Unlock()
		c.flushAcks(c.ctx)
	})
}

func (c *conn) flushAcks(ctx context.Context) {
	c.amu.Lock()
	pending := c.acks
	c.acks = map[conversation.ID]int64{}
	c.amu.Unlock()
	if len(pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for conv, seq := range pending {
		key := clientsync.Key{User: c.user, Client: c.client, Conversation: conv}
		if err := c.h.app.Commands.AcknowledgeSync.Persist(ctx, key, seq); err != nil {
			c.h.log.Warn("cursor not stored; will retry", "conversation_id", conv, "seq", seq, "error", err)
			c.amu.Lock()
			c.acks[conv] = max(c.acks[conv], seq)
			if ctx.Err() == nil {
				c.scheduleFlushLocked()
			}
			c.amu.Unlock()
		}
	}
}

// Deliver implements delivery.Sink: queue one message frame, or cut the client off.
func (c *conn) Deliver(conv conversation.ID, it delivery.Item) error {
	if err := c.enqueue(conv, messageFrame(it.JSON)); err != nil {
		return err
	}
	if it.CreatedAtMs > 0 { // a live fan-out message (backlog pages carry no timestamp)
		c.h.obs.LiveQueued(time.Since(time.UnixMilli(it.CreatedAtMs)))
	}
	return nil
}

// WaitRoom implements delivery.Sink: backlog paging waits for the queue to drain.
func (c *conn) WaitRoom(ctx context.Context) error {
	for {
		c.qmu.Lock()
		if c.cut {
			c.qmu.Unlock()
			return errCutOff
		}
		if c.queued < backlogHighMark {
			c.qmu.Unlock()
			return nil
		}
		room := c.room
		c.qmu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-room:
		}
	}
}

func (c *conn) enqueue(conv conversation.ID, frame []byte) error {
	c.qmu.Lock()
	if c.cut {
		c.qmu.Unlock()
		return errCutOff
	}
	if c.queued+len(frame) > maxQueuedBytes {
		c.cut = true
		c.queue, c.queued = nil, 0
		close(c.room)
		c.qmu.Unlock()
		c.h.Stats.SlowCutoffs.Add(1)
		c.h.log.Warn("slow client cut off", "user_id", c.user, "queued_limit_bytes", maxQueuedBytes)
		go c.closeWith(websocket.StatusPolicyViolation, "slow consumer: too much queued")
		return errCutOff
	}
	c.queue = append(c.queue, outFrame{conv: conv, data: frame})
	c.queued += len(frame)
	if c.writing == nil {
		c.writing = make(chan struct{})
		go c.writeQueued(c.writing)
	}
	c.qmu.Unlock()
	return nil
}

// writeQueued writes the queued frames one at a time until the queue is empty, then stops (done
// is closed); enqueue starts it again for the next frame. Taking one frame at a time leaves
// the rest in the queue, where an unsubscribe can still take its conversation's back.
func (c *conn) writeQueued(done chan struct{}) {
	defer close(done)
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 || c.cut {
			c.queue = nil
			c.writing = nil
			c.qmu.Unlock()
			return
		}
		f := c.queue[0]
		c.queue[0] = outFrame{}
		c.queue = c.queue[1:]
		c.qmu.Unlock()
		wctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
		err := c.ws.Write(wctx, websocket.MessageText, f.data)
		cancel()
		c.qmu.Lock()
		if err != nil || c.cut { // cut: closeWith is sending the close frame
			c.cut = true // the connection is done: nothing more is queued or written
			c.writing = nil
			c.qmu.Unlock()
			if err != nil {
				c.cancel()
			}
			return
		}
		c.queued -= len(f.data)
		c.roomLocked()
		c.qmu.Unlock()
	}
}

// roomLocked wakes backlog paging once the queue is below the high mark.
func (c *conn) roomLocked() {
	if c.queued < backlogHighMark {
		close(c.room)
		c.room = make(chan struct{})
	}
}

// unqueue takes back the message frames still queued for conv (it was unsubscribed or
// subscribed again from another seq), so the client sees nothing more of the old subscription.
func (c *conn) unqueue(conv conversation.ID) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	kept := c.queue[:0]
	for _, f := range c.queue {
		if f.conv == conv {
			c.queued -= len(f.data)
			continue
		}
		kept = append(kept, f)
	}
	clear(c.queue[len(kept):])
	c.queue = kept
	if !c.cut {
		c.roomLocked()
	}
}

// keepAliveRound pings every pingInterval (dropping a peer that does not answer within
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
		c.keepAlive.Reset(pingInterval)
	}
}

func (c *conn) dropSubscription(conv conversation.ID) {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	if s, ok := c.subs[conv]; ok {
		s.Close()
		delete(c.subs, conv)
		c.unqueue(conv)
	}
}

// revalidate ends the subscriptions of conversations the user was removed from meanwhile
// (checked at every ping, from a membership cache shared by the instance's connections).
func (c *conn) revalidate() {
	defer c.revalidating.Store(false)
	c.subsMu.Lock()
	convs := make([]conversation.ID, 0, len(c.subs))
	for conv := range c.subs {
		convs = append(convs, conv)
	}
	c.subsMu.Unlock()
	for _, conv := range convs {
		member, err := c.h.members.isMember(c.ctx, conv, c.user)
		if err != nil || member {
			continue // when in doubt (Postgres down) keep it; the next ping looks again
		}
		c.dropSubscription(conv)
		c.sendError("", apierror.NotFound)
	}
}

// ping waits for the pong (in the keep-alive timer's goroutine, so frames keep flowing meanwhile).
func (c *conn) ping() {
	pctx, cancel := context.WithTimeout(c.ctx, pingTimeout)
	defer cancel()
	if err := c.ws.Ping(pctx); err != nil {
		c.cancel()
	}
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
	data, err := json.Marshal(v)
	if err != nil {
		c.h.log.Error("encode frame", "error", err)
		return
	}
	_ = c.enqueue("", data)
}

func (c *conn) sendError(id string, e *apierror.Error) {
	c.sendJSON(errorFrame{Type: "error", ID: id, Code: e.Code, Message: e.Message})
}
