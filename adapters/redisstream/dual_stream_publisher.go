package redisstream

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/nova-chat/nova/domain/conversation"
)

// Entry is one stored message on its way to Redis.
type Entry struct {
	OutboxID       int64
	ConversationID string
	Seq            int64
	MessageID      string
	SenderID       string
	CreatedAt      time.Time
	Payload        []byte // the Message JSON
	// Participants of the conversation when the message was posted, carried in the fan-out
	// entry so consumer groups need not read Postgres per message; nil when unknown.
	Participants []string
}

// Config of the dual-stream publisher.
type (
	StreamMaxLen int64
	PubSubCompat bool
)

var (
	//go:embed publish_entries.lua
	publishEntriesLua string
	//go:embed publish_fanout.lua
	publishFanoutLua string

	publishEntries = redis.NewScript(publishEntriesLua)
	publishFanout  = redis.NewScript(publishFanoutLua)
)

// fanoutLastSeqTTL is how long a partition remembers the last seq of a conversation it wrote:
// far longer than an outbox row waits to be published again.
const fanoutLastSeqTTL = 7 * 24 * time.Hour

// scriptLoadTimeout bounds a load of the publish scripts, which runs on past the context of the
// caller that started it (loadScripts).
const scriptLoadTimeout = 10 * time.Second

// DualStreamPublisher writes each message to its conversation stream with the explicit id
// <seq>-0, to the fan-out stream, to the live channel and (in compatibility mode) to the legacy
// Pub/Sub channel. With one fan-out partition, one Lua script per conversation does it all
// atomically and in seq order: Redis refuses an id that is not above the stream's top, so a
// re-sent entry is recognised and written nowhere. With more, the fan-out partition is in
// another hash slot, and the publish is split (see publishSplit).
type DualStreamPublisher struct {
	client     redis.UniversalClient
	maxLen     StreamMaxLen
	pubsub     PubSubCompat
	partitions FanoutPartitions
	liveCmd    atomic.Pointer[string] // SPUBLISH or PUBLISH, asked of Redis once
	// loaded says Redis holds the scripts, as far as this publisher knows (cleared on NOSCRIPT);
	// loads makes the callers that need them at one moment (the fast path's lanes, the relay)
	// share one SCRIPT LOAD.
	loaded atomic.Bool
	loads  singleflight.Group
}

func NewDualStreamPublisher(client redis.UniversalClient, maxLen StreamMaxLen, pubsub PubSubCompat,
	partitions FanoutPartitions) *DualStreamPublisher {
	if client == nil {
		panic("redisstream.NewDualStreamPublisher: nil client")
	}
	return &DualStreamPublisher{client: client, maxLen: maxLen, pubsub: pubsub, partitions: partitions}
}

// PublishResult says which entries Redis now holds (Done) and how many of them were new.
type PublishResult struct {
	Done []int64 // outbox ids written now or found written before
	// Added counts messages this call wrote to their conversation stream (with partitions, also
	// those whose fan-out half it deferred to the relay)
	Added      int
	Duplicates int
	Deferred   int // strict mode only: left to the relay
	// Behind counts messages the conversation stream had moved past without holding them (lost
	// or trimmed): their fan-out entry and live copy were written; catch-up reads them from Postgres.
	Behind int
	// FanoutRepaired (split publish only) counts re-sent messages the conversation stream held
	// whose fan-out entry was missing, written now: a publish stopped between its halves, or (in
	// normal operation) a fast path whose fan-out half was deferred behind another instance's.
	FanoutRepaired int
}

// Publish writes batches of entries. Each conversation's entries must be in seq order; a
// conversation stops at its first failure so a later seq can never hide an earlier one.
func (p *DualStreamPublisher) Publish(ctx context.Context, byConversation [][]Entry) (PublishResult, error) {
	return p.run(ctx, byConversation, false)
}

// PublishNext is the fast path right after a commit: a message is written only if it directly
// follows its stream's last entry (seq = top + 1). Anything else is Deferred to the relay, since
// another instance may be publishing the seq before it at this very moment.
func (p *DualStreamPublisher) PublishNext(ctx context.Context, byConversation [][]Entry) (PublishResult, error) {
	return p.run(ctx, byConversation, true)
}

func (p *DualStreamPublisher) run(ctx context.Context, byConversation [][]Entry, strict bool) (PublishResult, error) {
	publish := p.publish
	if p.partitions.Split() {
		publish = p.publishSplit
	}
	// Loaded up front: the fast path's lanes would otherwise all meet an empty script cache on a
	// fresh Redis, and each would run its whole batch twice.
	if err := p.loadScripts(ctx); err != nil {
		return PublishResult{}, err
	}
	res, err := publish(ctx, byConversation, strict)
	if err != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		// Redis lost its script cache (a restart, a failover to a fresh master): load the scripts
		// (the other callers wait for that load instead of meeting NOSCRIPT too) and run the batch
		// again (what was written is recognised as such and counted as a duplicate).
		p.loaded.Store(false)
		if lerr := p.loadScripts(ctx); lerr != nil {
			return res, lerr
		}
		return publish(ctx, byConversation, strict)
	}
	return res, err
}

