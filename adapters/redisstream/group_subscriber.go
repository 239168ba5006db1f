package redisstream

import (
	"cmp"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// NackResendSleep paces redelivery of a nacked message (the router nacks a transient
	// failure that outlasted its retries, e.g. Postgres is down); zero means 250 ms.
	NackResendSleep time.Duration
	// BatchSize is the most entries one read takes (zero: 128); BatchWait is the pause after a
	// read that found fewer, so that entries arriving meanwhile are read and acked together
	// (zero: none; NOVA_GROUP_BATCH_WAIT); BlockTime is how long a read waits for new entries
	// (zero: 500 ms).
	BatchSize int
	BatchWait time.Duration
	BlockTime time.Duration
	// OwnerReadsAlone makes the owner of the one partition (the relay leader) its first reader
	// of new entries, the others reading only while the group stalls or falls behind on it
	// (NOVA_GROUP_READERS=owner); without it every instance reads it and takes a share. With
	// more partitions each one is always read by its owner first.
	OwnerReadsAlone bool
	// HelpAfter is the lag (entries of a stream not yet delivered to the group) from which the
	// instances that do not own the stream read it too, sharing the work until the lag is below
	// it again (checked once per stall check); zero: only when the group stalls.
	HelpAfter int
}

// GroupSubscribers makes one Watermill subscriber per consumer group on the fan-out stream; the
// router subscribes it to every partition.
type GroupSubscribers struct {
	url        URL
	partitions FanoutPartitions
	owner      PartitionOwner
	history    HistoryReader
	redrive    redriveCounts
	decode     wredis.Unmarshaller
	consumer   string
	cfg        GroupConfig
	log        *slog.Logger
	claims     groupCounts // entries taken over (XCLAIM)
	helped     groupCounts // entries read from partitions this instance does not own
	lagChecked sync.Once
}

// ConsumerName is this instance's consumer name inside every group (NOVA_INSTANCE_ID).
type ConsumerName string

// NewGroupSubscribers makes subscribers that decode entries with decode (the port's unmarshaller).
//
// With more than one partition, an instance reads the partitions its owner says it owns (nil:
// every partition), and another one only when that one's group stalls.
func NewGroupSubscribers(url URL, partitions FanoutPartitions, owner PartitionOwner, consumer ConsumerName, cfg GroupConfig,
	decode wredis.Unmarshaller, history HistoryReader, log *slog.Logger) *GroupSubscribers {
	if log == nil || consumer == "" || decode == nil || history == nil {
		panic("redisstream.NewGroupSubscribers: nil dependency")
	}
	return &GroupSubscribers{url: url, partitions: partitions, owner: owner, decode: decode, history: history,
		consumer: string(consumer), cfg: cfg, log: log}
}

// PartitionOwner says which fan-out partitions this instance reads for its consumer groups
// (the outbox relay: the partitions whose relay shards it leads). Each partition has one owner
// at a time, so the instances share the partitions instead of every instance reading every
// partition: with P partitions and N instances an instance makes P/N reads per batch wait, not P,
// and an instance that owns none handles no entry while the owners are alive and keep up (it
// reads a partition whose owner stalls or falls HelpAfter entries behind).
type PartitionOwner interface {
	LeadsShard(partition int) bool
}

// owns is the subscriber's read gate: nil (read every stream) without an owner, or with one
// partition unless its owner is to read it first (OwnerReadsAlone, NOVA_GROUP_READERS=owner).
func (g *GroupSubscribers) owns() func(stream string) bool {
	if g.owner == nil || !g.partitions.Split() && !g.cfg.OwnerReadsAlone {
		return nil
	}
	index := make(map[string]int, g.partitions.Count())
	for p, stream := range g.partitions.Streams() {
		index[stream] = p
	}
	return func(stream string) bool {
		p, ok := index[stream]
		return !ok || g.owner.LeadsShard(p)
	}
}

// For returns a subscriber for group (batchSubscriber), with its own Redis client: its
// blocking reads hold a connection each, one per partition, so its pool grows with them.
func (g *GroupSubscribers) For(ctx context.Context, group string) (message.Subscriber, error) {
	client, _, err := newClient(ctx, g.url, max(defaultPoolSize, 2*g.partitions.Count()+16))
	if err != nil {
		return nil, err
	}
	g.lagChecked.Do(func() { g.checkLagReported(ctx, client) })
	log := g.log.With("consumer_group", group)
	cfg := g.cfg
	cfg.NackResendSleep = cmp.Or(cfg.NackResendSleep, 250*time.Millisecond)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 128)
	cfg.BlockTime = cmp.Or(cfg.BlockTime, 500*time.Millisecond)
	rd := redriver{client: client, history: g.history, stats: &g.redrive, log: log}
	return &batchSubscriber{
		client: client, group: group, consumer: g.consumer, cfg: cfg, decode: g.decode, log: log,
		owns:    g.owns(),
		claims:  g.claims.of(group),
		helped:  g.helped.of(group),
		closing: make(chan struct{}),
		redrive: rd,
	}, nil
}

