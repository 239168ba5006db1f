package websocket

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/apierror"
)

// Acknowledgements: the hot cursor at once, the durable one about once a second.

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
		c.h.cursorDown.Failed(err, "conversation_id", conv)
	} else {
		c.h.cursorDown.OK()
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
		// not bound to the connection: one that ends while this flush runs must not make it
		// fail and leave its acks for a final flush that may already have found nothing
		c.flushAcks(context.WithoutCancel(c.ctx), false)
	})
}

// finalFlushFor bounds how long a connection that ended goes on trying to store its last
// acknowledgements while Postgres is away. After that they are left to the hot cursor in Redis
// (a cursor read takes the higher of the two copies); should Redis lose it too, the client is
// sent again what it acknowledged, and drops it by seq.
const finalFlushFor = time.Minute

// testFinalFlushFor, set only by tests, stands in for finalFlushFor.
var testFinalFlushFor atomic.Int64

func finalFlushWindow() time.Duration {
	if d := testFinalFlushFor.Load(); d > 0 {
		return time.Duration(d)
	}
	return finalFlushFor
}

// flushAcks stores the acknowledged cursors; flushes run one at a time, so the connection's
// final flush comes after one the timer started. Those that fail are tried again a second
// later, while the connection runs and for finalFlushFor after it ended (not once the instance
// shuts down); only the connection's final flush (final) and those after it give them up.
func (c *conn) flushAcks(ctx context.Context, final bool) {
	c.flushing.Lock()
	defer c.flushing.Unlock()
	if final {
		c.finalRan = true
	}
	c.amu.Lock()
	pending := c.acks
	c.acks = map[conversation.ID]int64{}
	c.amu.Unlock()
	if len(pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var failed error
	for conv, seq := range pending {
		key := clientsync.Key{User: c.user, Client: c.client, Conversation: conv}
		if err := c.h.app.Commands.AcknowledgeSync.Persist(ctx, key, seq); err != nil {
			failed = err
			c.h.durableCursorDown.Failed(err, "conversation_id", conv, "seq", seq)
			c.amu.Lock()
			c.acks[conv] = max(c.acks[conv], seq)
			c.amu.Unlock()
		}
	}
	if failed == nil {
		c.h.durableCursorDown.OK()
		c.h.acksLeft.OK()
		return
	}
	// tried again while the connection runs, and after it ended for finalFlushFor unless the
	// instance is shutting down (its last flush was this one)
	ended := c.endedAt.Load()
	retry := ended == 0 || (time.Since(time.Unix(0, ended)) < finalFlushWindow() && !c.h.shuttingDown())
	c.amu.Lock()
	defer c.amu.Unlock()
	if len(c.acks) == 0 {
		return
	}
	if retry {
		c.scheduleFlushLocked()
		return
	}
	if !c.finalRan {
		return // a timed flush as the connection ends: the final flush, next, tries them all
	}
	// the first of an outage is a warning; the rest are counted in the line that ends it
	c.h.acksLeft.Failed(failed, "user_id", c.user, "client_id", c.client, "conversations", len(c.acks))
	c.h.log.Debug("acknowledged cursors not stored durably; left to the hot cursors", "user_id", c.user,
		"client_id", c.client, "conversations", len(c.acks), "error", failed)
	clear(c.acks)
}
