package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/events"
	"github.com/nova-chat/nova/internal/testinfra"
)

// Env is the private infrastructure of one bench run, made with internal/testinfra as the
// tests' is: a fresh database on the admin Postgres, a private redis-server and the nova serve
// processes. Close undoes all of it.
type Env struct {
	AdminURL string
	DBName   string
	DBURL    string
	Dir      string // temporary folder: nova binary, pgbench scripts
	LogDir   string // where redis and nova logs go (kept after the run)
	NovaBin  string
	Redis    *testinfra.Redis
	DB       *pgxpool.Pool     // the bench's own pool on the bench database
	RDB      *redis.Client     // the bench's own Redis client
	Settings map[string]string // NOVA_* settings every instance gets
	// RedisNice is the nice value every redis-server of the run is given (0: left as started).
	RedisNice int
	Nodes     []*Node
	// Cluster is the private Redis Cluster while the instances scenario runs on it (nil
	// otherwise): the nodes started meanwhile use it instead of Redis, which stays up idle.
	Cluster    *testinfra.RedisCluster
	ClusterRDB *redis.ClusterClient // the bench's own client of Cluster
	partitions int                  // NOVA_FANOUT_PARTITIONS of the nodes started last

	mu       sync.Mutex
	cleanups []func()
	started  int // instances started so far (log file names)
}

func newEnv(logDir string) (*Env, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "novabench-")
	if err != nil {
		return nil, err
	}
	e := &Env{AdminURL: testinfra.AdminURL(), Dir: dir, LogDir: logDir}
	e.onClose(func() { _ = os.RemoveAll(dir) })
	return e, nil
}

// onClose registers an undo step; Close runs them last first.
func (e *Env) onClose(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

// Close stops every process the bench started and drops its database. Safe to call twice.
func (e *Env) Close() {
	e.mu.Lock()
	fs := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// raiseNoFile lifts RLIMIT_NOFILE to its hard limit; the child processes inherit it.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// CreateDatabase makes nova_bench_<random> on the admin Postgres and drops it at Close.
func (e *Env) CreateDatabase(ctx context.Context) error {
	dbURL, drop, err := testinfra.CreateDatabase(ctx, e.AdminURL, "nova_bench_")
	if err != nil {
		return fmt.Errorf("%w (NOVA_TEST_DATABASE_URL)", err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	e.DBURL, e.DBName = dbURL, strings.TrimPrefix(u.Path, "/")
	e.onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := drop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "novabench: drop database %s: %v\n", e.DBName, err)
		}
	})
	cfg, err := pgxpool.ParseConfig(e.DBURL)
	if err != nil {
		return err
	}
	cfg.MaxConns = 8
	if e.DB, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return err
	}
	e.onClose(e.DB.Close)
	return nil
}

// StartRedis runs redis-server on a free port without persistence (production runs AOF).
func (e *Env) StartRedis(ctx context.Context) error {
	dir := filepath.Join(e.Dir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r, err := testinfra.LaunchRedis(ctx, testinfra.RedisOptions{Dir: dir, LogPath: filepath.Join(e.LogDir, "redis.log"),
		Extra: []string{"--maxclients", "10000"}, SysProcAttr: childAttr()})
	if err != nil {
		return err
	}
	e.Redis = r
	e.onClose(r.Stop)
	if err := e.renice(r.PID()); err != nil {
		return err
	}
	e.RDB = redis.NewClient(&redis.Options{Addr: r.Addr(), PoolSize: 32})
	e.onClose(func() { _ = e.RDB.Close() })
	return nil
}

// StartRedisCluster runs a private Redis Cluster of masters masters with a replica each,
// without persistence, with the single server's arguments; nodes started from now on use it,
// until StopRedisCluster. Its logs go to LogDir as redis-cluster-<i>.log.
func (e *Env) StartRedisCluster(ctx context.Context, masters int) error {
	dir := filepath.Join(e.Dir, "redis-cluster") // launch makes its node folders under it
	c, err := testinfra.LaunchRedisCluster(ctx, testinfra.RedisClusterOptions{Masters: masters, Dir: dir, LogDir: e.LogDir,
		Extra: []string{"--maxclients", "10000"}, SysProcAttr: childAttr()})
	if err != nil {
		return err
	}
	e.Cluster = c
	e.onClose(e.StopRedisCluster)
	for _, pid := range c.PIDs() {
		if err := e.renice(pid); err != nil {
			return err
		}
	}
	e.ClusterRDB = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(c.Seeds(), ","), PoolSize: 8,
		ClusterStateReloadInterval: redisstream.ClusterStateReload})
	return nil
}

