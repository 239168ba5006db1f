package redisstream

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/domain/conversation"
)

// RedriveStats count pending fan-out entries found trimmed away before their group acked them.
type RedriveStats struct {
	// Republished: the message was found in Postgres and written to the fan-out stream again.
	// Unrecoverable: not even the index named it; acked so it stops blocking, and logged.
	Republished, Unrecoverable int64
}

type redriveCounts struct{ Republished, Unrecoverable atomic.Int64 }

// redriver handles a pending entry whose data is gone (trimmed by hand, or by MAXLEN from
// elsewhere): watermill-redisstream would XCLAIM nothing and ack it, silently. Instead the
// index names its (conversation, seq), the message is read from Postgres and published to the
// fan-out stream again with the same event id (handlers deduplicate by it), and the dead id is acked.
type redriver struct {
	client  redis.UniversalClient
	history HistoryReader
	stats   *redriveCounts
	log     *slog.Logger
}

// shouldClaim is watermill-redisstream's ShouldClaimPendingMessage: claim what still exists in
// stream (one partition of the fan-out stream), redrive what does not.
func (r redriver) shouldClaim(ctx context.Context, stream, group string, xp redis.XPendingExt) bool {
	entries, err := r.client.XRangeN(ctx, stream, xp.ID, xp.ID, 1).Result()
	if err != nil || len(entries) == 1 {
		return true
	}
	if err := r.redrive(ctx, stream, group, xp.ID); err != nil {
		r.log.Error("a pending fan-out entry was trimmed before it was acknowledged and could not be re-published",
			"consumer_group", group, "entry_id", xp.ID, "error", err)
	}
	return false
}

// redrive finds id in the index kept beside stream (same partition, same hash slot) and
// re-publishes its message to stream: the conversation's partition, since that is where its
// entry was.
func (r redriver) redrive(ctx context.Context, stream, group, id string) error {
	ms, _, _ := strings.Cut(id, "-")
	members, err := r.client.ZRangeByScore(ctx, fanoutIndexOf(stream), &redis.ZRangeBy{Min: ms, Max: ms}).Result()
	if err != nil {
		return err
	}
	for _, m := range members {
		parts := strings.Split(m, "|")
		if len(parts) != 3 || parts[0] != id {
			continue
		}
		seq, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			return fmt.Errorf("bad index member %q", m)
		}
		if err := r.republish(ctx, stream, conversation.ID(parts[1]), seq); err != nil {
			return err
		}
		r.stats.Republished.Add(1)
		r.log.Warn("pending fan-out entry was trimmed before it was acknowledged; re-published it from Postgres",
			"consumer_group", group, "entry_id", id, "conversation_id", parts[1], "seq", seq)
		return r.client.XAck(ctx, stream, group, id).Err()
	}
	r.stats.Unrecoverable.Add(1)
	if err := r.client.XAck(ctx, stream, group, id).Err(); err != nil {
		return err
	}
	return fmt.Errorf("the fan-out index does not name it either; acknowledged it so it stops blocking the group")
}

func (r redriver) republish(ctx context.Context, stream string, conv conversation.ID, seq int64) error {
	msgs, err := r.history.MessagesAfter(ctx, conv, seq-1, 1)
	if err != nil {
		return err
	}
	if len(msgs) != 1 || msgs[0].Seq != seq {
		return fmt.Errorf("message %s seq %d is not in Postgres", conv, seq)
	}
	values, err := fanoutEntry(msgs[0], nil)
	if err != nil {
		return err
	}
	return r.client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: values}).Err()
}
