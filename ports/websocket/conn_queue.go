package websocket

import (
	"context"
	"time"

	"github.com/coder/websocket"

	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/domain/conversation"
)

// The outbound queue: byte-bounded, drained by a writer that runs only while frames wait.

// outFrame is a queued frame; conv is set on message frames, so an unsubscribe can take back
// what is still queued for that conversation.
type outFrame struct {
	conv conversation.ID
	data []byte
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
		c.h.counts.SlowCutoffs.Add(1)
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