// renice gives every thread of a redis-server the nice value RedisNice (Linux keeps one per
// thread; Redis runs its commands on the main one): on shared cores a lower value lets Redis
// run ahead of the nodes, the load generator and Postgres, as if it had a core of its own.
func (e *Env) renice(pid int) error {
	if e.RedisNice == 0 {
		return nil
	}
	tids, err := threadIDs(strconv.Itoa(pid))
	if err != nil {
		return fmt.Errorf("-redis-nice: %w", err)
	}
	for _, name := range tids {
		tid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, e.RedisNice); err != nil {
			return fmt.Errorf("-redis-nice %d on redis-server pid %d: %w (a negative value needs root or CAP_SYS_NICE)", e.RedisNice, pid, err)
		}
	}
	return nil
}

// StopRedisCluster stops the cluster (stop the nodes that use it first); nodes started from now
// on use the single server again. Safe to call twice.
func (e *Env) StopRedisCluster() {
	if e.ClusterRDB != nil {
		_ = e.ClusterRDB.Close()
		e.ClusterRDB = nil
	}
	if e.Cluster != nil {
		e.Cluster.Stop()
		e.Cluster = nil
	}
}

// redisURL is the REDIS_URL of nodes started now: the cluster's seeds while it runs, else the
// single server's URL.
func (e *Env) redisURL() string {
	if e.Cluster != nil {
		return e.Cluster.Seeds()
	}
	return e.Redis.URL()
}

// fanoutPartitions is the NOVA_FANOUT_PARTITIONS of nodes started with these settings (the
// last that names it wins, as in startNode), Nova's default 1 if none does.
func fanoutPartitions(settings ...map[string]string) int {
	n := 1
	for _, m := range settings {
		if v, err := strconv.Atoi(m["NOVA_FANOUT_PARTITIONS"]); err == nil {
			n = v
		}
	}
	return n
}

// fanoutStreams are the fan-out streams of the nodes started last (events.Streams of their
// NOVA_FANOUT_PARTITIONS) and the bench's client of the Redis that holds them.
func (e *Env) fanoutStreams() (redis.UniversalClient, []string) {
	if e.ClusterRDB != nil {
		return e.ClusterRDB, events.Streams(e.partitions)
	}
	return e.RDB, events.Streams(e.partitions)
}

// redisPIDs are the redis-servers the nodes use now (the cluster's while it runs) and the
// ones they do not (the single server meanwhile), by process id.
func (e *Env) redisPIDs() (inUse, idle []int) {
	var single []int
	if e.Redis != nil && e.Redis.PID() != 0 {
		single = []int{e.Redis.PID()}
	}
	if e.Cluster != nil {
		return e.Cluster.PIDs(), single
	}
	return single, nil
}

// childAttr puts a child in its own process group (so a Ctrl-C reaches only the bench, which
// then stops the children in order) and kills it if the bench dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// BuildNova compiles cmd/nova into the temporary folder: from the source tree the bench module
// is built against (its replace directive: the working tree), or from the git revision ref
// (exported with git archive, so the working tree is left alone). A prebuilt binary (bin) is
// used as it is.
func (e *Env) BuildNova(ctx context.Context, ref, bin string) error {
	if bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("-nova-bin: %w", err)
		}
		e.NovaBin = abs
		return nil
	}
	e.NovaBin = filepath.Join(e.Dir, "nova")
	src, err := novaSource(ctx)
	if err != nil {
		return err
	}
	if ref != "" {
		dir := filepath.Join(e.Dir, "src")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		script := fmt.Sprintf("git -C %q archive --format=tar %q | tar -x -C %q", src, ref, dir)
		if out, err := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", script).CombinedOutput(); err != nil {
			return fmt.Errorf("export %s: %v\n%s", ref, err, out)
		}
		src = dir
	}
	return testinfra.BuildNova(ctx, src, e.NovaBin)
}

