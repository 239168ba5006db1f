package testinfra

import (
	"github.com/google/uuid"

	"github.com/nova-chat/nova/events"
)

// ConversationIn returns a new conversation id whose partition among n is p (events.Partition:
// the fan-out partition, and the fast path's lane).
func ConversationIn(p, n int) string {
	for {
		if conv := uuid.NewString(); events.Partition(conv, n) == p {
			return conv
		}
	}
}
