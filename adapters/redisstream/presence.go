package redisstream

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/domain/conversation"
)

// PresenceTTL is how long an instance's claim that a user is online lasts without a heartbeat,
// so a crashed instance's users go offline by themselves.
const PresenceTTL = 30 * time.Second

// Presence records which users hold a live connection anywhere: the hash presence:{user_id}
// has one field per instance, valued with the time (ms) until which that instance vouches.
type Presence struct {
	client   redis.UniversalClient
	instance string
}

func NewPresence(client redis.UniversalClient, instance ConsumerName) *Presence {
	if client == nil {
		panic("redisstream.NewPresence: nil client")
	}
	return &Presence{client: client, instance: string(instance)}
}

func presenceKey(u conversation.UserID) string { return "presence:" + string(u) }

// Vouch marks users online from this instance until now + PresenceTTL (a heartbeat).
func (p *Presence) Vouch(ctx context.Context, users []conversation.UserID) error {
	until := strconv.FormatInt(time.Now().Add(PresenceTTL).UnixMilli(), 10)
	pipe := p.client.Pipeline()
	for _, u := range users {
		pipe.HSet(ctx, presenceKey(u), p.instance, until)
		pipe.PExpire(ctx, presenceKey(u), PresenceTTL)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Leave withdraws this instance's claim for a user who has no connection here any more.
func (p *Presence) Leave(ctx context.Context, u conversation.UserID) error {
	return p.client.HDel(ctx, presenceKey(u), p.instance).Err()
}
