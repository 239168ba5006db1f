package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nova-chat/nova"
	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application/monitoring"
)

// streams prints what /admin shows, as tables: the same Inspector reads Redis and the outbox.
// Postgres is optional: without it the outbox part says why it is missing.
func streams(ctx context.Context, cfg nova.Config, busiest int, stdout, stderr io.Writer) int {
	if busiest < 0 {
		fmt.Fprintln(stderr, "nova: --busiest: must not be negative")
		return 2
	}
	rdb, closeRedis, err := redisstream.NewClient(ctx, cfg.RedisURL)
	if err != nil {
		fmt.Fprintf(stderr, "nova: %v\n", err)
		return 2
	}
	defer closeRedis()
	var outbox monitoring.OutboxSource
	if pool, closePool, err := postgres.NewPool(ctx, cfg.DatabaseURL); err == nil {
		defer closePool()
		outbox = postgres.NewOutboxInspector(pool)
	}
	if busiest == 0 {
		busiest = -1 // none (0 would mean the default)
	}
	s := monitoring.NewInspector(redisstream.NewStreamInspector(rdb, cfg.FanoutPartitions), outbox,
		monitoring.InspectorOptions{Busiest: busiest, Timeout: 5 * time.Second, MaxAge: -1}).Snapshot(ctx)
	if !s.RedisUp {
		fmt.Fprintf(stderr, "nova: cannot inspect Redis at %s: %s\n", redactURL(string(cfg.RedisURL)), s.RedisError)
		return 1
	}
	printSnapshot(stdout, redactURL(string(cfg.RedisURL)), s)
	return 0
}

func printSnapshot(w io.Writer, where string, s monitoring.Snapshot) {
	fmt.Fprintf(w, "Redis %s at %s\n\n", where, s.At.UTC().Format("2006-01-02 15:04:05 UTC"))

	t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t, "STREAM\tKIND\tLENGTH\tFIRST ID\tLAST ID\tGROUPS")
	for _, st := range s.Streams {
		if !st.Exists {
			fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Key, st.Kind, "absent", "-", "-", "-")
			continue
		}
		fmt.Fprintf(t, "%s\t%s\t%d\t%s\t%s\t%d\n", st.Key, st.Kind, st.Length, dash(st.FirstID), dash(st.LastID), len(st.Groups))
	}
	_ = t.Flush()

	fmt.Fprintln(w, "\nCONSUMER GROUPS")
	t = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t, "STREAM\tGROUP / CONSUMER\tCONSUMERS\tPENDING\tLAG\tOLDEST PENDING IDLE\tLAST DELIVERED")
	groups := 0
	for _, st := range s.Streams {
		for _, g := range st.Groups {
			groups++
			lag := "unknown"
			if g.Lag >= 0 {
				lag = fmt.Sprint(g.Lag)
			}
			idle := "-"
			if g.Pending > 0 {
				idle = duration(g.OldestPendingIdle)
			}
			fmt.Fprintf(t, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", st.Key, g.Name, len(g.Consumers), g.Pending, lag, idle, dash(g.LastDeliveredID))
			for _, c := range g.Consumers {
				fmt.Fprintf(t, "\t  consumer %s\t\t%d\t\tidle %s\n", c.Name, c.Pending, duration(c.Idle))
			}
		}
	}
	if groups == 0 {
		fmt.Fprintln(t, "(none)")
	}
	_ = t.Flush()

	fmt.Fprintln(w, "\nOUTBOX (Postgres)")
	if !s.PostgresUp {
		fmt.Fprintf(w, "unavailable: %s\n", s.PostgresError)
		return
	}
	oldest := "-"
	if s.Outbox.Rows > 0 {
		oldest = duration(s.Outbox.OldestAge)
	}
	fmt.Fprintf(w, "backlog %d rows, oldest %s, set aside (outbox_dead) %d\n", s.Outbox.Rows, oldest, s.Outbox.DeadRows)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// redactURL hides a password in a redis:// URL (cluster seeds have none).
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable REDIS_URL)"
	}
	return u.Redacted()
}
