// Package messaging holds the driving adapters fed by Redis: the fan-out stream reader and the
// legacy Pub/Sub listener, both of which hand live messages to the one delivery path.
package messaging

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/domain/conversation"
)

// FanoutListener reads every entry of the fan-out stream (a plain XREAD, no group: every
// instance must see every message) and offers it to local subscriptions.
type FanoutListener struct {
	enabled bool
	keys    Keys
	client  redis.UniversalClient
	hub     *delivery.Hub
	log     *slog.Logger
	counts  fanoutCounts
}

// FanoutStats are the fan-out reader's running totals (exported as metrics).
type FanoutStats struct{ Entries, Malformed, Outages int64 }

type fanoutCounts struct{ Entries, Malformed, Outages atomic.Int64 }

// Keys are the Redis names the listeners read (PROTOCOL.md section 5), given by the adapter that writes them.
type Keys struct {
	// FanoutStream is the unpartitioned fan-out stream, which the A/B fan-out listener reads
	// (it refuses partitions); FanoutStreams are its partitions, which consumer groups read
	// (just FanoutStream when there is one).
	FanoutStream     string
	FanoutStreams    []string
	DeadLetterStream string
	ChannelPrefix    string // the legacy Pub/Sub channel of a conversation is ChannelPrefix + its id
}

// FanoutEnabled is false only in A/B runs that deliver through the legacy channel alone.
type FanoutEnabled bool

func NewFanoutListener(enabled FanoutEnabled, keys Keys, client redis.UniversalClient, hub *delivery.Hub, log *slog.Logger) *FanoutListener {
	if client == nil || hub == nil || log == nil || keys.FanoutStream == "" {
		panic("messaging.NewFanoutListener: nil dependency")
	}
	return &FanoutListener{enabled: bool(enabled), keys: keys, client: client, hub: hub, log: log.With("component", "fanout-listener")}
}

// Run reads from the stream's current end until ctx ends. After an outage it asks every
// subscription to look for what it missed, since the stream itself may have been lost.
func (l *FanoutListener) Run(ctx context.Context) error {
	if !l.enabled {
		return nil
	}
	last, healthy := "", true
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if last == "" {
			id, err := l.currentEnd(ctx)
			if err != nil {
				healthy = l.outage(ctx, healthy, err, &backoff)
				continue
			}
			last = id
		}
		res, err := l.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{l.keys.FanoutStream, last}, Count: 1000, Block: 500 * time.Millisecond, // short, so a shutdown waits at most this long
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			healthy = l.outage(ctx, healthy, err, &backoff)
			continue
		}
		if !healthy {
			l.log.Info("fan-out stream readable again; resyncing subscriptions")
			healthy, backoff = true, 100*time.Millisecond
			l.hub.Resync()
		}
		for _, stream := range res {
			for _, m := range stream.Messages {
				last = m.ID
				l.offer(m)
			}
		}
	}
	return nil
}

func (l *FanoutListener) outage(ctx context.Context, healthy bool, err error, backoff *time.Duration) bool {
	if ctx.Err() != nil {
		return healthy
	}
	if healthy {
		l.counts.Outages.Add(1)
		l.log.Warn("fan-out stream unreadable; live delivery paused, backlog reads continue", "error", err)
	}
	t := time.NewTimer(*backoff)
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	t.Stop()
	*backoff = min(*backoff*2, 2*time.Second)
	return false
}

// currentEnd is the id to read after: the newest entry now, so nothing is read twice at start
// and nothing falls between two XREAD calls (which "$" would allow).
func (l *FanoutListener) currentEnd(ctx context.Context) (string, error) {
	entries, err := l.client.XRevRangeN(ctx, l.keys.FanoutStream, "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(entries) == 0 {
		return "0-0", nil
	}
	return entries[0].ID, nil
}

func (l *FanoutListener) offer(m redis.XMessage) {
	l.counts.Entries.Add(1)
	conv, _ := m.Values["conversation_id"].(string)
	entryID, _ := m.Values["entry_id"].(string)
	payload, _ := m.Values["payload"].(string)
	seqPart, _, _ := strings.Cut(entryID, "-")
	seq, err := strconv.ParseInt(seqPart, 10, 64)
	if conv == "" || payload == "" || err != nil || seq < 1 {
		l.counts.Malformed.Add(1)
		return // consumer groups dead-letter such entries; live delivery just skips them
	}
	ts, _ := m.Values["timestamp"].(string)
	created, _ := strconv.ParseInt(ts, 10, 64) // absent in entries written before it was added: 0
	l.hub.Publish(conversation.ID(conv), delivery.Item{Seq: seq, JSON: []byte(payload), CreatedAtMs: created})
}

// Stats returns the running totals at this moment (a copy: read-only for the caller).
func (l *FanoutListener) Stats() FanoutStats {
	c := &l.counts
	return FanoutStats{Entries: c.Entries.Load(), Malformed: c.Malformed.Load(), Outages: c.Outages.Load()}
}
