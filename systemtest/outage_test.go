package systemtest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
)

func TestPostgresOutageFailsFastWith503AndRecovers(t *testing.T) {
	// given an instance that reaches Postgres through a proxy the test can cut
	viaProxy, proxy := testinfra.ProxiedDatabaseURL(t, testinfra.NewDatabase(t))
	rds := testinfra.StartRedis(t)
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: viaProxy, RedisURL: rds.URL()})
	alice := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation()

	// when Postgres becomes unreachable
	proxy.Cut()

	// then sends fail fast with 503 unavailable, and /readyz names Postgres
	start := time.Now()
	status, body := alice.Do("POST", "/v1/conversations/"+string(conv)+"/messages", map[string]any{"client_msg_id": "x", "body": 1})
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"unavailable"`) {
		t.Fatalf("send while Postgres is down: %d %s", status, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the failing send took %s, want fast", took)
	}
	status, body = alice.Do("GET", "/readyz", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "postgres") {
		t.Fatalf("/readyz while Postgres is down: %d %s", status, body)
	}

	// and once it is back, the same instance serves again without a restart
	proxy.Restore()
	eventually(t, 15*time.Second, "a send succeeds again", func() bool {
		status, _ := alice.Do("POST", "/v1/conversations/"+string(conv)+"/messages", map[string]any{"client_msg_id": "y", "body": 2})
		return status == http.StatusCreated
	})
	waitForStreamTop(t, rds.Client(), conv, "1-0")
}

func TestRedisOutOfMemoryHoldsMessagesInTheOutboxUntilItAcceptsWrites(t *testing.T) {
	// given a Redis with noeviction that is full
	rds := testinfra.StartRedis(t, "--maxmemory", "4mb")
	rdb := rds.Client()
	ctx := context.Background()
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()})
	alice := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation()
	filler := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		if err := rdb.Set(ctx, fmt.Sprintf("filler:%d", i), filler, 0).Err(); err != nil {
			if !strings.Contains(err.Error(), "OOM") {
				t.Fatal(err)
			}
			break
		}
	}

	// when messages are sent, they are stored (Postgres) though Redis refuses the relay's writes
	for i := 1; i <= 10; i++ {
		if _, status := alice.Send(conv, fmt.Sprint(i), i); status != http.StatusCreated {
			t.Fatalf("send %d: %d", i, status)
		}
	}
	relay := inst.Server.Background().Relay
	eventually(t, 10*time.Second, "the relay meets the full Redis", func() bool { return relay.Stats().Errors > 0 })

	// then, once Redis accepts writes again, every message is relayed, in order, none dropped
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	waitForStreamTop(t, rds.Client(), conv, "10-0")
	entries, _ := rdb.XRange(ctx, redisstream.ConversationStream(string(conv)), "-", "+").Result()
	if len(entries) != 10 {
		t.Fatalf("stream holds %d entries, want 10", len(entries))
	}
}
