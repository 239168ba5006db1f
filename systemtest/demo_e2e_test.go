package systemtest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nova-chat/nova/internal/testinfra"
)

// TestTheDemoPageInTwoBrowsers drives two headless Chromium pages (playwright-core, Debian's
// chromium) on the demo page of two instances: messages flow both ways, and a page that was
// offline while the other sent shows each message once, in order. Screenshots: artifacts/.
func TestTheDemoPageInTwoBrowsers(t *testing.T) {
	dir := tsClientDir(t)
	rds := testinfra.StartRedis(t)
	env := testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL(), Settings: map[string]string{"NOVA_DEMO": "true"}}
	a, b := testinfra.StartProcess(t, env), testinfra.StartProcess(t, env)
	artifacts, _ := filepath.Abs("../artifacts")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "e2e/demo.e2e.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOVA_A="+a.URL, "NOVA_B="+b.URL, "ARTIFACTS="+artifacts)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo e2e: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
