package redisstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/application/monitoring"
)

const (
	// recentWindow is how many of the newest fan-out entries rank the conversations by traffic.
	recentWindow = 256
	// scanCap bounds the SCAN that finds conversation streams when the fan-out stream holds too
	// few recent entries (it is trimmed once every group has acknowledged).
	scanCap = 1000
)

// StreamInspector reads the streams and their consumer groups for monitoring, in a few pipelined
// round trips: XINFO STREAM and XINFO GROUPS per stream, then XINFO CONSUMERS and one XPENDING
// entry per group.
type StreamInspector struct {
	client     redis.UniversalClient
	partitions FanoutPartitions
}

func NewStreamInspector(client redis.UniversalClient, partitions FanoutPartitions) *StreamInspector {
	if client == nil {
		panic("redisstream.NewStreamInspector: nil client")
	}
	return &StreamInspector{client: client, partitions: partitions}
}

var _ monitoring.StreamSource = (*StreamInspector)(nil)

// Streams reads the fan-out stream (every partition), the dead-letter stream and up to busiest
// conversation streams: those with the most entries among the newest fan-out entries, else the
// longest found by SCAN.
func (i *StreamInspector) Streams(ctx context.Context, busiest int) ([]monitoring.Stream, error) {
	if err := i.client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	var list []monitoring.Stream
	for _, key := range i.partitions.Streams() {
		list = append(list, monitoring.Stream{Key: key, Kind: monitoring.KindFanout})
	}
	list = append(list, monitoring.Stream{Key: DeadLetterStream, Kind: monitoring.KindDeadLetter})
	convs, err := i.busiest(ctx, busiest)
	if err != nil {
		return nil, err
	}
	list = append(list, convs...)
	if err := i.describe(ctx, list); err != nil {
		return nil, err
	}
	return list, nil
}

// busiest ranks conversation streams by their share of the newest fan-out entries, and fills
// up from a bounded SCAN (by length) when those name fewer than n conversations.
func (i *StreamInspector) busiest(ctx context.Context, n int) ([]monitoring.Stream, error) {
	if n <= 0 {
		return nil, nil
	}
	// the newest entries of each partition, recentWindow in all (at least 16 of each)
	window := max(int64(recentWindow/i.partitions.Count()), 16)
	pipe := i.client.Pipeline()
	var reads []*redis.XMessageSliceCmd
	for _, stream := range i.partitions.Streams() {
		reads = append(reads, pipe.XRevRangeN(ctx, stream, "+", "-", window))
	}
	_, _ = pipe.Exec(ctx) // errors are read per command
	counts := map[string]int{}
	for _, read := range reads {
		recent, err := read.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read recent fan-out entries: %w", err)
		}
		for _, m := range recent {
			if key, _ := m.Values["stream_key"].(string); strings.HasPrefix(key, ConversationStream("")) {
				counts[key]++
			}
		}
	}
	out := make([]monitoring.Stream, 0, len(counts))
	for key, c := range counts {
		out = append(out, monitoring.Stream{Key: key, Kind: monitoring.KindConversation, RecentEntries: c})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].RecentEntries != out[b].RecentEntries {
			return out[a].RecentEntries > out[b].RecentEntries
		}
		return out[a].Key < out[b].Key
	})
	if len(out) >= n {
		return out[:n], nil
	}
	more, err := i.longest(ctx, n, counts)
	if err != nil {
		return nil, err
	}
	return append(out, more[:min(len(more), n-len(out))]...), nil
}