// loadScripts loads the publish scripts (on every master of a cluster) unless they are loaded,
// once for all the callers that ask while a load is on its way. The load does not end with the
// context of the caller that started it: a caller that gives up (its context ended) gets its
// context's error, and the load goes on for the others, bounded by scriptLoadTimeout.
func (p *DualStreamPublisher) loadScripts(ctx context.Context) error {
	if p.loaded.Load() {
		return nil
	}
	loading := p.loads.DoChan("scripts", func() (any, error) {
		if p.loaded.Load() {
			return nil, nil // a caller that looked just before the previous load ended
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), scriptLoadTimeout)
		defer cancel()
		for _, s := range []*redis.Script{publishEntries, publishFanout} {
			if err := s.Load(ctx, p.client).Err(); err != nil {
				return nil, fmt.Errorf("load publish script: %w", err)
			}
		}
		p.loaded.Store(true)
		return nil, nil
	})
	select {
	case r := <-loading:
		return r.Err
	case <-ctx.Done():
		return fmt.Errorf("load publish scripts: %w", ctx.Err())
	}
}

// Removed publishes a membership notice on conv's live channel (command.MembershipNotifier).
func (p *DualStreamPublisher) Removed(ctx context.Context, conv conversation.ID, user conversation.UserID) error {
	cmd, err := p.liveCommand(ctx)
	if err != nil {
		return err
	}
	return p.client.Do(ctx, cmd, p.partitions.LiveChannel(string(conv)), EncodeRemoved(string(user))).Err()
}

// liveCommand is how live channels are published: sharded where Redis has it (7.0+).
func (p *DualStreamPublisher) liveCommand(ctx context.Context) (string, error) {
	if cmd := p.liveCmd.Load(); cmd != nil {
		return *cmd, nil
	}
	sharded, err := HasShardedPubSub(ctx, p.client)
	if err != nil {
		return "", err
	}
	cmd := "PUBLISH"
	if sharded {
		cmd = "SPUBLISH"
	}
	p.liveCmd.Store(&cmd)
	return cmd, nil
}

func (p *DualStreamPublisher) publish(ctx context.Context, byConversation [][]Entry, strict bool) (PublishResult, error) {
	liveCmd, err := p.liveCommand(ctx)
	if err != nil {
		return PublishResult{}, fmt.Errorf("ask Redis for its Pub/Sub commands: %w", err)
	}
	pipe := p.client.Pipeline()
	cmds := make([]*redis.Cmd, len(byConversation))
	for i, entries := range byConversation {
		cmds[i] = publishEntries.EvalSha(ctx, pipe, []string{ConversationStream(entries[0].ConversationID), FanoutStream, FanoutIndex},
			p.conversationArgs(entries, strict, liveCmd)...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below

	var res PublishResult
	firstErr := eachStatus(cmds, byConversation, &res, func(i, j int, v int64) {
		res.Done = append(res.Done, byConversation[i][j].OutboxID)
		switch v {
		case 1:
			res.Added++
		case 2:
			res.Added++
			res.Behind++
		default:
			res.Duplicates++
		}
	})
	return res, firstErr
}

// eachStatus reads publish_entries.lua's answers, one per conversation in byConversation:
// it counts deferred entries in res, calls held for every entry the stream holds (status 1 new,
// 2 new but behind the top, 0 there before) and returns the first error, a failed call or an
// entry's error text.
func eachStatus(cmds []*redis.Cmd, byConversation [][]Entry, res *PublishResult, held func(i, j int, status int64)) error {
	var firstErr error
	for i, cmd := range cmds {
		statuses, err := cmd.Slice()
		if err != nil {
			firstErr = keepFirst(firstErr, fmt.Errorf("publish conversation %s: %w", byConversation[i][0].ConversationID, err))
			continue
		}
		for j, st := range statuses {
			switch v := st.(type) {
			case int64:
				if v < 0 {
					res.Deferred++
					continue
				}
				held(i, j, v)
			case string:
				firstErr = keepFirst(firstErr, fmt.Errorf("publish conversation %s seq %d: %s",
					byConversation[i][j].ConversationID, byConversation[i][j].Seq, v))
			}
		}
	}
	return firstErr
}

// conversationArgs are publish_entries.lua's arguments for one conversation's entries; liveCmd
// "" leaves the live channel to the caller.
func (p *DualStreamPublisher) conversationArgs(entries []Entry, strict bool, liveCmd string) []any {
	conv := entries[0].ConversationID
	channel := ""
	if p.pubsub {
		channel = PubSubChannel(conv)
	}
	mode := "0"
	if strict {
		mode = "1"
	}
	args := make([]any, 0, 6+6*len(entries))
	args = append(args, int64(p.maxLen), channel, conv, mode, LiveChannel(conv), liveCmd)
	for _, e := range entries {
		args = append(args, e.Seq, e.SenderID, e.CreatedAt.UnixMilli(), e.MessageID, e.Payload, strings.Join(e.Participants, ","))
	}
	return args
}

func keepFirst(first, next error) error {
	if first != nil {
		return first
	}
	return next
}
