package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nova-chat/nova/internal/ctxsleep"
	"github.com/nova-chat/nova/internal/testinfra"
)

// Centrifugo v6 (two nodes, Redis engine on the bench's private redis-server, history on) is
// the same-run comparison DESIGN.md's latency and CPU targets are stated against.

const (
	centrifugoModule  = "github.com/centrifugal/centrifugo/v6"
	centrifugoVersion = "6.9.1"
	// centrifugoNamespace holds the bench channels ("novabench:c0", ...); its options are
	// the comparison's: history on, recovery and positioning forced, clients may subscribe.
	centrifugoNamespace  = "novabench"
	centrifugoRedisDB    = 1 // Nova uses DB 0; Redis PUB/SUB is global, hence the prefix too
	centrifugoPrefix     = "novabench_centrifugo"
	centrifugoHistory    = 1000
	centrifugoHistoryTTL = "300s"
)

// centrifugoBin is where the pinned build is installed (GOBIN=<repo>/.data/bin, git-ignored).
func centrifugoBin() (string, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	root := strings.TrimSpace(string(out))
	if err != nil || root == "" {
		if root, err = os.Getwd(); err != nil {
			return "", err
		}
	}
	return filepath.Join(root, ".data", "bin", "centrifugo"), nil
}

// centrifugoInstalled reports whether bin is Centrifugo v6.9.1: `centrifugo version` says so
// when built with the version stamped (as installCentrifugo does), otherwise the module
// version recorded in the binary (`go version -m`) does.
func centrifugoInstalled(ctx context.Context, bin string) bool {
	if _, err := os.Stat(bin); err != nil {
		return false
	}
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil && strings.Contains(string(out), " v"+centrifugoVersion+" ") {
		return true
	}
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	return err == nil && moduleVersionIs(string(out), centrifugoModule, "v"+centrifugoVersion)
}

// moduleVersionIs finds the main module line of `go version -m` output: "\tmod\t<path>\t<version>\t...".
func moduleVersionIs(goVersionM, module, version string) bool {
	for _, line := range strings.Split(goVersionM, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "mod" && f[1] == module && f[2] == version {
			return true
		}
	}
	return false
}

// installCentrifugo makes sure bin holds Centrifugo v6.9.1, building it with `go install`
// (pinned, from the Go module proxy) if it does not; the build takes minutes on 2 cores.
// It returns how it got there, for the report.
func (b *Bench) installCentrifugo(ctx context.Context, bin string) (string, error) {
	if centrifugoInstalled(ctx, bin) {
		return "already installed", nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	t := time.Now()
	pkg := centrifugoModule + "@v" + centrifugoVersion
	b.log.Printf("centrifugo: go install %s into %s (a few minutes on 2 cores)", pkg, filepath.Dir(bin))
	stop := b.log.Every(15*time.Second, func() string {
		return fmt.Sprintf("centrifugo: still building (%s)", time.Since(t).Round(time.Second))
	})
	defer stop()
	// The version is stamped so that `centrifugo version` and its logs say 6.9.1, as a release does.
	cmd := exec.CommandContext(ctx, "go", "install",
		"-ldflags=-X "+centrifugoModule+"/internal/build.Version="+centrifugoVersion, pkg)
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(bin))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %v\n%s", pkg, err, tail(out, 2000))
	}
	if !centrifugoInstalled(ctx, bin) {
		return "", fmt.Errorf("go install %s finished but %s is not v%s", pkg, bin, centrifugoVersion)
	}
	return fmt.Sprintf("built with go install in %s", time.Since(t).Round(time.Second)), nil
}

// centrifugoParams are what differs between the generated configs.
type centrifugoParams struct {
	Name       string // node name
	Port       int    // one port serves WebSocket, the HTTP API and /health
	RedisAddr  string // host:port
	APIKey     string
	HMACSecret string
}

// centrifugoConfig is a node's JSON config in v6 layout (v6 regrouped v5's flat keys:
// client.token.hmac_secret_key, http_api.key, engine.type/engine.redis, channel.namespaces);
// the bench runs `centrifugo checkconfig --strict` on it, which fails on unknown keys.
func centrifugoConfig(p centrifugoParams) ([]byte, error) {
	ns := map[string]any{
		"name":                       centrifugoNamespace,
		"history_size":               centrifugoHistory,
		"history_ttl":                centrifugoHistoryTTL,
		"force_recovery":             true,
		"force_positioning":          true,
		"allow_subscribe_for_client": true,
	}
	cfg := map[string]any{
		"log":         map[string]any{"level": "info"},
		"node":        map[string]any{"name": p.Name},
		"http_server": map[string]any{"address": "127.0.0.1", "port": p.Port},
		"health":      map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
		"http_api":    map[string]any{"key": p.APIKey},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": p.HMACSecret},
			"allowed_origins": []string{"http://127.0.0.1"},
		},
		"engine": map[string]any{
			"type": "redis",
			"redis": map[string]any{
				"address": []string{"redis://" + p.RedisAddr},
				"db":      centrifugoRedisDB,
				"prefix":  centrifugoPrefix,
			},
		},
		"channel": map[string]any{"namespaces": []any{ns}},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// centrifugoToken is a connection JWT (HS256, sub = user) for the client secret.
func centrifugoToken(secret, user string, ttl time.Duration) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": time.Now().Add(ttl).Unix()})
	return t.SignedString([]byte(secret))
}

// cfNode is one `centrifugo` process.
type cfNode struct {
	Name    string
	URL     string // http://127.0.0.1:port
	LogPath string
	Config  string
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
}

func (n *cfNode) PID() int { return n.cmd.Process.Pid }

// Stop sends SIGTERM and kills the node after 10 s.
func (n *cfNode) Stop() { stopProcess(n.cmd, n.done, syscall.SIGTERM, 10*time.Second) }

