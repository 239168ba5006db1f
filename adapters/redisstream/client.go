package redisstream

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL is REDIS_URL: a redis:// URL, or comma-separated host:port seeds of a Redis Cluster.
type URL string

// NewClient connects to Redis. A cluster is named by several comma-separated seeds.
func NewClient(ctx context.Context, url URL) (redis.UniversalClient, func(), error) {
	var client redis.UniversalClient
	if s := string(url); strings.Contains(s, ",") || !strings.Contains(s, "://") {
		client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(s, ","), DialTimeout: 2 * time.Second})
	} else {
		opts, err := redis.ParseURL(s)
		if err != nil {
			return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.DialTimeout = 2 * time.Second
		opts.PoolSize = 64
		client = redis.NewClient(opts)
	}
	return client, func() { _ = client.Close() }, nil
}

// RouteLogs sends go-redis's own messages (pool dial failures and the like) to log at debug
// level, instead of unstructured lines on stderr; outages are reported by Nova's components.
func RouteLogs(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
