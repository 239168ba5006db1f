package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// jwtSecret signs every token of the run; the instances are started with it.
const jwtSecret = "novabench-secret-0123456789-0123456789"

// Env is the private infrastructure of one bench run: a fresh database on the admin Postgres,
// a private redis-server and the nova serve processes. Close undoes all of it.
type Env struct {
	AdminURL string
	DBName   string
	DBURL    string
	Dir      string // temporary folder: nova binary, pgbench script
	LogDir   string // where redis and nova logs go (kept after the run)
	NovaBin  string
	Redis    *RedisServer
	DB       *pgxpool.Pool     // the bench's own pool on the bench database
	RDB      *redis.Client     // the bench's own Redis client
	Settings map[string]string // NOVA_* settings every instance gets
	Nodes    []*Node

	mu       sync.Mutex
	cleanups []func()
	started  int // instances started so far (log file names)
}

// adminURL is the Postgres where the bench may CREATE DATABASE, as for `make test`.
func adminURL() string {
	if u := os.Getenv("NOVA_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func newEnv(logDir string) (*Env, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "novabench-")
	if err != nil {
		return nil, err
	}
	e := &Env{AdminURL: adminURL(), Dir: dir, LogDir: logDir}
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateDatabase makes nova_bench_<random> on the admin Postgres and drops it at Close.
func (e *Env) CreateDatabase(ctx context.Context) error {
	admin, err := pgx.Connect(ctx, e.AdminURL)
	if err != nil {
		return fmt.Errorf("connect to admin Postgres %s (NOVA_TEST_DATABASE_URL): %w", redactURL(e.AdminURL), err)
	}
	defer admin.Close(ctx)
	e.DBName = "nova_bench_" + randomHex(5)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+e.DBName); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	e.onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, e.AdminURL); err == nil {
			if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+e.DBName+" WITH (FORCE)"); err != nil {
				fmt.Fprintf(os.Stderr, "novabench: drop database %s: %v\n", e.DBName, err)
			}
			_ = c.Close(ctx)
		}
	})
	u, err := url.Parse(e.AdminURL)
	if err != nil {
		return err
	}
	u.Path = "/" + e.DBName
	e.DBURL = u.String()
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

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// RedisServer is a private redis-server keeping nothing on disk.
type RedisServer struct {
	Port int
	cmd  *exec.Cmd
	done chan struct{}
}

func (r *RedisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// StartRedis runs redis-server on a free port without persistence (production runs AOF).
func (e *Env) StartRedis(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server not found on PATH: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	dir := filepath.Join(e.Dir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(e.LogDir, "redis.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", dir, "--maxmemory-policy", "noeviction", "--maxclients", "10000")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start redis-server: %w", err)
	}
	r := &RedisServer{Port: port, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(r.done) }()
	e.Redis = r
	e.onClose(func() { stopProcess(cmd, r.done, syscall.SIGKILL, 5*time.Second) })
	e.RDB = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), PoolSize: 32})
	e.onClose(func() { _ = e.RDB.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for e.RDB.Ping(ctx).Err() != nil {
		select {
		case <-r.done:
			return errors.New("redis-server exited at start (see its log)")
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("redis-server did not answer PING within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// childAttr puts a child in its own process group (so a Ctrl-C reaches only the bench, which
// then stops the children in order) and kills it if the bench dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func stopProcess(cmd *exec.Cmd, done <-chan struct{}, sig syscall.Signal, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// BuildNova compiles cmd/nova into the temporary folder: from the working tree (the parent of
// the bench module, where make bench runs it), or from the
// git revision ref (exported with git archive, so the working tree is left alone). A prebuilt
// binary (bin) is used as it is.
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
	dir := ".."
	if ref != "" {
		dir = filepath.Join(e.Dir, "src")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		script := fmt.Sprintf("git archive --format=tar %q | tar -x -C %q", ref, dir)
		if out, err := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", script).CombinedOutput(); err != nil {
			return fmt.Errorf("export %s: %v\n%s", ref, err, out)
		}
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", e.NovaBin, "./cmd/nova")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/nova: %v\n%s", err, out)
	}
	return nil
}

// Node is one `nova serve` process.
type Node struct {
	Name     string
	URL      string // public listener, http://127.0.0.1:port
	AdminURL string
	LogPath  string
	cmd      *exec.Cmd
	done     chan struct{}
	exitErr  error
}

func (n *Node) PID() int { return n.cmd.Process.Pid }

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
	for i := range n {
		node, err := e.startNode(ctx, fmt.Sprintf("n%d", i+1), extra)
		if node != nil {
			e.Nodes = append(e.Nodes, node)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) startNode(ctx context.Context, name string, extra map[string]string) (*Node, error) {
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	vars := map[string]string{
		"DATABASE_URL":     e.DBURL,
		"REDIS_URL":        e.Redis.URL(),
		"NOVA_JWT_SECRET":  jwtSecret,
		"NOVA_SEND_RATE":   "0",
		"NOVA_HTTP_ADDR":   fmt.Sprintf("127.0.0.1:%d", httpPort),
		"NOVA_ADMIN_ADDR":  fmt.Sprintf("127.0.0.1:%d", adminPort),
		"NOVA_INSTANCE_ID": "bench-" + name,
		"NOVA_LOG_FORMAT":  "json",
	}
	for k, v := range e.Settings {
		vars[k] = v
	}
	for k, v := range extra {
		vars[k] = v
	}
	e.mu.Lock()
	e.started++
	logPath := filepath.Join(e.LogDir, fmt.Sprintf("nova-%02d-%s.log", e.started, name))
	e.mu.Unlock()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.NovaBin, "serve")
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+vars[k])
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start nova serve: %w", err)
	}
	n := &Node{Name: name, URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		AdminURL: fmt.Sprintf("http://127.0.0.1:%d", adminPort), LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { n.exitErr = cmd.Wait(); _ = logf.Close(); close(n.done) }()
	e.onClose(func() { n.Stop() })

	return n, waitReady(ctx, "nova serve "+name, n.URL+"/readyz", n.done, func() error { return n.exitErr }, logPath)
}

// waitReady polls url until it answers 200, for at most 30 s; a process that exits meanwhile
// (done closed) is reported with the end of its log.
func waitReady(ctx context.Context, what, url string, done <-chan struct{}, exitErr func() error, logPath string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			data, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s exited at start: %v\n%s", what, exitErr(), tail(data, 3000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 30s (log %s)", what, logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop asks the node to shut down (SIGTERM) and kills it after 20 s.
func (n *Node) Stop() { stopProcess(n.cmd, n.done, syscall.SIGTERM, 20*time.Second) }

// StopNodes stops every running node (in parallel).
func (e *Env) StopNodes() {
	var wg sync.WaitGroup
	for _, n := range e.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Stop() }()
	}
	wg.Wait()
	e.Nodes = nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Leader is the node whose outbox relay publishes (it logs "relay is the outbox leader" when
// it takes the lock); nil if none has said so within wait.
func (e *Env) Leader(wait time.Duration) *Node {
	deadline := time.Now().Add(wait)
	for {
		for _, n := range e.Nodes {
			if data, err := os.ReadFile(n.LogPath); err == nil && strings.Contains(string(data), `"msg":"relay is the outbox leader"`) {
				return n
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}
