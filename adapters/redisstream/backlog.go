package redisstream

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/domain/conversation"
)

// HistoryReader is the Postgres side of the backlog (the read model).
type HistoryReader interface {
	MessagesAfter(ctx context.Context, id conversation.ID, afterSeq int64, limit int) ([]conversation.Message, error)
}

// Backlog serves missed messages from the conversation stream (XRANGE (<seq>-0 +) while it
// still holds them, and from Postgres for whatever it does not: trimmed, flushed or lost.
type Backlog struct {
	client  redis.UniversalClient
	history HistoryReader
	log     *slog.Logger
}

func NewBacklog(client redis.UniversalClient, history HistoryReader, log *slog.Logger) *Backlog {
	if client == nil || history == nil || log == nil {
		panic("redisstream.NewBacklog: nil dependency")
	}
	return &Backlog{client: client, history: history, log: log}
}

var _ delivery.Source = (*Backlog)(nil)

func (b *Backlog) After(ctx context.Context, conv conversation.ID, after int64, limit int) ([]delivery.Item, delivery.Origin, error) {
	entries, err := b.client.XRangeN(ctx, ConversationStream(string(conv)), "("+conversation.StreamID(after), "+", int64(limit)).Result()
	if err != nil && ctx.Err() == nil {
		b.log.Debug("conversation stream unreadable; reading Postgres", "conversation_id", conv, "error", err)
	}
	if items := contiguous(entries, after); len(items) > 0 {
		return items, delivery.FromRedis, nil
	}
	msgs, err := b.history.MessagesAfter(ctx, conv, after, limit)
	if err != nil {
		return nil, delivery.FromPostgres, err
	}
	items := make([]delivery.Item, len(msgs))
	for i, m := range msgs {
		data, err := json.Marshal(m)
		if err != nil {
			return nil, delivery.FromPostgres, fmt.Errorf("encode message: %w", err)
		}
		items[i] = delivery.Item{Seq: m.Seq, JSON: data}
	}
	return items, delivery.FromPostgres, nil
}

// contiguous keeps the entries that continue after+1, after+2, ... without a hole.
func contiguous(entries []redis.XMessage, after int64) []delivery.Item {
	var items []delivery.Item
	next := after + 1
	for _, e := range entries {
		seqPart, _, _ := strings.Cut(e.ID, "-")
		seq, err := strconv.ParseInt(seqPart, 10, 64)
		payload, ok := e.Values["payload"].(string)
		if err != nil || seq != next || !ok {
			break
		}
		items = append(items, delivery.Item{Seq: seq, JSON: []byte(payload)})
		next++
	}
	return items
}