// checkLagReported warns (once, at the first subscriber) when owners read first and are to be
// helped when they fall HelpAfter entries behind, but Redis cannot say how far behind a group is:
// XINFO GROUPS reports a group's lag from Redis 7.0 on (before, go-redis reads 0), so on an older
// server only a stall brings help, and an owner that cannot keep up falls further behind.
func (g *GroupSubscribers) checkLagReported(ctx context.Context, client redis.UniversalClient) {
	if !g.helpsOnLag() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	major, err := redisMajorVersion(ctx, client)
	if err != nil {
		g.log.Debug("cannot ask Redis for its version; not checking that it reports consumer-group lag", "error", err)
		return
	}
	g.warnIfLagUnreported(major)
}

// helpsOnLag reports whether an instance reads a stream it does not own when the group falls
// behind on it: owners read first (partitions, or NOVA_GROUP_READERS=owner) and HelpAfter is set.
func (g *GroupSubscribers) helpsOnLag() bool {
	return g.cfg.HelpAfter > 0 && g.owns() != nil
}

// warnIfLagUnreported is checkLagReported's verdict on a server of this major version.
func (g *GroupSubscribers) warnIfLagUnreported(major int) {
	if major < 7 && g.helpsOnLag() {
		g.log.Warn("Redis before 7.0 does not report a consumer group's lag: an instance reads a partition it does not own "+
			"only when the owner stalls, not when it falls NOVA_GROUP_HELP_AFTER entries behind; "+
			"set NOVA_GROUP_READERS=all if one instance cannot keep up with a group's work", "redis_major_version", major)
	}
}

// Reachable pings Redis with a client of its own (closed again), within 2 s.
func (g *GroupSubscribers) Reachable(ctx context.Context) error {
	client, closeClient, err := NewClient(ctx, g.url)
	if err != nil {
		return err
	}
	defer closeClient()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return client.Ping(ctx).Err()
}

// recreateGroupIfLost handles NOGROUP: Redis came back empty (or the group was deleted), and
// watermill-redisstream only creates its group when it subscribes. Recreating it from "0"
// reads the new stream from its start; BUSYGROUP means another instance was faster.
func recreateGroupIfLost(ctx context.Context, client redis.UniversalClient, stream, group string, readErr error, log *slog.Logger) {
	if readErr == nil || !strings.Contains(readErr.Error(), "NOGROUP") {
		return
	}
	if err := ensureGroup(ctx, client, stream, group); err != nil {
		log.Warn("consumer group lost and not yet recreated", "stream", stream, "error", err)
		return
	}
	log.Warn("consumer group was lost (Redis restarted empty?); recreated it", "stream", stream)
}

// Claims returns, per consumer group, how many pending entries this instance has taken over
// (XCLAIM) after they sat idle for NOVA_CLAIM_IDLE: work left behind by a dead consumer.
func (g *GroupSubscribers) Claims() map[string]int64 { return g.claims.snapshot() }

// Helped returns, per consumer group, how many new entries this instance has read from fan-out
// partitions it does not own, while their owner stalled or was NOVA_GROUP_HELP_AFTER or more
// entries behind: work its owner could not do. Zero while owners keep up (and always with
// NOVA_GROUP_READERS=all and one partition, where every instance reads it).
func (g *GroupSubscribers) Helped() map[string]int64 { return g.helped.snapshot() }

// groupCounts are running totals by consumer group.
type groupCounts struct{ m sync.Map } // group -> *atomic.Int64

func (c *groupCounts) of(group string) *atomic.Int64 {
	n, _ := c.m.LoadOrStore(group, new(atomic.Int64))
	return n.(*atomic.Int64)
}

func (c *groupCounts) snapshot() map[string]int64 {
	out := map[string]int64{}
	c.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// RedriveStats returns how many trimmed pending entries were republished or found unrecoverable.
func (g *GroupSubscribers) RedriveStats() RedriveStats {
	return RedriveStats{Republished: g.redrive.Republished.Load(), Unrecoverable: g.redrive.Unrecoverable.Load()}
}
