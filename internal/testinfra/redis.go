package testinfra

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
)

// Redis is a private redis-server for one test, on a free loopback port, keeping nothing on disk.
// Tests may stop, restart or flush it without disturbing anything else.
type Redis struct {
	t    testing.TB
	Port int
	dir  string
	cmd  *exec.Cmd
	args []string
}

// StartRedis starts a private Redis; extra are more redis-server arguments (e.g. "--maxmemory", "2mb").
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (make test installs it): %v", err)
	}
	r := &Redis{t: t, Port: freePort(t), dir: t.TempDir()}
	r.args = append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(r.Port), "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--maxmemory-policy", "noeviction"}, extra...)
	r.args = append([]string{bin}, r.args...)
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// Client returns a client that the test's cleanup closes.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port)})
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Start (re)starts the server on the same port, empty.
func (r *Redis) Start() {
	r.t.Helper()
	r.cmd = exec.Command(r.args[0], r.args[1:]...)
	logf, err := os.Create(filepath.Join(r.dir, "redis.log"))
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	waitForPort(r.t, r.Port, 10*time.Second)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatal("redis-server did not answer PING")
		}
		time.Sleep(20 * time.Millisecond)
	}
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

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitForPort(t testing.TB, port int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on port %d after %s", port, within)
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
