package postgres

import (
	"time"

	"github.com/nova-chat/nova/domain/conversation"
)

// DecodeConversationEvent lets the repository tests replay what the events table holds.
var DecodeConversationEvent = decodeConversationEvent

// EncodeConversationEvent is the data column the repository writes for an event.
var EncodeConversationEvent = encodeConversationEvent

// MarkContended sends id's next writes on r the locked way, as if another instance had just
// written it.
func MarkContended(r *ConversationRepository, id conversation.ID) { r.cache.stale(id) }

// GroupWaiting counts the locked writes waiting for a group transaction on r.
func GroupWaiting(r *ConversationRepository) int {
	r.group.mu.Lock()
	defer r.group.mu.Unlock()
	return len(r.group.waiting)
}

// SetGroupLockTimeout changes how long r's group transactions wait for their row locks.
func SetGroupLockTimeout(r *ConversationRepository, d time.Duration) { r.group.lockTimeout = d }

// SetGroupCommitters sets how many group transactions r runs at once; 0 writes every locked
// write on its own.
func SetGroupCommitters(r *ConversationRepository, n int) { r.group.committers = n }

// PostWaiting counts the one-statement sends waiting for a batch on r.
func PostWaiting(r *ConversationRepository) int {
	r.posts.mu.Lock()
	defer r.posts.mu.Unlock()
	return len(r.posts.waiting)
}

// SetBatchSlotHold changes how long one of r's batches of sends keeps its turn.
func SetBatchSlotHold(r *ConversationRepository, d time.Duration) { r.posts.slotHold = d }

// SetBatchLockTimeout changes how long r's batches of sends wait for their row locks.
func SetBatchLockTimeout(r *ConversationRepository, d time.Duration) { r.posts.lockTimeout = d }
