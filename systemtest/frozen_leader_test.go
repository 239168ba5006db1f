package systemtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
)

func TestRowsLeftForAFrozenRelayLeaderAreRelayedByAnotherInstance(t *testing.T) {
	// given instance A leads the outbox relay and instance B serves alice and bob
	rds := testinfra.StartRedis(t)
	env := testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()}
	a := testinfra.StartProcess(t, env)
	testinfra.Eventually(t, 10*time.Second, "A leads the relay", func() bool {
		v, ok := scrapeMetrics(t, a.AdminURL).get("nova_outbox_relay_leader")
		return ok && v == 1
	})
	b := testinfra.StartProcess(t, env)
	alice, bob := testinfra.NewUser(t, b.URL), testinfra.NewUser(t, b.URL)
	conv := alice.CreateConversation(bob.User)
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, nil)
	for _, key := range []string{"m1", "m2"} {
		alice.Send(conv, key, key)
	}
	expectSeqs(t, ws.Messages(2, 10*time.Second), 1)
	// (and their outbox rows are gone, so A has nothing to relay that could refill the stream)
	pool := testinfra.Pool(t, env.DatabaseURL)
	testinfra.Eventually(t, 10*time.Second, "the outbox is empty", func() bool {
		var n int
		return pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n) == nil && n == 0
	})

	// when A is frozen (SIGSTOP: it keeps its lock and session) and the next message cannot take
	// the fast path (its stream was lost, so seq 3 does not follow the stream's top)
	a.Pause()
	t.Cleanup(a.Resume)
	if err := rds.Client().Del(context.Background(), redisstream.ConversationStream(string(conv))).Err(); err != nil {
		t.Fatal(err)
	}
	alice.Send(conv, "m3", "m3")

	// then B relays it after the bound, and bob gets it while A is still frozen
	expectSeqs(t, ws.Messages(1, 15*time.Second), 3)
	if v, _ := scrapeMetrics(t, b.AdminURL).get("nova_outbox_relay_takeovers_total"); v < 1 {
		t.Fatalf("B's takeover counter is %v, want at least 1", v)
	}
}