// novaSource is the folder of the Nova module this bench is built against.
func novaSource(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/nova-chat/nova").Output()
	if err != nil {
		return "", fmt.Errorf("find the nova source (go list -m; run the bench from its module folder): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Node is one `nova serve` process.
type Node struct {
	*testinfra.Process
	Name string
}

// RSSKiB is the node's resident memory (VmRSS in /proc/<pid>/status).
func (n *Node) RSSKiB() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", n.PID()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				return strconv.ParseInt(fields[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no VmRSS line")
}

// StartNodes starts n `nova serve` processes with the shared settings plus extra, one after
// the other (started together, all but one wait about 5 s for the migration lock to be
// retried), each answering /readyz with 200 before the next starts.
func (e *Env) StartNodes(ctx context.Context, n int, extra map[string]string) error {
	e.Nodes = nil
	e.partitions = fanoutPartitions(e.Settings, extra)
	for i := range n {
		node, err := e.startNode(ctx, fmt.Sprintf("n%d", i+1), extra)
		if err != nil {
			return err
		}
		e.Nodes = append(e.Nodes, node)
	}
	return nil
}

func (e *Env) startNode(ctx context.Context, name string, extra map[string]string) (*Node, error) {
	settings := map[string]string{"NOVA_INSTANCE_ID": "bench-" + name}
	for _, m := range []map[string]string{e.Settings, extra} {
		for k, v := range m {
			settings[k] = v
		}
	}
	e.mu.Lock()
	e.started++
	logPath := filepath.Join(e.LogDir, fmt.Sprintf("nova-%02d-%s.log", e.started, name))
	e.mu.Unlock()
	p, err := testinfra.LaunchProcess(ctx, testinfra.ProcessOptions{Binary: e.NovaBin, LogPath: logPath,
		Env:         testinfra.Env{DatabaseURL: e.DBURL, RedisURL: e.redisURL(), Settings: settings},
		SysProcAttr: childAttr(), ReadyWithin: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("nova serve %s: %w", name, err)
	}
	e.onClose(func() { _ = p.Stop() })
	return &Node{Process: p, Name: name}, nil
}

// StopNodes stops every running node (in parallel).
func (e *Env) StopNodes() {
	var wg sync.WaitGroup
	for _, n := range e.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Stop() }()
	}
	wg.Wait()
	e.Nodes = nil
}

// Leader is the node whose outbox relay leads shard 0 (with one fan-out partition, the one
// relay leader; its last "relay leads outbox shards" line names the shards it leads); nil if
// none has said so within wait.
func (e *Env) Leader(wait time.Duration) *Node {
	deadline := time.Now().Add(wait)
	for {
		for _, n := range e.Nodes {
			if data, err := os.ReadFile(n.LogPath()); err == nil && leadsFirstShard(string(data)) {
				return n
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leadsFirstShard says whether the last line of a node's log that names the relay shards it
// leads includes shard 0 (or, from a nova built before the relay had shards, whether it said it
// leads).
func leadsFirstShard(log string) bool {
	if strings.Contains(log, `"msg":"relay is the outbox leader"`) {
		return true
	}
	const said = `"msg":"relay leads outbox shards"`
	i := strings.LastIndex(log, said)
	if i < 0 {
		return false
	}
	line, _, _ := strings.Cut(log[i:], "\n")
	return strings.Contains(line, `"shards":[0,`) || strings.Contains(line, `"shards":[0]`)
}
