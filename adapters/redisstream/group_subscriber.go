package redisstream

import (
	"cmp"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// GroupConfig tunes consumer groups: when a pending entry counts as abandoned by a dead consumer,
// how often survivors look for such entries, and when an idle consumer with nothing pending is removed.
type GroupConfig struct {
	ClaimIdle       time.Duration
	ClaimInterval   time.Duration
	ConsumerTimeout time.Duration
	// NackResendSleep paces redelivery of a nacked message (the router nacks only when even the
	// dead-letter write failed, e.g. Redis is down); zero means 250 ms.
	NackResendSleep time.Duration
}

// GroupSubscribers makes one Watermill subscriber per consumer group on the fan-out stream.
type GroupSubscribers struct {
	url      URL
	history  HistoryReader
	Redrive  RedriveStats
	decode   wredis.Unmarshaller
	consumer string
	cfg      GroupConfig
	log      *slog.Logger
	claims   sync.Map // group -> *atomic.Int64
}

// ConsumerName is this instance's consumer name inside every group (NOVA_INSTANCE_ID).
type ConsumerName string

// NewGroupSubscribers makes subscribers that decode entries with decode (the port's unmarshaller).
func NewGroupSubscribers(url URL, consumer ConsumerName, cfg GroupConfig, decode wredis.Unmarshaller,
	history HistoryReader, log *slog.Logger) *GroupSubscribers {
	if log == nil || consumer == "" || decode == nil || history == nil {
		panic("redisstream.NewGroupSubscribers: nil dependency")
	}
	return &GroupSubscribers{url: url, decode: decode, history: history, consumer: string(consumer), cfg: cfg, log: log}
}

// For returns a subscriber for group. Each has its own Redis client, since closing a
// watermill-redisstream subscriber closes its client.
func (g *GroupSubscribers) For(ctx context.Context, group string) (message.Subscriber, error) {
	client, _, err := NewClient(ctx, g.url)
	if err != nil {
		return nil, err
	}
	log := g.log.With("consumer_group", group)
	client.AddHook(claimCounter{g.claimsOf(group)})
	// the library's hooks get no context: theirs is the one the subscriber was made for
	hookCtx := context.WithoutCancel(ctx)
	return wredis.NewSubscriber(wredis.SubscriberConfig{
		Client:                        client,
		Unmarshaller:                  g.decode,
		NackResendSleep:               cmp.Or(g.cfg.NackResendSleep, 250*time.Millisecond),
		Consumer:                      g.consumer,
		ConsumerGroup:                 group,
		OldestId:                      "0",
		ClaimInterval:                 g.cfg.ClaimInterval,
		MaxIdleTime:                   g.cfg.ClaimIdle,
		CheckConsumersInterval:        g.cfg.ConsumerTimeout / 4,
		ConsumerTimeout:               g.cfg.ConsumerTimeout, // the library only removes consumers with nothing pending
		BlockTime:                     500 * time.Millisecond,
		DisableIndefiniteInitialBlock: true,
		ShouldClaimPendingMessage: func(xp redis.XPendingExt) bool {
			return redriver{client: client, history: g.history, stats: &g.Redrive, log: log}.
				shouldClaim(hookCtx, group, xp)
		},
		ShouldStopOnReadErrors: func(err error) bool {
			recreateGroupIfLost(hookCtx, client, group, err, log)
			return false
		},
	}, watermill.NewSlogLoggerWithLevelMapping(log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}))
}

// recreateGroupIfLost handles NOGROUP: Redis came back empty (or the group was deleted), and
// watermill-redisstream only creates its group when it subscribes. Recreating it from "0"
// reads the new stream from its start; BUSYGROUP means another instance was faster.
func recreateGroupIfLost(ctx context.Context, client redis.UniversalClient, group string, readErr error, log *slog.Logger) {
	if readErr == nil || !strings.Contains(readErr.Error(), "NOGROUP") {
		return
	}
	err := client.XGroupCreateMkStream(ctx, FanoutStream, group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		log.Warn("consumer group lost and not yet recreated", "error", err)
		return
	}
	log.Warn("consumer group was lost (Redis restarted empty?); recreated it", "stream", FanoutStream)
}

// Claims returns, per consumer group, how many pending entries this instance has taken over
// (XCLAIM) after they sat idle for NOVA_CLAIM_IDLE: work left behind by a dead consumer.
func (g *GroupSubscribers) Claims() map[string]int64 {
	out := map[string]int64{}
	g.claims.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func (g *GroupSubscribers) claimsOf(group string) *atomic.Int64 {
	n, _ := g.claims.LoadOrStore(group, new(atomic.Int64))
	return n.(*atomic.Int64)
}

// claimCounter counts the entries that XCLAIM calls on a subscriber's client hand over; the
// library offers no other hook into its claim loop.
type claimCounter struct{ n *atomic.Int64 }

func (claimCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h claimCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if c, ok := cmd.(*redis.XMessageSliceCmd); ok && err == nil && cmd.Name() == "xclaim" {
			h.n.Add(int64(len(c.Val())))
		}
		return err
	}
}

func (claimCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
