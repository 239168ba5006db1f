package redisstream

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/jsonenc"
)

// ClientSyncTTL is how long an idle client's hot cursors live (renewed on every write).
const ClientSyncTTL = 30 * 24 * time.Hour

//go:embed advance_cursor.lua
var advanceCursorLua string

var advanceCursor = redis.NewScript(advanceCursorLua)

// ClientSyncCache is the hot copy of the cursors: the hash client:sync:{user_id}:{client_id},
// one field per conversation. Postgres holds the durable copy; this one may vanish.
type ClientSyncCache struct{ client redis.UniversalClient }

func NewClientSyncCache(client redis.UniversalClient) *ClientSyncCache {
	if client == nil {
		panic("redisstream.NewClientSyncCache: nil client")
	}
	return &ClientSyncCache{client: client}
}

func ClientSyncKey(user conversation.UserID, client clientsync.ClientID) string {
	return "client:sync:" + string(user) + ":" + string(client)
}

type cursorJSON struct {
	ClientID       clientsync.ClientID `json:"client_id"`
	UserID         conversation.UserID `json:"user_id"`
	ConversationID conversation.ID     `json:"conversation_id"`
	LastMessageID  string              `json:"last_message_id"`
	LastSeq        int64               `json:"last_seq"`
	LastSyncAt     time.Time           `json:"last_sync_at"`
}

// Advance moves the cursor forward (never back) and renews the hash's TTL, atomically.
func (c *ClientSyncCache) Advance(ctx context.Context, key clientsync.Key, seq int64, at time.Time) error {
	value, err := jsonenc.Marshal(cursorJSON{ClientID: key.Client, UserID: key.User, ConversationID: key.Conversation,
		LastMessageID: conversation.StreamID(seq), LastSeq: seq, LastSyncAt: at.UTC()})
	if err != nil {
		return err
	}
	err = advanceCursor.Run(ctx, c.client, []string{ClientSyncKey(key.User, key.Client)},
		string(key.Conversation), seq, value, int64(ClientSyncTTL/time.Second)).Err()
	if err != nil && err != redis.Nil {
		return fmt.Errorf("advance hot cursor: %w", err)
	}
	return nil
}

// AckedSeqs reads one client's hot cursors by conversation.
func (c *ClientSyncCache) AckedSeqs(ctx context.Context, user conversation.UserID, client clientsync.ClientID) (map[conversation.ID]int64, error) {
	fields, err := c.client.HGetAll(ctx, ClientSyncKey(user, client)).Result()
	if err != nil {
		return nil, fmt.Errorf("read hot cursors: %w", err)
	}
	out := make(map[conversation.ID]int64, len(fields))
	for conv, raw := range fields {
		var v cursorJSON
		if json.Unmarshal([]byte(raw), &v) == nil {
			out[conversation.ID(conv)] = v.LastSeq
		}
	}
	return out, nil
}
