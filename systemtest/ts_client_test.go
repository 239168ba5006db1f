package systemtest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nova-chat/nova/internal/testinfra"
)

// TestTheTypeScriptClient builds clients/ts (npm ci and tsc on a fresh clone) and runs its
// node:test suite against two real `nova serve` instances sharing one database and one Redis.
func TestTheTypeScriptClient(t *testing.T) {
	dir := tsClientDir(t)
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("npx", "tsc", "-p", ".")
	// the demo page embeds the compiled client: it must be this build
	built, err := os.ReadFile(filepath.Join(dir, "dist", "src", "index.js"))
	if err != nil {
		t.Fatalf("the build: %v", err)
	}
	embedded, err := os.ReadFile(filepath.Join(dir, "..", "..", "ports", "demo", "assets", "nova-client.js"))
	if err != nil {
		t.Fatalf("the embedded copy: %v", err)
	}
	if string(built) != string(embedded) {
		t.Errorf("ports/demo/assets/nova-client.js is not the current build of clients/ts: run make demo-assets")
	}

	rds := testinfra.StartRedis(t)
	env := testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()}
	a, b := testinfra.StartProcess(t, env), testinfra.StartProcess(t, env)
	alice, bob := testinfra.NewUser(t, a.URL), testinfra.NewUser(t, b.URL)
	conv := alice.CreateConversation(bob.User)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-timeout=60000", "--test-force-exit", "dist/test/")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOVA_URLS="+a.URL+","+b.URL, "NOVA_CONV="+string(conv),
		"NOVA_TOKEN_ALICE="+alice.Token, "NOVA_TOKEN_BOB="+bob.Token)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", lastLinesOf(string(out), 9))
}

func lastLinesOf(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tsClientDir is clients/ts with its npm packages installed (npm ci on a fresh clone: the
// TypeScript compiler, ws and playwright-core, all development dependencies).
func tsClientDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../clients/ts")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	return dir
}
