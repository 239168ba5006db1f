package systemtest_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/internal/testinfra"
)

func TestStreamMessageDelivery(t *testing.T) { onEachTopology(t, testStreamMessageDelivery) }

func testStreamMessageDelivery(t *testing.T, top topology) {
	// given one instance and a conversation
	rds := top.start(t)
	inst := testinfra.StartInstance(t, rds.Env(testinfra.NewDatabase(t), nil))
	alice := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation()

	// when a message is sent
	msg, status := alice.Send(conv, "c-1", map[string]string{"text": "hi"})
	if status != http.StatusCreated || msg.Seq != 1 || msg.StreamID != "1-0" {
		t.Fatalf("send: status %d, seq %d, stream id %q", status, msg.Seq, msg.StreamID)
	}

	// then the conversation stream holds it as entry 1-0 with the protocol's fields
	rdb := rds.Client()
	convEntries := waitForStream(t, rdb, redisstream.ConversationStream(string(conv)), 1)
	e := convEntries[0]
	if e.ID != "1-0" {
		t.Fatalf("conversation stream entry id = %s, want 1-0", e.ID)
	}
	want := map[string]string{"conversation_id": string(conv), "seq": "1", "sender_id": string(alice.User)}
	for k, v := range want {
		if e.Values[k] != v {
			t.Errorf("conversation entry field %s = %v, want %s", k, e.Values[k], v)
		}
	}
	ts, err := strconv.ParseInt(fmt.Sprint(e.Values["timestamp"]), 10, 64)
	if err != nil || ts != msg.CreatedAt.UnixMilli() {
		t.Errorf("timestamp = %v, want %d", e.Values["timestamp"], msg.CreatedAt.UnixMilli())
	}
	assertPayloadIs(t, e.Values["payload"], msg)

	// and the fan-out stream (the conversation's partition, if any) names where to find it
	fan := waitForStream(t, rdb, rds.FanoutStream(string(conv)), 1)[0]
	wantFan := map[string]string{
		"conversation_id": string(conv), "stream_key": "stream:conversation:" + string(conv),
		"entry_id": "1-0", "_watermill_message_uuid": msg.ID,
	}
	for k, v := range wantFan {
		if fan.Values[k] != v {
			t.Errorf("fan-out field %s = %v, want %s", k, fan.Values[k], v)
		}
	}
	assertPayloadIs(t, fan.Values["payload"], msg)
}

func TestConcurrentRepeatsOfOneSendStoreOneMessage(t *testing.T) {
	onEachTopology(t, testConcurrentRepeatsOfOneSendStoreOneMessage)
}

func testConcurrentRepeatsOfOneSendStoreOneMessage(t *testing.T, top topology) {
	// given two instances on one Postgres and one Redis
	rds := top.start(t)
	env := rds.Env(testinfra.NewDatabase(t), nil)
	a, b := testinfra.StartInstance(t, env), testinfra.StartInstance(t, env)
	alice := testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation()

	// when 20 sends of one client_msg_id race through both
	type result struct {
		status int
		msg    conversation.Message
	}
	results := make([]result, 20)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := alice
			if i%2 == 1 {
				c = alice.As(b.URL)
			}
			status, body := c.Do("POST", "/v1/conversations/"+string(conv)+"/messages",
				map[string]any{"client_msg_id": "same", "body": map[string]int{"n": 1}})
			results[i].status = status
			results[i].msg, _ = messagejson.Decode(body)
		}()
	}
	wg.Wait()

	// then exactly one created it, all got the same id and seq, and one message exists
	created := 0
	for i, r := range results {
		if r.status == http.StatusCreated {
			created++
		} else if r.status != http.StatusOK {
			t.Fatalf("send %d: status %d", i, r.status)
		}
		if r.msg.ID != results[0].msg.ID || r.msg.Seq != 1 {
			t.Fatalf("send %d got id %s seq %d, want %s seq 1", i, r.msg.ID, r.msg.Seq, results[0].msg.ID)
		}
	}
	if created != 1 {
		t.Fatalf("%d sends answered 201, want exactly 1", created)
	}
	page := listMessages(t, alice, conv)
	if len(page) != 1 {
		t.Fatalf("conversation holds %d messages, want 1", len(page))
	}
	entries := waitForStream(t, rds.Client(), redisstream.ConversationStream(string(conv)), 1)
	time.Sleep(200 * time.Millisecond)
	if n := rds.Client().XLen(context.Background(), redisstream.ConversationStream(string(conv))).Val(); n != 1 || entries[0].ID != "1-0" {
		t.Fatalf("conversation stream length %d, want 1", n)
	}
}

func TestConcurrentSendsGetGaplessSeqInStreamOrder(t *testing.T) {
	onEachTopology(t, testConcurrentSendsGetGaplessSeqInStreamOrder)
}

