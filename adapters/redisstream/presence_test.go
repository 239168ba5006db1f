package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
)

func TestConnectionsCountOnEveryInstanceUntilOneStopsVouching(t *testing.T) {
	ctx := context.Background()
	rdb := testinfra.StartRedis(t).Client()
	n1, n2 := redisstream.NewPresence(rdb, "n1"), redisstream.NewPresence(rdb, "n2")
	const alice, limit = conversation.UserID("alice"), 3
	admit := func(p *redisstream.Presence) bool {
		t.Helper()
		ok, err := p.Admit(ctx, alice, limit)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	// given alice with two connections on n1 and one on n2
	if !admit(n1) || !admit(n1) || !admit(n2) {
		t.Fatal("the first three connections were refused")
	}
	// then a fourth is refused on either
	if admit(n1) || admit(n2) {
		t.Fatal("a fourth connection was admitted")
	}
	// and she counts as online for offline counting (the count fields are no online marks)
	counter := redisstream.NewOfflineCounter(rdb)
	if _, err := counter.CountOffline(ctx, "g", "c", 1, []conversation.UserID{alice}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Get(ctx, redisstream.OfflineKey(alice, "c")).Int(); n != 0 {
		t.Fatalf("offline counter %d for a user online on two instances, want 0", n)
	}

	// when one closes on n1, another is admitted on n2
	if err := n1.Release(ctx, alice, 1); err != nil {
		t.Fatal(err)
	}
	if !admit(n2) {
		t.Fatal("refused after a release")
	}

	// when n2 stops vouching (crashed: its claim's time passed), its connections no longer count
	if err := rdb.HSet(ctx, "presence:alice", "n2", time.Now().Add(-time.Second).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if !admit(n1) || !admit(n1) {
		t.Fatal("n2's stale connections still count")
	}
	if admit(n1) {
		t.Fatal("n1 holds 3, a fourth was admitted")
	}

	// and the heartbeat sets the count as the instance knows it
	if err := n1.Vouch(ctx, map[conversation.UserID]int{alice: 1}); err != nil {
		t.Fatal(err)
	}
	if !admit(n1) || !admit(n1) || admit(n1) {
		t.Fatal("after the heartbeat set 1, want two more and no third")
	}
}
