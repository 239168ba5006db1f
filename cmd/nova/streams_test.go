package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
)

// runNova runs the built binary with env and returns its stdout, stderr and exit code.
func runNova(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testinfra.NovaBinary(t), args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// row finds the line of a table whose first fields are prefix, and returns its fields.
func row(t *testing.T, out string, prefix ...string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(prefix) && slicesEqual(f[:len(prefix)], prefix) {
			return f
		}
	}
	t.Fatalf("no row starting with %q in:\n%s", prefix, out)
	return nil
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestStreamsCommandPrintsStreamsGroupsAndOutbox(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()

	// given a busy conversation with 7 messages, all on the fan-out stream
	busy := redisstream.ConversationStream(uuid.NewString())
	var fanIDs []string
	for seq := 1; seq <= 7; seq++ {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: busy, ID: fmt.Sprintf("%d-0", seq),
			Values: map[string]any{"seq": seq, "payload": "{}"}}).Err(); err != nil {
			t.Fatal(err)
		}
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: redisstream.FanoutStream, Values: map[string]any{
			"stream_key": busy, "entry_id": fmt.Sprintf("%d-0", seq), "payload": "{}"}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		fanIDs = append(fanIDs, id)
	}
	// and a quiet conversation that only a SCAN finds (nothing of it is on the fan-out stream)
	quiet := redisstream.ConversationStream(uuid.NewString())
	for seq := 1; seq <= 2; seq++ {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: quiet, ID: fmt.Sprintf("%d-0", seq), Values: map[string]any{"seq": seq}})
	}
	// and the messaging-service group, where worker-a took 4 entries and acknowledged none
	must(t, rdb.XGroupCreate(ctx, redisstream.FanoutStream, "messaging-service", "0").Err())
	must(t, rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "messaging-service", Consumer: "worker-a",
		Streams: []string{redisstream.FanoutStream, ">"}, Count: 4}).Err())
	// and a second group that is up to date, and two dead letters
	must(t, rdb.XGroupCreate(ctx, redisstream.FanoutStream, "audit", "$").Err())
	for i := 0; i < 2; i++ {
		must(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: redisstream.DeadLetterStream, Values: map[string]any{"payload": "x"}}).Err())
	}
	// and an outbox holding one row for 90 s
	db := testinfra.NewDatabase(t)
	pool, closePool, err := postgres.NewPool(ctx, postgres.DSN(db))
	must(t, err)
	defer closePool()
	migrator, _, err := postgres.NewMigrator(pool)
	must(t, err)
	must(t, migrator.Up(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))))
	_, err = pool.Exec(ctx, `INSERT INTO outbox (conversation_id, seq, message_id, sender_id, created_at, queued_at, payload)
		VALUES ($1, 1, $2, $3, now() - interval '90 seconds', now() - interval '90 seconds', '{}')`, uuid.NewString(), uuid.NewString(), uuid.NewString())
	must(t, err)

	// when an operator runs nova streams
	env := []string{"REDIS_URL=" + rds.URL(), "DATABASE_URL=" + db}
	out, errOut, code := runNova(t, env, "streams", "--busiest", "2")
	if code != 0 {
		t.Fatalf("nova streams exited %d: %s", code, errOut)
	}
	t.Logf("nova streams:\n%s", out)

	// then the streams table shows both streams' lengths and first/last ids
	if f := row(t, out, redisstream.FanoutStream, "fanout"); f[2] != "7" || f[3] != fanIDs[0] || f[4] != fanIDs[6] || f[5] != "2" {
		t.Errorf("fan-out row %q: want length 7, first %s, last %s, 2 groups", f, fanIDs[0], fanIDs[6])
	}
	if f := row(t, out, busy, "conversation"); f[2] != "7" || f[3] != "1-0" || f[4] != "7-0" {
		t.Errorf("busy conversation row %q: want 7 entries 1-0 .. 7-0", f)
	}
	if f := row(t, out, quiet, "conversation"); f[2] != "2" || f[4] != "2-0" {
		t.Errorf("quiet conversation row %q: want 2 entries up to 2-0", f)
	}
	if f := row(t, out, redisstream.DeadLetterStream, "dead-letter"); f[2] != "2" {
		t.Errorf("dead-letter row %q: want length 2", f)
	}
	// and each group with its consumers, pending count, lag and oldest pending idle time
	if f := row(t, out, redisstream.FanoutStream, "messaging-service"); f[2] != "1" || f[3] != "4" || f[4] != "3" ||
		!regexp.MustCompile(`^[0-9.]+(ms|s|µs)$`).MatchString(f[5]) || f[6] != fanIDs[3] {
		t.Errorf("messaging-service row %q: want 1 consumer, 4 pending, lag 3, an idle time, last delivered %s", f, fanIDs[3])
	}
	if f := row(t, out, "consumer", "worker-a"); f[2] != "4" || f[3] != "idle" {
		t.Errorf("worker-a row %q: want 4 pending", f)
	}
	if f := row(t, out, redisstream.FanoutStream, "audit"); f[2] != "0" || f[3] != "0" || f[4] != "0" || f[5] != "-" {
		t.Errorf("audit row %q: want no consumers, nothing pending, lag 0", f)
	}
	// and the outbox backlog
	// (the row is 90 s old when inserted; building and running the binary adds seconds under load)
	if !regexp.MustCompile(`backlog 1 rows, oldest (1m[3-5]\d|2m[0-5]\d)(\.\d+)?s`).MatchString(out) {
		t.Errorf("outbox line missing or wrong (want backlog 1 rows, oldest ~1m30s):\n%s", out)
	}

	// Postgres is optional: without it the command still answers, and says why the outbox is missing
	out, errOut, code = runNova(t, []string{"REDIS_URL=" + rds.URL(), "DATABASE_URL=postgres://nobody@127.0.0.1:1/none"}, "streams")
	if code != 0 || !strings.Contains(out, "OUTBOX (Postgres)\nunavailable:") || !strings.Contains(out, "messaging-service") {
		t.Errorf("without Postgres: exit %d, stderr %q, output:\n%s", code, errOut, out)
	}
	// Redis is not: exit 1 with a one-line reason
	_, errOut, code = runNova(t, []string{"REDIS_URL=redis://127.0.0.1:1/0"}, "streams")
	if code != 1 || !strings.Contains(errOut, "cannot inspect Redis") {
		t.Errorf("without Redis: exit %d, stderr %q; want 1 and a reason", code, errOut)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