// longest scans at most scanCap conversation stream keys (on every master of a cluster) and
// returns them by length, longest first, skipping those in seen.
func (i *StreamInspector) longest(ctx context.Context, n int, seen map[string]int) ([]monitoring.Stream, error) {
	var keys []string
	scan := func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for len(keys) < scanCap {
			batch, next, err := c.ScanType(ctx, cursor, ConversationStream("*"), 500, "stream").Result()
			if err != nil {
				return err
			}
			for _, k := range batch {
				if _, dup := seen[k]; !dup {
					keys = append(keys, k)
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		return nil
	}
	var err error
	switch c := i.client.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex // ForEachMaster runs the scans concurrently; they share keys
		err = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return scan(ctx, m)
		})
	case *redis.Client:
		err = scan(ctx, c)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan conversation streams: %w", err)
	}
	pipe := i.client.Pipeline()
	lens := make([]*redis.IntCmd, len(keys))
	for j, k := range keys {
		lens[j] = pipe.XLen(ctx, k)
	}
	if len(keys) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("xlen conversation streams: %w", err)
		}
	}
	out := make([]monitoring.Stream, len(keys))
	for j, k := range keys {
		out[j] = monitoring.Stream{Key: k, Kind: monitoring.KindConversation, Length: lens[j].Val()}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Length != out[b].Length {
			return out[a].Length > out[b].Length
		}
		return out[a].Key < out[b].Key
	})
	return out[:min(len(out), n)], nil
}

// describe fills in length, first/last id and the consumer groups of each stream.
func (i *StreamInspector) describe(ctx context.Context, list []monitoring.Stream) error {
	pipe := i.client.Pipeline()
	infos := make([]*redis.XInfoStreamCmd, len(list))
	groups := make([]*redis.XInfoGroupsCmd, len(list))
	for j, s := range list {
		infos[j] = pipe.XInfoStream(ctx, s.Key)
		groups[j] = pipe.XInfoGroups(ctx, s.Key)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command: a missing stream is not a failure
	type groupRef struct{ stream, group int }
	var refs []groupRef
	for j := range list {
		info, err := infos[j].Result()
		if err != nil {
			if isNoSuchKey(err) {
				continue
			}
			return fmt.Errorf("xinfo stream %s: %w", list[j].Key, err)
		}
		s := &list[j]
		s.Exists, s.Length, s.FirstID, s.LastID = true, info.Length, info.FirstEntry.ID, info.LastEntry.ID
		gs, err := groups[j].Result()
		if err != nil && !isNoSuchKey(err) {
			return fmt.Errorf("xinfo groups %s: %w", s.Key, err)
		}
		for _, g := range gs {
			s.Groups = append(s.Groups, monitoring.Group{Name: g.Name, Pending: g.Pending, Lag: g.Lag, LastDeliveredID: g.LastDeliveredID})
			refs = append(refs, groupRef{j, len(s.Groups) - 1})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	pipe = i.client.Pipeline()
	consumers := make([]*redis.XInfoConsumersCmd, len(refs))
	oldest := make([]*redis.XPendingExtCmd, len(refs))
	for k, r := range refs {
		key, g := list[r.stream].Key, list[r.stream].Groups[r.group]
		consumers[k] = pipe.XInfoConsumers(ctx, key, g.Name)
		if g.Pending > 0 {
			oldest[k] = pipe.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: g.Name, Start: "-", End: "+", Count: 1})
		}
	}
	_, _ = pipe.Exec(ctx)
	for k, r := range refs {
		g := &list[r.stream].Groups[r.group]
		cs, err := consumers[k].Result()
		if err != nil && !isNoSuchKey(err) && !isNoGroup(err) {
			return fmt.Errorf("xinfo consumers %s %s: %w", list[r.stream].Key, g.Name, err)
		}
		for _, c := range cs {
			g.Consumers = append(g.Consumers, monitoring.Consumer{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
		}
		if oldest[k] != nil {
			if ps, err := oldest[k].Result(); err == nil && len(ps) > 0 {
				g.OldestPendingIdle = ps[0].Idle
			}
		}
	}
	return nil
}

func isNoSuchKey(err error) bool { return err != nil && strings.Contains(err.Error(), "no such key") }
func isNoGroup(err error) bool   { return err != nil && strings.Contains(err.Error(), "NOGROUP") }
