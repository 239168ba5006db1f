package testinfra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
)

// RedisCluster is a private Redis Cluster: masters with one replica each, on free loopback
// ports, keeping nothing on disk. Tests may stop any node to make its replica take over.
type RedisCluster struct {
	t     testing.TB // nil for a cluster the benchmark launched
	Nodes []*Redis   // the first len/2 were created as masters, the rest as their replicas
}

// clusterNodeTimeout is how long a master must be unreachable before its replica takes over.
const clusterNodeTimeout = 2 * time.Second

// StartRedisCluster starts masters*2 redis-servers in cluster mode and joins them with
// `redis-cli --cluster create` (one replica per master), then waits until every node reports
// cluster_state:ok. The test's cleanup stops them.
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	dir := t.TempDir() // before the cleanup below, so that the nodes stop before it is removed
	c := &RedisCluster{t: t}
	t.Cleanup(c.Stop)
	if err := c.launch(context.Background(), RedisClusterOptions{Masters: masters, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	return c
}

// RedisClusterOptions says how to run a Redis Cluster outside a test (the benchmark does).
type RedisClusterOptions struct {
	Masters int    // each gets one replica
	Dir     string // the nodes' working folders are Dir/node-1, Dir/node-2, ...
	LogDir  string // where the nodes' output goes, as redis-cluster-<i>.log (default: each node's folder)
	Extra   []string
	// SysProcAttr, if set, is every node's (the benchmark's own process group, a parent-death signal).
	SysProcAttr *syscall.SysProcAttr
}

// LaunchRedisCluster is StartRedisCluster outside a test: it returns once the cluster is
// healthy; Stop ends every node. On an error the nodes started so far are stopped.
func LaunchRedisCluster(ctx context.Context, opts RedisClusterOptions) (*RedisCluster, error) {
	c := &RedisCluster{}
	if err := c.launch(ctx, opts); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// launch starts the nodes one by one (each in c.Nodes as soon as it exists, so that Stop
// finds it), joins them and waits until the cluster is healthy.
func (c *RedisCluster) launch(ctx context.Context, opts RedisClusterOptions) error {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return fmt.Errorf("redis-cli not found (make test installs it with redis-server): %w", err)
	}
	addrs := make([]string, 0, 2*opts.Masters)
	for i := range 2 * opts.Masters {
		port, err := freeClusterPort()
		if err != nil {
			return err
		}
		dir := filepath.Join(opts.Dir, fmt.Sprintf("node-%d", i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		logPath := ""
		if opts.LogDir != "" {
			logPath = filepath.Join(opts.LogDir, fmt.Sprintf("redis-cluster-%d.log", i+1))
		}
		extra := append([]string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout / time.Millisecond)),
			// a master starts a replica's full sync at once, instead of waiting 5 s (the
			// default) for more replicas to share one transfer: a cluster is ready seconds sooner
			"--repl-diskless-sync-delay", "0"}, opts.Extra...)
		n, err := newRedis(RedisOptions{Dir: dir, LogPath: logPath, Extra: extra, Port: port, SysProcAttr: opts.SysProcAttr})
		if err != nil {
			return err
		}
		n.t = c.t
		c.Nodes = append(c.Nodes, n)
		if err := n.start(ctx); err != nil {
			return err
		}
		addrs = append(addrs, n.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	return c.waitHealthy(ctx, 30*time.Second)
}

// Stop stops every node (their data is gone: nothing is persisted).
func (c *RedisCluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// PIDs are the process ids of the nodes that run.
func (c *RedisCluster) PIDs() []int {
	var out []int
	for _, n := range c.Nodes {
		if pid := n.PID(); pid != 0 {
			out = append(out, pid)
		}
	}
	return out
}

// Seeds is REDIS_URL for this cluster: every node's host:port, comma-separated.
func (c *RedisCluster) Seeds() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
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
		if addr == n.Addr() {
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

// FailOverMasterOf has the replica of the master that serves key's slot take over from it
// (CLUSTER FAILOVER: a planned switch, nothing lost, the old master stays up as the new one's
// replica), and waits until the cluster is healthy again. It returns the old master.
func (c *RedisCluster) FailOverMasterOf(key string, within time.Duration) *Redis {
	c.t.Helper()
	old := c.MasterFor(key)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var replica *Redis
	for _, n := range c.Nodes {
		if n == old || n.cmd == nil {
			continue
		}
		cl := n.newClient()
		role, err := cl.Do(ctx, "ROLE").Slice()
		_ = cl.Close()
		if err == nil && len(role) >= 3 && role[0] == "slave" && fmt.Sprint(role[2]) == strconv.Itoa(old.Port) {
			replica = n
			break
		}
	}
	if replica == nil {
		c.t.Fatalf("the master on port %d has no running replica", old.Port)
	}
	cl := replica.newClient()
	defer cl.Close()
	// a manual failover that does not complete within 5 s (Redis's own bound) is given up by
	// Redis without a word, so it is asked for again until the replica leads
	var asked time.Time
	for ; c.masterOrNil(key) != replica || !c.healthy(); time.Sleep(100 * time.Millisecond) {
		if ctx.Err() != nil {
			log, _ := os.ReadFile(replica.logPath)
			c.t.Fatalf("the replica on port %d did not take over the slot of %q within %s; its log ends:\n%s",
				replica.Port, key, within, tail(log, 3000))
		}
		if time.Since(asked) > 6*time.Second {
			if err := cl.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
				c.t.Fatalf("CLUSTER FAILOVER on port %d: %v", replica.Port, err)
			}
			asked = time.Now()
		}
	}
	return old
}

func (c *RedisCluster) masterOrNil(key string) *Redis {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		if addr := masterAddr(ctx, n, key); addr != "" {
			return c.node(addr)
		}
	}
	return nil
}

// masterAddr is the address of the master that serves key's slot, as node n sees it ("" if
// n cannot say).
func masterAddr(ctx context.Context, n *Redis, key string) string {
	cl := n.newClient()
	defer cl.Close()
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return ""
	}
	slots, err := cl.ClusterSlots(ctx).Result()
	if err != nil {
		return ""
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr
		}
	}
	return ""
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

func (c *RedisCluster) replicated() bool { return c.everyRunningNode(replicasCaughtUp) }

// everyRunningNode says whether ok holds for every node that runs, asked within a second.
func (c *RedisCluster) everyRunningNode(ok func(context.Context, *Redis) bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if n.cmd != nil && !ok(ctx, n) {
			return false
		}
	}
	return true
}

