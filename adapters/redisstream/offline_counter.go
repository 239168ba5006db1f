package redisstream

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/domain/conversation"
)

const (
	OfflineTTL = 24 * time.Hour
	// handledTTL is how long an event id is remembered as handled by a consumer group.
	handledTTL = 7 * 24 * time.Hour
)

//go:embed count_offline.lua
var countOfflineLua string

var countOffline = redis.NewScript(countOfflineLua)

// OfflineCounter keeps offline:{user_id}:{conversation_id}: messages that arrived while the user
// had no connection anywhere.
type OfflineCounter struct{ client redis.UniversalClient }

func NewOfflineCounter(client redis.UniversalClient) *OfflineCounter {
	if client == nil {
		panic("redisstream.NewOfflineCounter: nil client")
	}
	return &OfflineCounter{client: client}
}

func OfflineKey(u conversation.UserID, c conversation.ID) string {
	return "offline:" + string(u) + ":" + string(c)
}

// HandledKey remembers that a consumer group applied an event's effect.
func HandledKey(group, eventID string) string { return "nova:handled:" + group + ":" + eventID }

// CountOffline adds one to the counter of each recipient who has no live connection anywhere
// (their presence hash, see Presence), once per event id: the mark, the presence check and the
// increments are one script, so a redelivered event (claimed after a crash, or read twice)
// changes nothing, and a message costs one round trip. It reports whether the event was new.
func (o *OfflineCounter) CountOffline(ctx context.Context, group, eventID string, conv conversation.ID, recipients []conversation.UserID) (bool, error) {
	keys := make([]string, 0, 1+2*len(recipients))
	keys = append(keys, HandledKey(group, eventID))
	for _, u := range recipients {
		keys = append(keys, OfflineKey(u, conv), presenceKey(u))
	}
	n, err := countOffline.Run(ctx, o.client, keys, int64(handledTTL/time.Second), int64(OfflineTTL/time.Second),
		time.Now().UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("count offline messages: %w", err)
	}
	return n >= 1, nil
}

// Clear resets a user's counter for a conversation (they subscribed or acknowledged it).
func (o *OfflineCounter) Clear(ctx context.Context, u conversation.UserID, c conversation.ID) error {
	return o.client.Del(ctx, OfflineKey(u, c)).Err()
}
