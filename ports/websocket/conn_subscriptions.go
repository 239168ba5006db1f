package websocket

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/apierror"
)

// Subscriptions: subscribe, unsubscribe, and the keep-alive re-check of membership.

// testHookChecked, set only by tests, runs in subscribe between the membership check and the
// subscription, where a removal can come in between.
var testHookChecked atomic.Pointer[func(conv conversation.ID, user conversation.UserID)]

func (c *conn) subscribe(f inFrame) {
	conv, err := conversation.ParseID(f.ConversationID)
	if err != nil {
		c.sendError(f.ID, apierror.NotFound)
		return
	}
	c.subsMu.Lock()
	_, again := c.subs[conv]
	full := !again && len(c.subs) >= c.h.opts.MaxSubscriptions
	c.subsMu.Unlock()
	if full {
		c.sendError(f.ID, apierror.New(http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("at most %d subscriptions per connection; unsubscribe from one first", c.h.opts.MaxSubscriptions)))
		return
	}
	// a removal heard from here until the subscription is stored may not find it, so it is
	// checked again after if one of this conversation's was (the notice, or a re-check after the
	// channel's confirmation for one published before)
	version := c.h.members.version(conv)
	snap, err := c.h.app.Queries.Conversations.Get(c.ctx, c.user, conv)
	if err != nil {
		c.sendError(f.ID, apierror.From(err))
		return
	}
	if hook := testHookChecked.Load(); hook != nil {
		(*hook)(conv, c.user)
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
	if c.h.members.version(conv) != version && !c.stillMember(conv) {
		return
	}
	if err := c.h.app.Commands.AcknowledgeSync.Synced(c.ctx, c.user, conv); err != nil {
		c.h.offlineDown.Failed(err, "conversation_id", conv)
	} else {
		c.h.offlineDown.OK()
	}
	if from < snap.LastSeq {
		c.h.log.Info("delivering offline messages", "conversation_id", conv, "user_id", c.user,
			"from_seq", from, "last_seq", snap.LastSeq, "count", snap.LastSeq-from)
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
// (checked at every ping, from a membership cache shared by the instance's connections). While
// membership cannot be checked (Postgres away) subscriptions go on, for failClosedRounds
// rounds; then the connection is closed with 1001 (fail closed).
func (c *conn) revalidate() {
	defer c.revalidating.Store(false)
	c.subsMu.Lock()
	convs := make([]conversation.ID, 0, len(c.subs))
	for conv := range c.subs {
		convs = append(convs, conv)
	}
	c.subsMu.Unlock()
	checked := true
	for _, conv := range convs {
		member, err := c.h.members.isMember(c.ctx, conv, c.user)
		if err != nil {
			checked = false // in doubt (Postgres away): keep it for now; the next round looks again
			continue
		}
		if !member {
			c.endSubscription(conv)
		}
	}
	if checked {
		c.verifiedAt.Store(time.Now().UnixNano())
		c.h.membershipDown.OK()
		return
	}
	if doubt := time.Since(time.Unix(0, c.verifiedAt.Load())); doubt > failClosedRounds*c.h.opts.PingInterval {
		c.h.membershipDown.Failed(errors.New("membership unchecked"), "user_id", c.user, "unchecked_for", doubt.Round(time.Second))
		c.closeWith(websocket.StatusGoingAway, "membership cannot be checked; reconnect")
	}
}

// stillMember reads conv's participants afresh and ends its subscription unless the user is
// still one of them (false). When they cannot be read, the subscription stays and the next
// keep-alive round checks again (revalidate).
func (c *conn) stillMember(conv conversation.ID) bool {
	participants, err := c.h.members.refresh(c.ctx, conv)
	if err != nil {
		c.h.membershipDown.Failed(err, "conversation_id", conv)
		return true
	}
	if !slices.Contains(participants, c.user) {
		c.endSubscription(conv)
		return false
	}
	return true
}

// endSubscription ends conv's subscription because the user is no longer a participant: nothing
// more is delivered for it, and the client is told with an "unsubscribed" frame.
func (c *conn) endSubscription(conv conversation.ID) {
	c.subsMu.Lock()
	_, ok := c.subs[conv]
	c.subsMu.Unlock()
	if !ok {
		return
	}
	c.dropSubscription(conv)
	c.sendJSON(unsubscribedFrame{Type: "unsubscribed", ConversationID: string(conv), Reason: "not_found"})
}