// cfCluster is the run's Centrifugo: binary, secrets, nodes.
type cfCluster struct {
	Bin        string
	APIKey     string
	HMACSecret string
	Nodes      []*cfNode
	Warnings   []string // "unknown key in configuration file" and the like, from the node logs
}

// startCentrifugo writes a config per node into the log folder, checks it with
// `centrifugo checkconfig --strict` and starts the nodes one after the other, each answering
// /health before the next starts; then it waits until both see each other through Redis.
func (b *Bench) startCentrifugo(ctx context.Context, bin string, n int) (*cfCluster, error) {
	c := &cfCluster{Bin: bin, APIKey: randomHex(16), HMACSecret: randomHex(24)}
	b.cf = c
	for i := range n {
		port, err := testinfra.FreePort()
		if err != nil {
			return c, err
		}
		name := fmt.Sprintf("c%d", i+1)
		data, err := centrifugoConfig(centrifugoParams{Name: name, Port: port, RedisAddr: b.env.Redis.Addr(),
			APIKey: c.APIKey, HMACSecret: c.HMACSecret})
		if err != nil {
			return c, err
		}
		cfgPath := filepath.Join(b.env.LogDir, "centrifugo-"+name+".config.json")
		if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
			return c, err
		}
		if out, err := exec.CommandContext(ctx, bin, "checkconfig", "--strict", "-c", cfgPath).CombinedOutput(); err != nil {
			return c, fmt.Errorf("centrifugo checkconfig --strict %s: %v: %s", cfgPath, err, strings.TrimSpace(string(out)))
		}
		node, err := b.startCentrifugoNode(ctx, c, name, port, cfgPath)
		if node != nil {
			c.Nodes = append(c.Nodes, node)
		}
		if err != nil {
			return c, err
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		nodes, err := c.nodeCount(ctx, b.api.http)
		if err == nil && nodes >= n {
			break
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("centrifugo nodes do not see each other through Redis after 15s (info: %d nodes, %v)", nodes, err)
		}
		if ctxsleep.Sleep(ctx, 100*time.Millisecond) != nil {
			return c, ctx.Err()
		}
	}
	for _, node := range c.Nodes {
		data, _ := os.ReadFile(node.LogPath)
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "unknown key") || strings.Contains(line, `"level":"warn"`) || strings.Contains(line, " WRN ") {
				c.Warnings = append(c.Warnings, node.Name+": "+strings.TrimSpace(line))
			}
		}
	}
	return c, nil
}

func (b *Bench) startCentrifugoNode(ctx context.Context, c *cfCluster, name string, port int, cfgPath string) (*cfNode, error) {
	logPath := filepath.Join(b.env.LogDir, "centrifugo-"+name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.Bin, "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start centrifugo: %w", err)
	}
	n := &cfNode{Name: name, URL: fmt.Sprintf("http://127.0.0.1:%d", port), LogPath: logPath, Config: cfgPath, cmd: cmd, done: make(chan struct{})}
	go func() { n.exitErr = cmd.Wait(); _ = logf.Close(); close(n.done) }()
	b.env.onClose(n.Stop)

	return n, waitReady(ctx, "centrifugo "+name, n.URL+"/health", n.done, func() error { return n.exitErr }, logPath)
}

// Stop stops every node (in parallel is not needed: there are two and they stop fast).
func (c *cfCluster) Stop() {
	if c == nil {
		return
	}
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// pids are the running nodes' process ids (cpu.go counts them as "centrifugo").
func (c *cfCluster) pids() []int {
	if c == nil {
		return nil
	}
	var out []int
	for _, n := range c.Nodes {
		select {
		case <-n.done:
		default:
			out = append(out, n.PID())
		}
	}
	return out
}

// apiCall posts one server API command to node and decodes its result into out (nil: ignored).
func (c *cfCluster) apiCall(ctx context.Context, hc *http.Client, node *cfNode, method string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, node.URL+"/api/"+method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", c.APIKey)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return decodeAPIReply(resp.StatusCode, data, out)
}

// decodeAPIReply reads a server API answer: HTTP 200 with {"result":...} or {"error":{...}}.
func decodeAPIReply(status int, data []byte, out any) error {
	if status != http.StatusOK {
		return fmt.Errorf("HTTP %d %s", status, strings.TrimSpace(tail(data, 300)))
	}
	var r struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("decode API reply %.200s: %w", data, err)
	}
	if r.Error != nil {
		return fmt.Errorf("API error %d: %s", r.Error.Code, r.Error.Message)
	}
	if out != nil && len(r.Result) > 0 {
		return json.Unmarshal(r.Result, out)
	}
	return nil
}

// nodeCount asks the first node how many nodes the cluster has.
func (c *cfCluster) nodeCount(ctx context.Context, hc *http.Client) (int, error) {
	if len(c.Nodes) == 0 {
		return 0, errors.New("no nodes")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var info struct {
		Nodes []json.RawMessage `json:"nodes"`
	}
	if err := c.apiCall(ctx, hc, c.Nodes[0], "info", []byte(`{}`), &info); err != nil {
		return 0, err
	}
	return len(info.Nodes), nil
}

// publishBody is a publish API command carrying a latency probe, the same body Nova's sends carry.
func publishBody(channel string, intended time.Time, k int) []byte {
	return []byte(`{"channel":` + strconv.Quote(channel) + `,"data":{"t":` + strconv.FormatInt(intended.UnixNano(), 10) +
		`,"k":` + strconv.Itoa(k) + `,"text":"novabench latency probe"}}`)
}

func cfChannel(i int) string { return centrifugoNamespace + ":c" + strconv.Itoa(i) }
