package testinfra

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
)

// RedisCluster is a private Redis Cluster for one test: masters with one replica each, on free
// loopback ports, keeping nothing on disk. Tests may stop any node to make its replica take over.
type RedisCluster struct {
	t     testing.TB
	Nodes []*Redis // the first len/2 were created as masters, the rest as their replicas
}

// clusterNodeTimeout is how long a master must be unreachable before its replica takes over.
const clusterNodeTimeout = 2 * time.Second

// StartRedisCluster starts masters*2 redis-servers in cluster mode and joins them with
// `redis-cli --cluster create` (one replica per master), then waits until every node reports
// cluster_state:ok.
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli not found (make test installs it with redis-server): %v", err)
	}
	c := &RedisCluster{t: t}
	addrs := make([]string, 0, 2*masters)
	for range 2 * masters {
		dir := t.TempDir()
		n := startRedisOn(t, freeClusterPort(t), dir, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout/time.Millisecond)),
			"--appendonly", "no",
			// a master starts a replica's full sync at once, instead of waiting 5 s (the
			// default) for more replicas to share one transfer: a cluster is ready seconds sooner
			"--repl-diskless-sync-delay", "0")
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", n.Port))
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(30 * time.Second)
	return c
}

// Seeds is REDIS_URL for this cluster: every node's host:port, comma-separated.
func (c *RedisCluster) Seeds() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", n.Port)
	}
	return strings.Join(addrs, ",")
}

// Client returns a cluster client that the test's cleanup closes.
func (c *RedisCluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(c.Seeds(), ","),
		ClusterStateReloadInterval: redisstream.ClusterStateReload})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// MasterFor returns the node that serves key's slot as its master now.
func (c *RedisCluster) MasterFor(key string) *Redis {
	c.t.Helper()
	if n := c.masterOrNil(key); n != nil {
		return n
	}
	c.t.Fatalf("no running node knows which master serves the slot of %q", key)
	return nil
}

func (c *RedisCluster) node(addr string) *Redis {
	c.t.Helper()
	for _, n := range c.Nodes {
		if addr == fmt.Sprintf("127.0.0.1:%d", n.Port) {
			return n
		}
	}
	c.t.Fatalf("%s is not a node of this cluster", addr)
	return nil
}

// StopMasterOf stops the master that serves key's slot and waits until its replica has taken
// over and the cluster is healthy again. It returns the stopped node (Start brings it back, as
// a replica of the new master).
func (c *RedisCluster) StopMasterOf(key string, within time.Duration) *Redis {
	c.t.Helper()
	old := c.MasterFor(key)
	old.Stop()
	deadline := time.Now().Add(within)
	for {
		if c.masterOrNil(key) != old && c.healthy() {
			return old
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no replica took over the slot of %q within %s", key, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *RedisCluster) masterOrNil(key string) *Redis {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		cl := n.Client()
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			continue
		}
		slots, err := cl.ClusterSlots(ctx).Result()
		if err != nil {
			continue
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
				return c.node(s.Nodes[0].Addr)
			}
		}
	}
	return nil
}

// WaitReplicated waits until every replica has everything its master wrote so far (replication
// is asynchronous: a master stopped before that loses its last writes, as a real one would).
func (c *RedisCluster) WaitReplicated(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for !c.replicated() {
		if time.Now().After(deadline) {
			c.t.Fatalf("replicas did not catch up with their masters within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *RedisCluster) replicated() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		info, err := n.Client().Info(ctx, "replication").Result()
		if err != nil {
			return false
		}
		if !strings.Contains(info, "role:master") {
			continue
		}
		var master int64 = -1
		var replicas []int64
		for line := range strings.Lines(info) {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
				master, _ = strconv.ParseInt(v, 10, 64)
			}
			if strings.HasPrefix(line, "slave") && strings.Contains(line, "offset=") {
				_, rest, _ := strings.Cut(line, "offset=")
				v, _, _ := strings.Cut(rest, ",")
				off, _ := strconv.ParseInt(v, 10, 64)
				replicas = append(replicas, off)
			}
		}
		for _, off := range replicas {
			if off < master {
				return false
			}
		}
	}
	return true
}

// WaitHealthy waits until every running node reports cluster_state:ok, every slot is served and
// every replica is in sync with its master.
func (c *RedisCluster) WaitHealthy(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if c.healthy() {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the Redis Cluster did not become healthy within %s", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *RedisCluster) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		info, err := n.Client().ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return false
		}
		// a replica that never synced cannot take over: its data counts as too old
		repl, err := n.Client().Info(ctx, "replication").Result()
		if err != nil || strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return false
		}
	}
	return true
}

// startRedisOn starts one private redis-server on port with its files in dir.
func startRedisOn(t testing.TB, port int, dir string, extra ...string) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (make test installs it): %v", err)
	}
	r := &Redis{t: t, Port: port, dir: dir}
	r.args = append([]string{bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "",
		"--dir", dir, "--maxmemory-policy", "noeviction"}, extra...)
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// freeClusterPort finds a free port whose cluster bus port (port + 10000) is free too.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := freePort(t)
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}
