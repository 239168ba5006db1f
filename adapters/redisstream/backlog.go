package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
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
	items := contiguous(entries, after)
	if len(items) > 0 && len(items) < len(entries) {
		// a hole inside the page (Redis lost entries: a failover, a cut AOF): the rest of the
		// page comes from Postgres, so that a short page still means "nothing more"
		more, err := b.fromPostgres(ctx, conv, items[len(items)-1].Seq, limit-len(items))
		if err != nil {
			return nil, delivery.FromRedis, err
		}
		return append(items, more...), delivery.FromRedis, nil
	}
	if len(items) > 0 {
		return items, delivery.FromRedis, nil
	}
	items, err = b.fromPostgres(ctx, conv, after, limit)
	return items, delivery.FromPostgres, err
}

func (b *Backlog) fromPostgres(ctx context.Context, conv conversation.ID, after int64, limit int) ([]delivery.Item, error) {
	msgs, err := b.history.MessagesAfter(ctx, conv, after, limit)
	if err != nil {
		return nil, err
	}
	items := make([]delivery.Item, len(msgs))
	for i, m := range msgs {
		data, err := messagejson.Encode(m)
		if err != nil {
			return nil, fmt.Errorf("encode message: %w", err)
		}
		items[i] = delivery.Item{Seq: m.Seq, JSON: data}
	}
	return items, nil
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

// Tops returns the seq of each conversation stream's newest entry (0 for an empty or missing
// stream), in one pipeline: what the live listener compares its subscriptions against.
func (b *Backlog) Tops(ctx context.Context, convs []conversation.ID) (map[conversation.ID]int64, error) {
	pipe := b.client.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(convs))
	for i, conv := range convs {
		cmds[i] = pipe.XRevRangeN(ctx, ConversationStream(string(conv)), "+", "-", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	tops := make(map[conversation.ID]int64, len(convs))
	for i, cmd := range cmds {
		entries, _ := cmd.Result()
		if len(entries) == 0 {
			continue
		}
		seqPart, _, _ := strings.Cut(entries[0].ID, "-")
		if seq, err := strconv.ParseInt(seqPart, 10, 64); err == nil {
			tops[convs[i]] = seq
		}
	}
	return tops, nil
}