func testConcurrentSendsGetGaplessSeqInStreamOrder(t *testing.T, top topology) {
	// given two instances and one conversation
	rds := top.start(t)
	env := rds.Env(testinfra.NewDatabase(t), nil)
	a, b := testinfra.StartInstance(t, env), testinfra.StartInstance(t, env)
	alice := testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation()

	// when 200 different messages are sent concurrently through both
	const n = 200
	seqs := make([]int64, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c := alice
			if i%2 == 1 {
				c = alice.As(b.URL)
			}
			status, body := c.Do("POST", "/v1/conversations/"+string(conv)+"/messages",
				map[string]any{"client_msg_id": fmt.Sprintf("m-%d", i), "body": i})
			if m, err := messagejson.Decode(body); status == http.StatusCreated && err == nil {
				seqs[i] = m.Seq
			}
		}()
	}
	wg.Wait()

	// then the seqs are exactly 1..200
	seen := make(map[int64]bool, n)
	for i, s := range seqs {
		if s < 1 || s > n || seen[s] {
			t.Fatalf("send %d got seq %d (duplicate or out of range)", i, s)
		}
		seen[s] = true
	}
	// and the conversation stream holds 1-0 ... 200-0 in order
	entries := waitForStream(t, rds.Client(), redisstream.ConversationStream(string(conv)), n)
	for i, e := range entries {
		if want := fmt.Sprintf("%d-0", i+1); e.ID != want {
			t.Fatalf("stream entry %d has id %s, want %s", i, e.ID, want)
		}
	}
	// and the fan-out stream (the conversation's partition, if any) lists them in the same order
	fan := waitForStream(t, rds.Client(), rds.FanoutStream(string(conv)), n)
	for i, e := range fan {
		if want := fmt.Sprintf("%d-0", i+1); e.Values["entry_id"] != want {
			t.Fatalf("fan-out entry %d points at %v, want %s", i, e.Values["entry_id"], want)
		}
	}
}

func waitForStream(t *testing.T, rdb redis.Cmdable, key string, n int) []redis.XMessage {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := rdb.XRange(context.Background(), key, "-", "+").Result()
		if err == nil && len(entries) >= n {
			return entries
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s has %d entries after 10s, want %d (err %v)", key, len(entries), n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func assertPayloadIs(t *testing.T, payload any, want conversation.Message) {
	t.Helper()
	got, err := messagejson.Decode([]byte(fmt.Sprint(payload)))
	if err != nil {
		t.Fatalf("payload is not a Message: %v", err)
	}
	if got.ID != want.ID || got.Seq != want.Seq || got.ConversationID != want.ConversationID || string(got.Body) != string(want.Body) {
		t.Fatalf("payload = %+v, want %+v", got, want)
	}
}

func listMessages(t *testing.T, c *testinfra.Client, conv conversation.ID) []conversation.Message {
	t.Helper()
	status, body := c.Do("GET", "/v1/conversations/"+string(conv)+"/messages?limit=1000", nil)
	if status != http.StatusOK {
		t.Fatalf("list messages: %d %s", status, body)
	}
	var page struct{ Messages []messagejson.Message }
	if err := jsonUnmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	out := make([]conversation.Message, len(page.Messages))
	for i, m := range page.Messages {
		out[i] = messagejson.To(m)
	}
	return out
}

func TestSendsSucceedWhileRedisIsDownAndFlowAfter(t *testing.T) {
	onEachTopology(t, testSendsSucceedWhileRedisIsDownAndFlowAfter)
}

func testSendsSucceedWhileRedisIsDownAndFlowAfter(t *testing.T, top topology) {
	// given an instance whose Redis goes away (on a cluster: every node)
	rds := top.start(t)
	inst := testinfra.StartInstance(t, rds.Env(testinfra.NewDatabase(t), nil))
	alice := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation()
	rds.Stop()

	// when messages are sent meanwhile, they are stored (they only need Postgres)
	for i := 1; i <= 10; i++ {
		if _, status := alice.Send(conv, fmt.Sprintf("down-%d", i), i); status != http.StatusCreated {
			t.Fatalf("send %d while Redis is down: %d", i, status)
		}
	}
	time.Sleep(time.Second)

	// then, once Redis is back, the backlog reaches both streams in order
	rds.Start(t)
	entries := waitForStream(t, rds.Client(), redisstream.ConversationStream(string(conv)), 10)
	for i, e := range entries {
		if want := fmt.Sprintf("%d-0", i+1); e.ID != want {
			t.Fatalf("entry %d = %s, want %s", i, e.ID, want)
		}
	}
	waitForStream(t, rds.Client(), rds.FanoutStream(string(conv)), 10)
}
