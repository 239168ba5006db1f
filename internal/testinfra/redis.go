package testinfra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
)

// Redis is a private redis-server on a free loopback port, keeping nothing on disk. Tests may
// stop, restart or flush it without disturbing anything else.
type Redis struct {
	t       testing.TB // nil for a server the benchmark launched
	Port    int
	dir     string
	logPath string
	attr    *syscall.SysProcAttr
	cmd     *exec.Cmd
	args    []string
}

// StartRedis starts a private Redis; extra are more redis-server arguments (e.g. "--maxmemory", "2mb").
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	dir := t.TempDir()
	r, err := newRedis(RedisOptions{Dir: dir, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	r.t = t
	t.Cleanup(r.Stop)
	r.Start()
	return r
}

// RedisOptions says how to run a redis-server outside a test (the benchmark does).
type RedisOptions struct {
	Dir     string   // its working folder (it persists nothing there)
	LogPath string   // where its output goes (default Dir/redis.log)
	Extra   []string // more redis-server arguments
	Port    int      // 0: a free one
	// SysProcAttr, if set, is the child's (the benchmark's own process group, a parent-death signal).
	SysProcAttr *syscall.SysProcAttr
}

// LaunchRedis starts a redis-server and waits until it answers PING; Stop ends it.
func LaunchRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	r, err := newRedis(opts)
	if err != nil {
		return nil, err
	}
	if err := r.start(ctx); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

func newRedis(opts RedisOptions) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (make test installs it): %w", err)
	}
	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	r := &Redis{Port: port, dir: opts.Dir, logPath: opts.LogPath, attr: opts.SysProcAttr}
	r.args = append([]string{bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(r.Port), "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--maxmemory-policy", "noeviction"}, opts.Extra...)
	return r, nil
}

func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// Addr is the server's host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// PID is the running server's process id (0 when it is stopped).
func (r *Redis) PID() int {
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Client returns a client that the test's cleanup closes.
func (r *Redis) Client() *redis.Client {
	c := r.newClient()
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// newClient is a client of this server that the caller closes.
func (r *Redis) newClient() *redis.Client { return redis.NewClient(&redis.Options{Addr: r.Addr()}) }

// Start (re)starts the server on the same port, empty.
func (r *Redis) Start() {
	r.t.Helper()
	if err := r.start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *Redis) start(ctx context.Context) error {
	if r.logPath == "" {
		r.logPath = filepath.Join(r.dir, "redis.log")
	}
	logf, err := os.Create(r.logPath)
	if err != nil {
		return err
	}
	r.cmd = exec.Command(r.args[0], r.args[1:]...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = r.attr
	err = r.cmd.Start()
	_ = logf.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	if err := WaitForPort(ctx, r.Port, 10*time.Second); err != nil {
		return fmt.Errorf("redis-server: %w (log %s)", err, r.logPath)
	}
	c := r.newClient()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("redis-server did not answer PING (log " + r.logPath + ")")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Stop kills the server (its data is gone: nothing is persisted).
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// FreePort is a loopback TCP port nothing listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitForPort waits until something accepts connections on the loopback port, for at most within.
func WaitForPort(ctx context.Context, port int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d after %s", port, within)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Tests that stop Redis on purpose need not print go-redis's dial failures.
func init() { redisstream.RouteLogs(slog.New(slog.NewTextHandler(io.Discard, nil))) }

// StartAfter starts the server again after d, in the background (for a test that starts Nova
// while Redis is down); the channel gets the outcome.
func (r *Redis) StartAfter(d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		time.Sleep(d)
		cmd := exec.Command(r.args[0], r.args[1:]...)
		if err := cmd.Start(); err != nil {
			done <- err
			return
		}
		r.cmd = cmd
		done <- nil
	}()
	return done
}
