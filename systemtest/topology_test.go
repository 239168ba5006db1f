package systemtest_test

import (
	"context"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
)

// A topology is a kind of Redis the system tests run Nova on: one redis-server ("single"), or
// testinfra's private Redis Cluster of 3 masters with a replica each ("cluster"), on which Nova
// needs fan-out partitions (ARCHITECTURE.md, "Fan-out partitions").
type topology struct {
	name  string
	start func(t *testing.T) *topoRedis // a private Redis of this kind for t, stopped by t's cleanup
}

var (
	singleTopology  = topology{name: "single", start: startSingleRedis}
	clusterTopology = topology{name: "cluster", start: startClusterRedis}
)

// onEachTopology runs test once per topology, as the subtests "single" and "cluster".
func onEachTopology(t *testing.T, test func(t *testing.T, top topology)) {
	t.Helper()
	for _, top := range []topology{singleTopology, clusterTopology} {
		t.Run(top.name, func(t *testing.T) { test(t, top) })
	}
}

// topoRedis is one test's private Redis of some topology.
type topoRedis struct {
	URL        string                       // REDIS_URL for Nova
	Settings   map[string]string            // the NOVA_* settings Nova needs on this topology
	Partitions redisstream.FanoutPartitions // how many fan-out partitions Nova runs with here
	Single     *testinfra.Redis             // the server when single, else nil
	Cluster    *testinfra.RedisCluster      // the cluster when cluster, else nil
	client     redis.UniversalClient
}

const clusterPartitions = 4

func startSingleRedis(t *testing.T) *topoRedis {
	rds := testinfra.StartRedis(t)
	return &topoRedis{URL: rds.URL(), Settings: map[string]string{}, Partitions: 1, Single: rds, client: rds.Client()}
}

func startClusterRedis(t *testing.T) *topoRedis {
	cluster := testinfra.StartRedisCluster(t, 3)
	return &topoRedis{URL: cluster.Seeds(), Partitions: clusterPartitions, Cluster: cluster, client: cluster.Client(),
		Settings: map[string]string{"NOVA_FANOUT_PARTITIONS": strconv.Itoa(clusterPartitions)}}
}

// Client is a client for this Redis (a *redis.Client or a *redis.ClusterClient), closed by the
// test's cleanup.
func (r *topoRedis) Client() redis.UniversalClient { return r.client }

// Env is what Nova instances on this Redis and database share: the topology's settings plus the
// test's own (which win).
func (r *topoRedis) Env(databaseURL string, settings map[string]string) testinfra.Env {
	all := maps.Clone(r.Settings)
	maps.Copy(all, settings)
	return testinfra.Env{DatabaseURL: databaseURL, RedisURL: r.URL, Settings: all}
}

// FanoutStream is the fan-out stream that carries conv's events: the one stream, or conv's
// partition.
func (r *topoRedis) FanoutStream(conv string) string {
	return r.Partitions.Stream(r.Partitions.Of(conv))
}

// FanoutStreams lists every fan-out stream (every partition).
func (r *topoRedis) FanoutStreams() []string { return r.Partitions.Streams() }

// LiveChannel is conv's live channel on this topology.
func (r *topoRedis) LiveChannel(conv string) string { return r.Partitions.LiveChannel(conv) }

// FlushAll empties Redis: FLUSHALL on the server, or on every master of the cluster.
func (r *topoRedis) FlushAll(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var err error
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.FlushAll(ctx).Err() })
	} else {
		err = r.client.FlushAll(ctx).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// RestartEmpty stops Redis and starts it again, empty.
func (r *topoRedis) RestartEmpty(t *testing.T) {
	t.Helper()
	r.Stop()
	r.Start(t)
}

// Stop stops every server (they keep nothing).
func (r *topoRedis) Stop() {
	for _, n := range r.Servers() {
		n.Stop()
	}
}

// Start starts every server again, empty. A cluster's nodes keep their cluster configuration
// (nodes.conf), so they come back as the same cluster with no keys: Start waits until it
// serves every slot again.
func (r *topoRedis) Start(t *testing.T) {
	t.Helper()
	for _, n := range r.Servers() {
		n.Start()
	}
	if r.Cluster != nil {
		r.Cluster.WaitHealthy(30 * time.Second)
	}
}

// Servers are the redis-servers of this Redis: the one, or every node of the cluster (masters
// and replicas).
func (r *topoRedis) Servers() []*testinfra.Redis {
	if r.Cluster != nil {
		return r.Cluster.Nodes
	}
	return []*testinfra.Redis{r.Single}
}

// ShardSubscribers is how many connections are subscribed to the sharded channel, summed over
// every server (on a cluster a node counts only its own subscribers, and a shard channel's
// subscribers may be on its master or on a replica).
func (r *topoRedis) ShardSubscribers(t *testing.T, channel string) int64 {
	t.Helper()
	var sum int64
	for _, n := range r.Servers() {
		subs, err := n.Client().PubSubShardNumSub(context.Background(), channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		sum += subs[channel]
	}
	return sum
}
