package systemtest_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/messaging"
)

var fastClaims = map[string]string{"NOVA_CLAIM_IDLE": "2s", "NOVA_CLAIM_INTERVAL": "1s"}

func offlineCount(t *testing.T, rdb redis.Cmdable, u conversation.UserID, c conversation.ID) int {
	t.Helper()
	v, err := rdb.Get(context.Background(), redisstream.OfflineKey(u, c)).Result()
	if err == redis.Nil {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(v)
	return n
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testinfra.Eventually(t, within, what, cond)
}

// pendingOf is how many entries of the (one) fan-out stream group has not acknowledged, -1 when
// that cannot be read (no stream or no group).
func pendingOf(t *testing.T, rdb redis.Cmdable, group string) int64 {
	t.Helper()
	return pendingIn(t, rdb, []string{redisstream.FanoutStream}, group)
}

// pendingIn is how many entries of streams (e.g. every fan-out partition) group has not
// acknowledged, -1 when that cannot be read in one of them.
func pendingIn(t *testing.T, rdb redis.Cmdable, streams []string, group string) int64 {
	t.Helper()
	var sum int64
	for _, s := range streams {
		p, err := rdb.XPending(context.Background(), s, group).Result()
		if err != nil {
			return -1
		}
		sum += p.Count
	}
	return sum
}

func TestOfflineCounterFollowsPresenceAcrossInstances(t *testing.T) {
	onEachTopology(t, testOfflineCounterFollowsPresenceAcrossInstances)
}

func testOfflineCounterFollowsPresenceAcrossInstances(t *testing.T, top topology) {
	a, b, rds := twoProcessesOn(t, top, nil)
	rdb := rds.Client()
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL)   // online, on the other instance
	carol := testinfra.NewUser(t, a.URL) // offline
	conv := alice.CreateConversation(bob.User, carol.User)
	bob.DialWS("", "")
	time.Sleep(100 * time.Millisecond)

	// when alice sends 3 messages
	for i := 1; i <= 3; i++ {
		alice.Send(conv, fmt.Sprint(i), i)
	}

	// then carol, with no connection anywhere, has 3; bob (online on B) and alice (the sender) have none
	eventually(t, 10*time.Second, "carol's offline count reaches 3", func() bool { return offlineCount(t, rdb, carol.User, conv) == 3 })
	if n := offlineCount(t, rdb, bob.User, conv); n != 0 {
		t.Fatalf("bob is online on another instance but has offline count %d", n)
	}
	if n := offlineCount(t, rdb, alice.User, conv); n != 0 {
		t.Fatalf("the sender has offline count %d", n)
	}
	if ttl := rdb.TTL(context.Background(), redisstream.OfflineKey(carol.User, conv)).Val(); ttl <= 23*time.Hour {
		t.Fatalf("offline counter TTL = %s, want about 24h", ttl)
	}

	// and when carol subscribes, her counter is cleared
	ws := carol.DialWS("", "")
	ws.Subscribe(conv, nil)
	eventually(t, 5*time.Second, "carol's counter is cleared", func() bool {
		return rdb.Exists(context.Background(), redisstream.OfflineKey(carol.User, conv)).Val() == 0
	})
}

func TestSurvivorClaimsTheWorkOfADeadConsumer(t *testing.T) {
	onEachTopology(t, testSurvivorClaimsTheWorkOfADeadConsumer)
}

func testSurvivorClaimsTheWorkOfADeadConsumer(t *testing.T, top topology) {
	rds := top.start(t)
	rdb := rds.Client()
	ctx := context.Background()
	db := testinfra.NewDatabase(t)
	a := testinfra.StartProcess(t, rds.Env(db, fastClaims))
	alice := testinfra.NewUser(t, a.URL)
	carol := testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation(carol.User)
	fanout := rds.FanoutStream(string(conv)) // the one stream, or the conversation's partition
	eventually(t, 10*time.Second, "the group exists", func() bool { return pendingIn(t, rdb, rds.FanoutStreams(), "messaging-service") == 0 })

	// given an instance that took 20 entries and died before acking them (kill -9 leaves exactly this)
	a.Kill()
	for i := 1; i <= 20; i++ {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: fanout, Values: map[string]any{
			"_watermill_message_uuid": fmt.Sprintf("dead-%d", i), "conversation_id": string(conv),
			"stream_key": redisstream.ConversationStream(string(conv)), "entry_id": fmt.Sprintf("%d-0", i),
			"payload": fmt.Sprintf(`{"id":"dead-%d","conversation_id":%q,"seq":%d,"sender_id":%q,"body":1}`, i, conv, i, alice.User),
		}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "messaging-service", Consumer: "dead-instance",
		Streams: []string{fanout, ">"}, Count: 100}).Err(); err != nil {
		t.Fatal(err)
	}
	if n := pendingIn(t, rdb, rds.FanoutStreams(), "messaging-service"); n != 20 {
		t.Fatalf("pending = %d, want 20", n)
	}

	// when a survivor runs (claim idle 2 s, claim interval 1 s)
	start := time.Now()
	testinfra.StartProcess(t, rds.Env(db, fastClaims))

	// then it claims and handles them within the idle time plus one claim interval (and a margin)
	eventually(t, 8*time.Second, "the dead consumer's entries are handled", func() bool {
		return pendingIn(t, rdb, rds.FanoutStreams(), "messaging-service") == 0 && offlineCount(t, rdb, carol.User, conv) == 20
	})
	t.Logf("claimed and handled after %s", time.Since(start).Round(10*time.Millisecond))

	// and cleanup kept the dead consumer only while it had pending entries; the counters are exact
	time.Sleep(1500 * time.Millisecond)
	if n := offlineCount(t, rdb, carol.User, conv); n != 20 {
		t.Fatalf("carol's count = %d, want exactly 20", n)
	}
}

