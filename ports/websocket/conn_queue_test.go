package websocket

import (
	"testing"

	"github.com/nova-chat/nova/domain/conversation"
)

func TestUnsubscribeTakesBackWhatIsStillQueuedForThatConversation(t *testing.T) {
	// given a queue holding frames of two conversations and a reply
	c := &conn{room: make(chan struct{})}
	for _, f := range []outFrame{{"a", []byte("a1")}, {"b", []byte("b1")}, {"", []byte("pong")}, {"a", []byte("a2")}, {"b", []byte("b2")}} {
		c.queue = append(c.queue, f)
		c.queued += len(f.data)
	}
	room := c.room

	// when conversation a is unsubscribed
	c.unqueue(conversation.ID("a"))

	// then only b's frames and the reply remain, in order, and the byte count follows
	var got []string
	for _, f := range c.queue {
		got = append(got, string(f.data))
	}
	if len(got) != 3 || got[0] != "b1" || got[1] != "pong" || got[2] != "b2" {
		t.Fatalf("queue after unsubscribe: %v", got)
	}
	if c.queued != len("b1pongb2") {
		t.Fatalf("queued bytes %d, want %d", c.queued, len("b1pongb2"))
	}
	select {
	case <-room: // backlog paging waiting for room was woken
	default:
		t.Fatal("waiters for room were not woken")
	}
}
