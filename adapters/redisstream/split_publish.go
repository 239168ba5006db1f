package redisstream

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/application/delivery"
)

// publishSplit publishes when the fan-out stream has partitions (FanoutPartitions.Split), in two
// pipelined round trips whose every script stays in one hash slot:
//
//  1. per conversation, publish_entries.lua on the conversation stream alone: the entries in
//     seq order, with the same checks and statuses as the atomic publish, and the legacy channel
//     (plain PUBLISH, which a script may send anywhere);
//  2. per conversation, publish_fanout.lua on its partition (the {p} slot) for every entry step 1
//     holds, written now or before, and SPUBLISH on the live channel (its own slot) for those
//     written now, after the stream entry as the live listener expects.
//
// A message is Done only when both halves hold it, so a crash between them leaves its outbox
// row; publishing it again finds the conversation entry (status 0) and writes the fan-out entry
// then, once: the partition's last-seq key of the conversation refuses a second copy.
func (p *DualStreamPublisher) publishSplit(ctx context.Context, byConversation [][]Entry, strict bool) (PublishResult, error) {
	liveCmd, err := p.liveCommand(ctx)
	if err != nil {
		return PublishResult{}, fmt.Errorf("ask Redis for its Pub/Sub commands: %w", err)
	}
	pipe := p.client.Pipeline()
	cmds := make([]*redis.Cmd, len(byConversation))
	for i, entries := range byConversation {
		cmds[i] = publishEntries.EvalSha(ctx, pipe, []string{ConversationStream(entries[0].ConversationID)},
			p.conversationArgs(entries, strict, "")...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below

	var res PublishResult
	// held[i] are the statuses of conversation i's leading entries that its stream holds (1 new,
	// 2 new but behind the top, 0 there before); the rest were deferred or failed.
	held := make([][]int64, len(byConversation))
	firstErr := eachStatus(cmds, byConversation, &res, func(i, _ int, v int64) { held[i] = append(held[i], v) })

	pipe = p.client.Pipeline()
	fanout, err := p.queueFanout(ctx, pipe, byConversation, held, strict, liveCmd)
	if err != nil {
		return res, keepFirst(firstErr, err)
	}
	_, _ = pipe.Exec(ctx) // a failed live publish is covered by the live re-checks; the rest below
	return res, keepFirst(firstErr, readFanout(fanout, byConversation, held, &res))
}

// queueFanout queues, for the entries each conversation's stream holds, the fan-out script on
// the conversation's partition and the live publish of those written now.
func (p *DualStreamPublisher) queueFanout(ctx context.Context, pipe redis.Pipeliner, byConversation [][]Entry, held [][]int64,
	strict bool, liveCmd string) ([]*redis.Cmd, error) {
	fanout := make([]*redis.Cmd, len(byConversation))
	mode := "0"
	if strict {
		mode = "1"
	}
	for i, entries := range byConversation {
		if len(held[i]) == 0 {
			continue
		}
		conv := entries[0].ConversationID
		part := p.partitions.Of(conv)
		live := p.partitions.liveChannelIn(part, conv)
		args := make([]any, 0, 3+16*len(held[i]))
		args = append(args, conv, mode, int64(fanoutLastSeqTTL/time.Second))
		for j, e := range entries[:len(held[i])] {
			fields, err := fanoutFields(e)
			if err != nil {
				return nil, fmt.Errorf("encode the fan-out entry of %s seq %d: %w", conv, e.Seq, err)
			}
			args = append(args, e.Seq, len(fields)/2)
			args = append(args, fields...)
			if held[i][j] != 0 {
				pipe.Do(ctx, liveCmd, live,
					EncodeLive(delivery.Item{Seq: e.Seq, CreatedAtMs: e.CreatedAt.UnixMilli(), JSON: e.Payload}))
			}
		}
		fanout[i] = publishFanout.EvalSha(ctx, pipe,
			[]string{p.partitions.Stream(part), p.partitions.Index(part), p.partitions.LastSeq(part, conv)}, args...)
	}
	return fanout, nil
}

// readFanout reads publish_fanout.lua's answers into res; an entry is Done once both halves
// hold it.
func readFanout(fanout []*redis.Cmd, byConversation [][]Entry, held [][]int64, res *PublishResult) error {
	var firstErr error
	for i, cmd := range fanout {
		if cmd == nil {
			continue
		}
		statuses, err := cmd.Slice()
		if err != nil {
			firstErr = keepFirst(firstErr, fmt.Errorf("publish the fan-out entries of conversation %s: %w", byConversation[i][0].ConversationID, err))
			continue
		}
		for j := range held[i] {
			// strict mode stops at its first deferral: the entries after it have no status, and
			// are deferred as well
			written := int64(-1)
			if j < len(statuses) {
				written, _ = statuses[j].(int64)
			}
			if written < 0 {
				// the conversation half wrote it (live delivery has it); the relay writes the
				// fan-out entry, counted then as repaired, so the message counts once as added
				res.Deferred++
				if held[i][j] != 0 {
					res.Added++
				}
				if held[i][j] == 2 {
					res.Behind++
				}
				continue
			}
			res.Done = append(res.Done, byConversation[i][j].OutboxID)
			switch {
			case held[i][j] == 1:
				res.Added++
			case held[i][j] == 2:
				res.Added++
				res.Behind++
			case written == 1:
				res.FanoutRepaired++
			default:
				res.Duplicates++
			}
		}
	}
	return firstErr
}
