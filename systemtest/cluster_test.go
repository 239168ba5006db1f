package systemtest_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/messaging"
)

// On a Redis Cluster (3 masters, one replica each) with 4 fan-out partitions, two instances
// deliver across instances and count each message once, and a master failing over in the middle
// of a stream of sends loses nothing: every message reaches the subscriber once, in order, and
// every offline count is exact.
func TestOnRedisClusterTwoInstancesDeliverCountAndSurviveAMasterFailover(t *testing.T) {
	const conversations, before, during = 6, 3, 20
	settings := map[string]string{"NOVA_SEND_RATE": "0"}
	maps.Copy(settings, fastClaims) // so that a redelivery would happen, and show, within the test
	rds := clusterTopology.start(t) // 4 partitions
	cluster, rdb, part := rds.Cluster, rds.Client(), rds.Partitions
	env := rds.Env(testinfra.NewDatabase(t), settings)
	a, b := testinfra.StartProcess(t, env), testinfra.StartProcess(t, env)
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL)   // subscribed on the other instance
	carol := testinfra.NewUser(t, a.URL) // offline

	var convs []conversation.ID
	ws := bob.DialWS("", "")
	for range conversations {
		c := alice.CreateConversation(bob.User, carol.User)
		convs = append(convs, c)
		ws.Subscribe(c, nil)
	}
	received := map[conversation.ID]int64{}
	expectNext := func(n int, within time.Duration) {
		t.Helper()
		for _, m := range ws.Messages(n, within) {
			if m.Seq != received[m.ConversationID]+1 {
				t.Fatalf("conversation %s: seq %d after %d", m.ConversationID, m.Seq, received[m.ConversationID])
			}
			received[m.ConversationID] = m.Seq
		}
	}

	// given messages sent on A, delivered on B and counted for carol
	for i := 1; i <= before; i++ {
		for _, c := range convs {
			alice.Send(c, fmt.Sprintf("before-%d", i), i)
		}
	}
	expectNext(conversations*before, 15*time.Second)

	// when the master holding the first conversation's partition fails over while alice sends
	var sending sync.WaitGroup
	sending.Add(1)
	go func() {
		defer sending.Done()
		for i := 1; i <= during; i++ {
			for _, c := range convs {
				if _, status := alice.Send(c, fmt.Sprintf("during-%d", i), i); status != 201 {
					t.Errorf("send during the failover: %d", status)
				}
			}
			time.Sleep(150 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	stopped := cluster.StopMasterOf(part.Stream(part.Of(string(convs[0]))), 30*time.Second)
	t.Logf("master on port %d stopped; its replica took over", stopped.Port)
	sending.Wait()

	// then bob has every message once, in order, and carol's counts are exact
	expectNext(conversations*during, 60*time.Second)
	for _, c := range convs {
		if received[c] != before+during {
			t.Fatalf("conversation %s: bob has up to seq %d, want %d", c, received[c], before+during)
		}
		eventually(t, 30*time.Second, "carol's offline count is exact", func() bool {
			return offlineCount(t, rdb, carol.User, c) == before+during
		})
	}
	time.Sleep(4 * time.Second) // a count applied twice (a claim after 2 s idle, then a redelivery) would show by now
	for _, c := range convs {
		if n := offlineCount(t, rdb, carol.User, c); n != before+during {
			t.Fatalf("carol's offline count in %s is %d, want %d", c, n, before+during)
		}
	}
	if extra, ok := ws.TryNext(500 * time.Millisecond); ok && extra.Type == "message" {
		t.Fatalf("a message arrived twice: %+v", extra.Message)
	}

	// and after the failover the metrics and `nova streams` show every partition, each group
	// caught up on it, and the relay's four shards led between the two instances
	eventually(t, 30*time.Second, "every partition's groups caught up in /metrics", func() bool {
		m := scrapeMetrics(t, a.AdminURL)
		for p := range part.Count() {
			stream := part.Stream(p)
			if _, ok := m.get("nova_stream_length", "stream", stream, "kind", "fanout"); !ok {
				return false
			}
			if pending, ok := m.get("nova_consumer_group_pending", "stream", stream, "group", messaging.GroupMessagingService); !ok || pending != 0 {
				return false
			}
		}
		return true
	})
	// (the shards are rebalanced every 2 s, so the split is waited for, not read once)
	eventually(t, 10*time.Second, "the four relay shards led between the two instances, some each", func() bool {
		ledA, _ := scrapeMetrics(t, a.AdminURL).get("nova_outbox_relay_shards")
		ledB, _ := scrapeMetrics(t, b.AdminURL).get("nova_outbox_relay_shards")
		return ledA+ledB == 4 && ledA > 0 && ledB > 0
	})
	streams := exec.Command(testinfra.NovaBinary(t), "streams")
	streams.Env = append(os.Environ(), "REDIS_URL="+env.RedisURL, "DATABASE_URL="+env.DatabaseURL, "NOVA_FANOUT_PARTITIONS="+env.Settings["NOVA_FANOUT_PARTITIONS"])
	out, err := streams.CombinedOutput()
	if err != nil {
		t.Fatalf("nova streams: %v\n%s", err, out)
	}
	for p := range part.Count() {
		if !strings.Contains(string(out), part.Stream(p)) {
			t.Errorf("nova streams does not show partition %d:\n%s", p, out)
		}
	}
}

// On a Redis Cluster, a planned failover (CLUSTER FAILOVER) demotes the master that holds a
// conversation's live channel, and Redis unsubscribes the instances from its sharded channels.
// An instance following the conversation subscribes again at the new master at once, so live
// delivery goes on within seconds rather than at the next full re-check (a minute).
func TestOnRedisClusterLiveDeliveryGoesOnAfterAPlannedFailover(t *testing.T) {
	rds := clusterTopology.start(t)
	env := rds.Env(testinfra.NewDatabase(t), map[string]string{"NOVA_SEND_RATE": "0"})
	a, b := testinfra.StartInstance(t, env), testinfra.StartInstance(t, env)
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL) // subscribed on the other instance
	conv := alice.CreateConversation(bob.User)
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, nil)
	alice.Send(conv, "before", 1)
	if m := ws.Messages(1, 10*time.Second); m[0].Seq != 1 {
		t.Fatalf("got seq %d, want 1", m[0].Seq)
	}

	// when the master holding the conversation's live channel hands its slots to its replica
	old := rds.Cluster.FailOverMasterOf(rds.Partitions.LiveChannel(string(conv)), 30*time.Second)
	t.Logf("the master on port %d failed over to its replica", old.Port)

	// then each message sent after it reaches bob within seconds (live, or at the latest at the
	// next re-check of recently re-subscribed conversations, NOVA_LIVE_RECHECK, 5 s)
	for seq := int64(2); seq <= 4; seq++ {
		alice.Send(conv, fmt.Sprintf("after-%d", seq), seq)
		if m := ws.Messages(1, 10*time.Second); m[0].Seq != seq {
			t.Fatalf("got seq %d, want %d", m[0].Seq, seq)
		}
	}
	// because b opened the dropped connection again (and not by some other way round)
	rec := httptest.NewRecorder()
	b.Server.AdminHandler(false).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !regexp.MustCompile(`(?m)^nova_live_connections_reopened_total [1-9]`).Match(rec.Body.Bytes()) {
		t.Fatalf("instance b did not open a live connection again; its /metrics:\n%s",
			regexp.MustCompile(`(?m)^nova_live.*$`).FindAll(rec.Body.Bytes(), -1))
	}
}
