package testinfra

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
		buildErr = buildNova(context.Background(), "", "github.com/nova-chat/nova/cmd/nova", binPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// BuildNova compiles the cmd/nova of the Nova source tree at srcDir into out (for the
// benchmark, which builds the working tree or an exported git revision).
func BuildNova(ctx context.Context, srcDir, out string) error {
	return buildNova(ctx, srcDir, "./cmd/nova", out)
}

func buildNova(ctx context.Context, dir, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if data, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, data)
	}
	return nil
}

// Process is a `nova serve` running as its own OS process.
type Process struct {
	t        testing.TB // nil for a process the benchmark launched
	URL      string
	AdminURL string
	binary   string
	cmd      *exec.Cmd
	env      []string
	attr     *syscall.SysProcAttr
	ready    time.Duration
	logPath  string
	done     chan struct{}
	exitErr  error
}

// StartProcess runs `nova serve` against env and waits until /readyz answers 200.
func StartProcess(t testing.TB, env Env) *Process {
	t.Helper()
	p, err := launch(context.Background(), ProcessOptions{Binary: NovaBinary(t), Env: env, LogPath: filepath.Join(t.TempDir(), "nova.log")})
	if p != nil {
		p.t = t
		t.Cleanup(func() {
			p.Kill()
			if t.Failed() {
				if data, err := os.ReadFile(p.logPath); err == nil {
					t.Logf("log of %s:\n%s", p.URL, tail(data, 4000))
				}
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ProcessOptions says how to run `nova serve` outside a test (the benchmark does).
type ProcessOptions struct {
	Binary  string // the nova binary (see BuildNova)
	Env     Env    // its database, Redis and more NOVA_* settings (JWTSecret is the secret)
	LogPath string // where its output goes
	// SysProcAttr, if set, is the child's (the benchmark's own process group, a parent-death signal).
	SysProcAttr *syscall.SysProcAttr
	ReadyWithin time.Duration // how long /readyz may take to answer 200 (20 s)
}

// LaunchProcess runs `nova serve` and waits until /readyz answers 200; Stop or Kill ends it.
func LaunchProcess(ctx context.Context, opts ProcessOptions) (*Process, error) {
	p, err := launch(ctx, opts)
	if err != nil {
		if p != nil {
			p.Kill()
		}
		return nil, err
	}
	return p, nil
}

// errPortTaken: the process exited at once because one of its ports was taken.
var errPortTaken = errors.New("a port chosen for nova serve was taken before it could listen")

// launch starts `nova serve` on free ports and waits until it is ready. FreePort's ports are
// free when chosen, but the kernel may give one to an outgoing connection (as its ephemeral
// port) before nova binds it; a process that exits for that gets new ports, up to three times.
// It returns the process it started last, if any, also with an error.
func launch(ctx context.Context, opts ProcessOptions) (*Process, error) {
	for attempt := 1; ; attempt++ {
		p, err := newProcess(opts)
		if err != nil {
			return nil, err
		}
		if err = p.start(ctx); err == nil || !errors.Is(err, errPortTaken) || attempt == 3 {
			return p, err
		}
		_ = os.Remove(opts.LogPath) // it holds only the bind error; the next start writes anew
	}
}

func newProcess(opts ProcessOptions) (*Process, error) {
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	vars := map[string]string{
		"DATABASE_URL":    opts.Env.DatabaseURL,
		"REDIS_URL":       opts.Env.RedisURL,
		"NOVA_JWT_SECRET": JWTSecret,
		"NOVA_SEND_RATE":  "0",
		"NOVA_HTTP_ADDR":  fmt.Sprintf("127.0.0.1:%d", httpPort),
		"NOVA_ADMIN_ADDR": fmt.Sprintf("127.0.0.1:%d", adminPort),
		"NOVA_LOG_FORMAT": "json",
	}
	maps.Copy(vars, opts.Env.Settings)
	p := &Process{URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), AdminURL: fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		binary: opts.Binary, attr: opts.SysProcAttr, ready: cmp.Or(opts.ReadyWithin, 20*time.Second), logPath: opts.LogPath}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		p.env = append(p.env, k+"="+vars[k])
	}
	return p, nil
}

func (p *Process) start(ctx context.Context) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(p.binary, "serve")
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = p.attr
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start nova serve: %w", err)
	}
	p.done = make(chan struct{})
	go func() { p.exitErr = p.cmd.Wait(); _ = logf.Close(); close(p.done) }()
	return p.waitReady(ctx)
}

// waitReady polls /readyz until it answers 200; a process that exits meanwhile is reported
// with the end of its log.
func (p *Process) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(p.ready)
	for {
		resp, err := client.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			data, _ := os.ReadFile(p.logPath)
			if bytes.Contains(data, []byte("address already in use")) {
				return fmt.Errorf("nova serve exited early: %w: %v\n%s", errPortTaken, p.exitErr, tail(data, 4000))
			}
			return fmt.Errorf("nova serve exited early: %v\n%s", p.exitErr, tail(data, 4000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(p.logPath)
			return fmt.Errorf("nova serve at %s not ready after %s; its log ends:\n%s", p.URL, p.ready, tail(data, 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID is the process id of the running process.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// LogPath is the file its stdout and stderr go to.
func (p *Process) LogPath() string { return p.logPath }

// Restart starts the process again (after Kill or Stop) with the same settings and ports, and
// waits until it is ready; for a test's process (StartProcess). (make chaos uses it: the chaos build
// tag hides that use from vet.)
func (p *Process) Restart() {
	p.t.Helper()
	if err := p.start(context.Background()); err != nil {
		p.t.Fatal(err)
	}
}

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
	if err != nil && p.t != nil {
		p.t.Fatal(err)
	}
	return string(data)
}

// Pause stops the process (SIGSTOP) until Resume: it holds its connections but answers nothing.
// It returns once the process is stopped (state T in /proc), not merely signalled: on a busy
// machine a signalled process can still run, and write, for a moment.
func (p *Process) Pause() {
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	stat := fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			return // not Linux, or gone
		}
		// the state follows the command name in parentheses: "pid (comm) S ..."
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'T' {
			return
		}
	}
}

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