func TestKilledInstanceMidRetryLosesNoEffect(t *testing.T) {
	onEachTopology(t, testKilledInstanceMidRetryLosesNoEffect)
}

func testKilledInstanceMidRetryLosesNoEffect(t *testing.T, top topology) {
	// given two instances; A reaches Postgres through a proxy the test can cut
	rds := top.start(t)
	rdb := rds.Client()
	db := testinfra.NewDatabase(t)
	viaProxy, proxy := testinfra.ProxiedDatabaseURL(t, db)
	a := testinfra.StartProcess(t, rds.Env(viaProxy, fastClaims))
	b := testinfra.StartProcess(t, rds.Env(db, fastClaims))
	alice := testinfra.NewUser(t, b.URL)
	carol := testinfra.NewUser(t, b.URL)
	conv := alice.CreateConversation(carol.User)

	// when A loses Postgres, so its handler fails and retries while holding its entry, and 30
	// messages are sent through B; then A is killed with SIGKILL
	proxy.Cut()
	for i := 1; i <= 30; i++ {
		alice.Send(conv, fmt.Sprint(i), i)
	}
	time.Sleep(500 * time.Millisecond)
	a.Kill()

	// then B ends up handling every message exactly once: carol's count is exactly 30
	eventually(t, 15*time.Second, "all 30 counted", func() bool {
		return offlineCount(t, rdb, carol.User, conv) == 30 && pendingIn(t, rdb, rds.FanoutStreams(), "messaging-service") == 0
	})
	time.Sleep(2500 * time.Millisecond)
	if n := offlineCount(t, rdb, carol.User, conv); n != 30 {
		t.Fatalf("carol's count = %d, want exactly 30", n)
	}
}

func TestRedisRestartedEmptyWhileNovaRuns(t *testing.T) {
	onEachTopology(t, testRedisRestartedEmptyWhileNovaRuns)
}

func testRedisRestartedEmptyWhileNovaRuns(t *testing.T, top topology) {
	a, b, rds := twoProcessesOn(t, top, nil)
	rdb := rds.Client()
	alice := testinfra.NewUser(t, a.URL)
	carol := testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation(carol.User)
	for i := 1; i <= 5; i++ {
		alice.Send(conv, fmt.Sprint(i), i)
	}
	eventually(t, 10*time.Second, "first 5 counted", func() bool { return offlineCount(t, rdb, carol.User, conv) == 5 })

	// when Redis restarts with nothing (streams, groups, counters all gone; on a cluster: every node)
	rds.RestartEmpty(t)
	for i := 6; i <= 10; i++ {
		alice.As(b.URL).Send(conv, fmt.Sprint(i), i)
	}

	// then the relay goes on, the group is recreated and consumption resumes without restarting Nova
	eventually(t, 20*time.Second, "the group is back and the new messages are counted", func() bool {
		return offlineCount(t, rdb, carol.User, conv) == 5 && pendingIn(t, rdb, rds.FanoutStreams(), "messaging-service") == 0
	})
	waitForStreamTop(t, rds.Client(), conv, "10-0")
	// and nothing acknowledged by the API is lost: a client from 0 gets all 10
	ws := carol.DialWS("", "")
	ws.Subscribe(conv, ptr(0))
	expectSeqs(t, ws.Messages(10, 10*time.Second), 1)
}

func TestMalformedFanoutEntriesGoToTheDeadLetterStream(t *testing.T) {
	onEachTopology(t, testMalformedFanoutEntriesGoToTheDeadLetterStream)
}

