package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL is REDIS_URL: a redis:// URL, or comma-separated host:port seeds of a Redis Cluster.
type URL string

// ClusterStateReload bounds how long a cluster client keeps sending to a master that failed over.
// go-redis reloads the slot map at once on MOVED, but not on "connection refused" from a stopped
// master: it waits for this interval (default 60 s since v9.22; go-redis issue #3979). Measured
// with testinfra's cluster: 56 s of refused commands after a failover at the default.
const ClusterStateReload = 2 * time.Second

const defaultPoolSize = 64

// NewClient connects to Redis. A cluster is named by several comma-separated seeds.
func NewClient(ctx context.Context, url URL) (redis.UniversalClient, func(), error) {
	return newClient(ctx, url, defaultPoolSize)
}

// newClient connects with poolSize connections at most (to a single Redis).
func newClient(_ context.Context, url URL, poolSize int) (redis.UniversalClient, func(), error) {
	var client redis.UniversalClient
	if s := string(url); url.Cluster() {
		client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(s, ","), DialTimeout: 2 * time.Second,
			ClusterStateReloadInterval: ClusterStateReload})
	} else {
		opts, err := redis.ParseURL(s)
		if err != nil {
			return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.DialTimeout = 2 * time.Second
		opts.PoolSize = poolSize
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

// Cluster says whether the URL names a Redis Cluster (several seeds, or one host:port).
func (u URL) Cluster() bool {
	s := string(u)
	return strings.Contains(s, ",") || (s != "" && !strings.Contains(s, "://"))
}

// ErrClusterUnsupported: a Redis Cluster Nova cannot use as configured.
var ErrClusterUnsupported = errors.New("Redis Cluster needs its seeds in REDIS_URL (host:port,host:port,...; " +
	"a redis:// URL connects to one node only) and NOVA_FANOUT_PARTITIONS > 1")

// CheckSupported refuses a Redis that Nova cannot use: a cluster without partitions (the
// unpartitioned fan-out keys share no hash slot), or a cluster node reached through a plain
// redis:// URL (one node's client would answer MOVED for most keys).
func CheckSupported(ctx context.Context, client redis.UniversalClient, partitions FanoutPartitions) error {
	if _, ok := client.(*redis.ClusterClient); ok {
		if !partitions.Split() {
			return ErrClusterUnsupported
		}
		return client.Ping(ctx).Err()
	}
	info, err := client.Info(ctx, "cluster").Result()
	if err != nil {
		return err
	}
	if strings.Contains(info, "cluster_enabled:1") {
		return ErrClusterUnsupported
	}
	return nil
}
