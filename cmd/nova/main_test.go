package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nova-chat/nova/internal/testinfra"
)

func TestHelpAndVersionPrintToStdoutAndExitZero(t *testing.T) {
	cases := []struct {
		args []string
		want []string // in stdout
	}{
		{[]string{"help"}, []string{"usage: nova <command>", "serve", "NOVA_HTTP_ADDR"}},
		{[]string{"--help"}, []string{"usage: nova <command>"}},
		{[]string{"serve", "--help"}, []string{"usage: nova serve", "NOVA_JWT_SECRET_FILE"}},
		{[]string{"token", "-h"}, []string{"usage: nova token", "-user", "-ttl"}},
		{[]string{"streams", "--help"}, []string{"-busiest"}},
		{[]string{"version"}, []string{"nova "}},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != 0 {
			t.Errorf("nova %v: exit %d, stderr %q; want 0", tc.args, code, stderr.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("nova %v: stdout lacks %q:\n%s", tc.args, w, stdout.String())
			}
		}
		for _, line := range strings.Split(stdout.String(), "\n") {
			if strings.Count(line, "(default ") > 1 || strings.Contains(line, "(default -)") {
				t.Errorf("nova %v: a default is shown twice or as '-': %s", tc.args, line)
			}
		}
	}
}

func TestMistakesExitTwoWithAOneLineReason(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"serve", "--no-such-flag"}, {"token", "--user", "not-a-uuid"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("nova %v: exit %d, want 2", args, code)
		}
		if stderr.Len() == 0 {
			t.Errorf("nova %v: nothing on stderr", args)
		}
	}
}

func TestServeRefusesARedisClusterNodeWithAOneLineError(t *testing.T) {
	// given a Redis Cluster node named by a redis:// URL (a client of that one node would take
	// sends and then fail every publish whose keys another node serves)
	rds := testinfra.StartRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"))
	env := append(os.Environ(), "REDIS_URL="+rds.URL(), "DATABASE_URL=postgres://127.0.0.1:1/none",
		"NOVA_JWT_SECRET="+strings.Repeat("s", 40), "NOVA_HTTP_ADDR=127.0.0.1:0", "NOVA_ADMIN_ADDR=127.0.0.1:0")

	// when nova serve starts against it
	_, stderr, code := runNova(t, env, "serve")

	// then it refuses at once, exit 2, saying why in one line
	if code != 2 || !strings.Contains(stderr, "Redis Cluster needs its seeds in REDIS_URL") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Fatalf("exit %d, stderr %q; want 2 and one line about Redis Cluster", code, stderr)
	}
}

func TestHealthcheckAsksTheLocalInstance(t *testing.T) {
	rds := testinfra.StartRedis(t)
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()})
	addr := strings.TrimPrefix(inst.URL, "http://")
	var stderr bytes.Buffer
	if code := healthcheck(addr, &stderr); code != 0 {
		t.Fatalf("healthcheck of a running instance: exit %d, %s", code, stderr.String())
	}
	if code := healthcheck("127.0.0.1:1", &stderr); code != 1 {
		t.Fatalf("healthcheck of nothing: exit %d, want 1", code)
	}
}

func TestMigrateNeedsOnlyPostgres(t *testing.T) {
	// given a fresh database, no JWT secret and no Redis at all
	db := testinfra.NewDatabase(t)
	env := []string{"DATABASE_URL=" + db, "REDIS_URL=redis://127.0.0.1:1/0", "PATH=" + os.Getenv("PATH")}

	// when nova migrate runs, then it applies the migrations and exits 0
	if _, stderr, code := runNova(t, env, "migrate"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// and serve's tables are there
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var table *string
	if err := conn.QueryRow(context.Background(), `SELECT to_regclass('public.messages')::text`).Scan(&table); err != nil || table == nil {
		t.Fatalf("no messages table after migrate (%v)", err)
	}
	// and a second run has nothing to do and exits 0
	if _, stderr, code := runNova(t, env, "migrate"); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
}