func testMalformedFanoutEntriesGoToTheDeadLetterStream(t *testing.T, top topology) {
	a, _, rds := twoProcessesOn(t, top, nil)
	rdb := rds.Client()
	ctx := context.Background()
	alice := testinfra.NewUser(t, a.URL)
	carol := testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation(carol.User)
	alice.Send(conv, "before", 1)
	eventually(t, 10*time.Second, "first counted", func() bool { return offlineCount(t, rdb, carol.User, conv) == 1 })

	// given two bad entries (in the conversation's partition, if any): no envelope at all, and an
	// envelope with garbage metadata and no payload
	fanout := rds.FanoutStream(string(conv))
	_ = rdb.XAdd(ctx, &redis.XAddArgs{Stream: fanout, Values: map[string]any{"foo": "bar"}}).Err()
	_ = rdb.XAdd(ctx, &redis.XAddArgs{Stream: fanout, Values: map[string]any{
		"_watermill_message_uuid": "bad-2", "metadata": "\x00\xff not msgpack"}}).Err()

	// when good messages follow
	alice.Send(conv, "after-1", 2)
	alice.Send(conv, "after-2", 3)

	// then the good ones are handled and the bad ones sit in the dead-letter stream with a reason
	eventually(t, 15*time.Second, "later entries handled", func() bool { return offlineCount(t, rdb, carol.User, conv) == 3 })
	eventually(t, 10*time.Second, "two dead letters", func() bool { return rdb.XLen(ctx, redisstream.DeadLetterStream).Val() == 2 })
	eventually(t, 5*time.Second, "nothing pending", func() bool { return pendingIn(t, rdb, rds.FanoutStreams(), "messaging-service") == 0 })
}

func TestPubSubSubscriberGetsEachMessageOnce(t *testing.T) {
	onEachTopology(t, testPubSubSubscriberGetsEachMessageOnce)
}

func testPubSubSubscriberGetsEachMessageOnce(t *testing.T, top topology) {
	a, b, rds := twoProcessesOn(t, top, nil)
	alice := testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation()
	// a legacy subscriber (plain SUBSCRIBE) may be connected to any node of a cluster, which
	// forwards a PUBLISH to every node: one subscriber per server, each must get every message once
	var subscribers []*redis.PubSub
	for _, n := range rds.Servers() {
		ps := n.Client().Subscribe(context.Background(), redisstream.PubSubChannel(string(conv)))
		defer ps.Close()
		if _, err := ps.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
		subscribers = append(subscribers, ps)
	}

	for i := 1; i <= 20; i++ {
		c := alice
		if i%2 == 0 {
			c = alice.As(b.URL)
		}
		c.Send(conv, fmt.Sprint(i), i)
	}
	for s, ps := range subscribers {
		ch := ps.Channel()
		for want := int64(1); want <= 20; want++ {
			select {
			case m := <-ch:
				msg, err := messagejson.Decode([]byte(m.Payload))
				if err != nil || msg.Seq != want {
					t.Fatalf("subscriber %d: pub/sub message %q, want seq %d", s, m.Payload, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("subscriber %d: pub/sub message %d did not arrive", s, want)
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	for s, ps := range subscribers {
		select {
		case m := <-ps.Channel():
			t.Fatalf("subscriber %d: extra pub/sub message %s", s, m.Payload)
		default:
		}
	}
}

func TestATransientFailureLongerThanTheRetriesIsNotDeadLettered(t *testing.T) {
	onEachTopology(t, testATransientFailureLongerThanTheRetriesIsNotDeadLettered)
}

func testATransientFailureLongerThanTheRetriesIsNotDeadLettered(t *testing.T, top topology) {
	// given one instance that reaches Postgres through a proxy the test can cut
	rds := top.start(t)
	rdb := rds.Client()
	ctx := context.Background()
	viaProxy, proxy := testinfra.ProxiedDatabaseURL(t, testinfra.NewDatabase(t))
	a := testinfra.StartProcess(t, rds.Env(viaProxy, nil))
	alice, carol := testinfra.NewUser(t, a.URL), testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation(carol.User)
	msg, _ := alice.Send(conv, "stored", 1)
	eventually(t, 10*time.Second, "the first is counted", func() bool { return offlineCount(t, rdb, carol.User, conv) == 1 })

	// when Postgres is away for 10 s (longer than the handler's retries, about 7 s) and an event arrives whose
	// handling needs it (written like an older entry, without participants in its metadata)
	proxy.Cut()
	next := msg
	next.ID, next.Seq, next.StreamID = uuid.NewString(), msg.Seq+1, conversation.StreamID(msg.Seq+1)
	payload, err := messagejson.Encode(next)
	if err != nil {
		t.Fatal(err)
	}
	event := message.NewMessage("older-style-"+uuid.NewString(), payload)
	event.Metadata.Set(messaging.MetaConversationID, string(conv))
	fanout := rds.FanoutStream(string(conv))
	values, err := wredis.DefaultMarshallerUnmarshaller{}.Marshal(fanout, event)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: fanout, Values: values}).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	proxy.Restore()

	// then it is handled once Postgres is back, and nothing went to the dead letters
	eventually(t, 15*time.Second, "the event is counted", func() bool { return offlineCount(t, rdb, carol.User, conv) == 2 })
	if n := rdb.XLen(ctx, redisstream.DeadLetterStream).Val(); n != 0 {
		t.Fatalf("%d dead letters, want none for a transient failure", n)
	}
}
