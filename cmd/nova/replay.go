package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nova-chat/nova"
	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/events"
)

// replay writes the messages stored in [since, until) to group's replay stream, from Postgres,
// printing progress; docs/EVENTS.md says how a consumer reads it.
func replay(ctx context.Context, cfg nova.Config, group, since, until string, stdout, stderr io.Writer) int {
	if group == "" {
		fmt.Fprintln(stderr, "nova: --group: required (the consumer group to replay for)")
		return 2
	}
	from, err := time.Parse(time.RFC3339, since)
	if err != nil {
		fmt.Fprintln(stderr, "nova: --since: must be an RFC 3339 time such as 2026-11-01T00:00:00Z")
		return 2
	}
	var to time.Time
	if until != "" {
		if to, err = time.Parse(time.RFC3339, until); err != nil || !to.After(from) {
			fmt.Fprintln(stderr, "nova: --until: must be an RFC 3339 time after --since")
			return 2
		}
	}
	pool, closePool, err := postgres.NewPool(ctx, cfg.DatabaseURL)
	if err != nil {
		fmt.Fprintf(stderr, "nova: %v\n", err)
		return 1
	}
	defer closePool()
	rdb, closeRedis, err := redisstream.NewClient(ctx, cfg.RedisURL)
	if err != nil {
		fmt.Fprintf(stderr, "nova: %v\n", err)
		return 2
	}
	defer closeRedis()
	start, last := time.Now(), time.Now()
	n, err := redisstream.Replay(ctx, rdb, postgres.NewReadModel(pool), group, from, to, func(n int) {
		if time.Since(last) > 2*time.Second {
			fmt.Fprintf(stderr, "replayed %d messages so far\n", n)
			last = time.Now()
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "nova: replay stopped after %d messages: %v\n", n, err)
		return 1
	}
	fmt.Fprintf(stdout, "replayed %d messages stored since %s to %s in %s\n", n, from.Format(time.RFC3339),
		events.ReplayStream(group), time.Since(start).Round(time.Millisecond))
	return 0
}