// replicasCaughtUp says whether every replica of node n (if n is a master) has everything n wrote.
func replicasCaughtUp(ctx context.Context, n *Redis) bool {
	cl := n.newClient()
	defer cl.Close()
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return false
	}
	if !strings.Contains(info, "role:master") {
		return true
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
	return true
}

// WaitHealthy waits until every running node reports cluster_state:ok, every slot is served and
// every replica is in sync with its master.
func (c *RedisCluster) WaitHealthy(within time.Duration) {
	c.t.Helper()
	if err := c.waitHealthy(context.Background(), within); err != nil {
		c.t.Fatal(err)
	}
}

func (c *RedisCluster) waitHealthy(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for !c.healthy() {
		if time.Now().After(deadline) {
			return fmt.Errorf("the Redis Cluster did not become healthy within %s", within)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

func (c *RedisCluster) healthy() bool { return c.everyRunningNode(nodeHealthy) }

// nodeHealthy says whether node n reports cluster_state:ok with every slot served, and, if it is
// a replica, a live link to its master.
func nodeHealthy(ctx context.Context, n *Redis) bool {
	cl := n.newClient()
	defer cl.Close()
	info, err := cl.ClusterInfo(ctx).Result()
	if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
		return false
	}
	// a replica that never synced cannot take over: its data counts as too old
	repl, err := cl.Info(ctx, "replication").Result()
	return err == nil && !(strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up"))
}

// freeClusterPort finds a free port whose cluster bus port (port + 10000) is free too.
func freeClusterPort() (int, error) {
	for range 100 {
		p, err := FreePort()
		if err != nil {
			return 0, err
		}
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p, nil
	}
	return 0, errors.New("no free port pair for a cluster node")
}
