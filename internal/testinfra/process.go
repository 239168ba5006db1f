package testinfra

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// NovaBinary builds cmd/nova once per test binary (into a temp dir) and returns its path.
func NovaBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nova-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "nova")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/nova-chat/nova/cmd/nova")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Process is a `nova serve` running as its own OS process.
type Process struct {
	t        testing.TB
	URL      string
	AdminURL string
	cmd      *exec.Cmd
	env      []string
	logPath  string
	done     chan struct{}
	exitErr  error
}

// StartProcess runs `nova serve` against env and waits until /readyz answers 200.
func StartProcess(t testing.TB, env Env) *Process {
	t.Helper()
	httpPort, adminPort := freePort(t), freePort(t)
	vars := map[string]string{
		"DATABASE_URL":    env.DatabaseURL,
		"REDIS_URL":       env.RedisURL,
		"NOVA_JWT_SECRET": JWTSecret,
		"NOVA_SEND_RATE":  "0",
		"NOVA_HTTP_ADDR":  fmt.Sprintf("127.0.0.1:%d", httpPort),
		"NOVA_ADMIN_ADDR": fmt.Sprintf("127.0.0.1:%d", adminPort),
		"NOVA_LOG_FORMAT": "json",
	}
	for k, v := range env.Settings {
		vars[k] = v
	}
	p := &Process{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		AdminURL: fmt.Sprintf("http://127.0.0.1:%d", adminPort), logPath: filepath.Join(t.TempDir(), "nova.log")}
	for k, v := range vars {
		p.env = append(p.env, k+"="+v)
	}
	p.start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			if data, err := os.ReadFile(p.logPath); err == nil {
				t.Logf("log of %s:\n%s", p.URL, tail(data, 4000))
			}
		}
	})
	return p
}

func (p *Process) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(NovaBinary(p.t), "serve")
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { p.exitErr = p.cmd.Wait(); _ = logf.Close(); close(p.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			data, _ := os.ReadFile(p.logPath)
			p.t.Fatalf("nova serve exited early: %v\n%s", p.exitErr, tail(data, 4000))
		default:
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(p.logPath)
			p.t.Fatalf("nova serve at %s not ready after 20s; its log ends:\n%s", p.URL, tail(data, 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts the process again (after Kill or Stop) with the same settings and ports, and
// waits until it is ready. (make chaos uses it: the chaos build tag hides that use from vet.)
func (p *Process) Restart() { p.start() }

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() { p.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and returns the exit error once it has exited (nil for a clean exit 0).
func (p *Process) Stop() error { p.signal(syscall.SIGTERM); return p.exitErr }

func (p *Process) signal(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Logs returns what the process has written to stdout and stderr so far.
func (p *Process) Logs() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(data)
}

// Pause stops the process (SIGSTOP) until Resume: it holds its connections but answers nothing.
func (p *Process) Pause() { _ = p.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Process) Resume() { _ = p.cmd.Process.Signal(syscall.SIGCONT) }

// Eventually waits up to within for cond, failing the test with what when it never holds.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
