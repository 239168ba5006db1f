package redisstream_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
)

// historyOf is the Postgres side holding seq 1..n of one conversation.
type historyOf struct {
	conv conversation.ID
	n    int64
}

func (h historyOf) MessagesAfter(_ context.Context, conv conversation.ID, after int64, limit int) ([]conversation.Message, error) {
	var out []conversation.Message
	for seq := after + 1; seq <= h.n && len(out) < limit && conv == h.conv; seq++ {
		out = append(out, conversation.Message{ConversationID: conv, Seq: seq, ID: fmt.Sprint(seq)})
	}
	return out, nil
}

func TestBacklogContinuesFromPostgresPastAHoleInTheStream(t *testing.T) {
	rdb := testinfra.StartRedis(t).Client()
	ctx := context.Background()
	const conv = conversation.ID("c1")
	// given Postgres holds 1..8 and the stream lost 4 and 5 (a failover, a cut AOF)
	for _, seq := range []int64{1, 2, 3, 6, 7, 8} {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: redisstream.ConversationStream(string(conv)), ID: conversation.StreamID(seq),
			Values: map[string]any{"payload": fmt.Sprintf(`{"seq":%d}`, seq)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	backlog := redisstream.NewBacklog(rdb, historyOf{conv: conv, n: 8}, quiet)

	// when a subscription catches up from 0
	page, _, err := backlog.After(ctx, conv, 0, 500)

	// then one page brings 1..8 in order: the hole is filled from Postgres, not where it stops
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range page {
		if it.Seq != int64(i+1) {
			t.Fatalf("page has seq %d at %d", it.Seq, i)
		}
	}
	if len(page) != 8 {
		t.Fatalf("page of %d messages, want 8", len(page))
	}
}
