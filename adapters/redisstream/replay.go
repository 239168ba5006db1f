package redisstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/events"
)

// StoredMessages pages through stored messages in (created_at, conversation, seq) order.
type StoredMessages interface {
	MessagesCreatedSince(ctx context.Context, since time.Time, after *conversation.Message, limit int) ([]conversation.Message, error)
}

// Replay writes every message stored at or after since (and before until, unless zero) to
// group's replay stream (events.ReplayStream), in pages of 1,000, oldest first; progress hears
// the running count after each page. It returns how many it wrote. Running it twice writes the
// messages twice: consumers deduplicate by event id, as for any re-delivery.
func Replay(ctx context.Context, client redis.UniversalClient, stored StoredMessages, group string,
	since, until time.Time, progress func(n int)) (int, error) {
	const page = 1000
	var after *conversation.Message
	n := 0
	for {
		msgs, err := stored.MessagesCreatedSince(ctx, since, after, page)
		if err != nil {
			return n, err
		}
		pipe := client.Pipeline()
		done := len(msgs) < page
		for _, m := range msgs {
			if !until.IsZero() && !m.CreatedAt.Before(until) {
				done = true
				break
			}
			values, err := fanoutEntry(m, nil)
			if err != nil {
				return n, fmt.Errorf("encode %s seq %d: %w", m.ConversationID, m.Seq, err)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: events.ReplayStream(group), Values: values})
			n++
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return n, fmt.Errorf("write the replay stream: %w", err)
		}
		if progress != nil {
			progress(n)
		}
		if done || len(msgs) == 0 {
			return n, nil
		}
		last := msgs[len(msgs)-1]
		after = &last
	}
}
