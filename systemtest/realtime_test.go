package systemtest_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
)

// twoProcesses starts two `nova serve` processes on one Postgres and one private Redis.
func twoProcesses(t *testing.T, settings map[string]string) (a, b *testinfra.Process, rds *testinfra.Redis) {
	t.Helper()
	a, b, r := twoProcessesOn(t, singleTopology, settings)
	return a, b, r.Single
}

// twoProcessesOn starts two `nova serve` processes on one Postgres and a private Redis of top.
func twoProcessesOn(t *testing.T, top topology, settings map[string]string) (a, b *testinfra.Process, rds *topoRedis) {
	t.Helper()
	rds = top.start(t)
	env := rds.Env(testinfra.NewDatabase(t), settings)
	a = testinfra.StartProcess(t, env)
	b = testinfra.StartProcess(t, env)
	return a, b, rds
}

func expectSeqs(t *testing.T, msgs []conversation.Message, from int64) {
	t.Helper()
	for i, m := range msgs {
		if want := from + int64(i); m.Seq != want {
			t.Fatalf("message %d has seq %d, want %d", i, m.Seq, want)
		}
	}
}

func expectSilence(t *testing.T, ws *testinfra.WS, d time.Duration) {
	t.Helper()
	if f, ok := ws.TryNext(d); ok {
		t.Fatalf("unexpected frame: %s", f.Raw)
	}
}

func ptr(v int64) *int64 { return &v }

func TestOfflineMessageRecovery(t *testing.T) { onEachTopology(t, testOfflineMessageRecovery) }

func testOfflineMessageRecovery(t *testing.T, top topology) {
	a, b, _ := twoProcessesOn(t, top, nil)
	alice := testinfra.NewUser(t, b.URL)
	bob := testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation(bob.User)

	// given bob is online on A and has received and acknowledged 3 messages sent through B
	ws := bob.DialWS("", "")
	clientID := ws.ClientID
	ws.Subscribe(conv, nil)
	for i := 1; i <= 3; i++ {
		alice.Send(conv, fmt.Sprintf("on-%d", i), i)
	}
	expectSeqs(t, ws.Messages(3, 5*time.Second), 1)
	ws.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 3})
	time.Sleep(100 * time.Millisecond)

	// when bob disconnects and 5 more are sent
	_ = ws.Conn.Close(1000, "bye")
	time.Sleep(200 * time.Millisecond)
	for i := 4; i <= 8; i++ {
		alice.Send(conv, fmt.Sprintf("off-%d", i), i)
	}

	// then on reconnecting (to the other instance, same client) exactly 4..8 arrive, in order
	ws2 := bob.As(b.URL).DialWS(clientID, "")
	sub := ws2.Subscribe(conv, nil)
	if sub.FromSeq != 3 || sub.LastSeq != 8 {
		t.Fatalf("subscribed from %d to %d, want 3 and 8", sub.FromSeq, sub.LastSeq)
	}
	expectSeqs(t, ws2.Messages(5, 5*time.Second), 4)
	expectSilence(t, ws2, 300*time.Millisecond)
}

func TestClientOnOneInstanceGetsEveryMessageSentThroughAnother(t *testing.T) {
	onEachTopology(t, testClientOnOneInstanceGetsEveryMessageSentThroughAnother)
}

func testClientOnOneInstanceGetsEveryMessageSentThroughAnother(t *testing.T, top topology) {
	a, b, _ := twoProcessesOn(t, top, nil)
	alice := testinfra.NewUser(t, b.URL)
	bob := testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation(bob.User)
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, nil)

	// when 500 messages go through B, half by HTTP and half by WebSocket send
	sender := alice.DialWS("", "")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 250; i++ {
			status, body := alice.Do("POST", "/v1/conversations/"+string(conv)+"/messages",
				map[string]any{"client_msg_id": fmt.Sprintf("http-%d", i), "body": i})
			if status != http.StatusCreated {
				t.Errorf("http send %d: %d %s", i, status, body)
				return
			}
		}
	}()
	for i := 0; i < 250; i++ {
		sender.Write(map[string]any{"type": "send", "id": fmt.Sprint(i), "conversation_id": conv,
			"client_msg_id": fmt.Sprintf("ws-%d", i), "body": i})
	}
	for i := 0; i < 250; i++ {
		if f := sender.Next(10 * time.Second); f.Type != "sent" {
			t.Fatalf("ws send answer %d: %s", i, f.Raw)
		}
	}
	wg.Wait()

	// then bob, on A, gets seq 1..500 once each, in order
	msgs := ws.Messages(500, 20*time.Second)
	expectSeqs(t, msgs, 1)
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m.ClientMsgID] {
			t.Fatalf("%s delivered twice", m.ClientMsgID)
		}
		seen[m.ClientMsgID] = true
	}
	expectSilence(t, ws, 300*time.Millisecond)
}

func TestRecoveryAfterRedisFlushAndFromBeyondTheStreamWindow(t *testing.T) {
	onEachTopology(t, testRecoveryAfterRedisFlushAndFromBeyondTheStreamWindow)
}

func testRecoveryAfterRedisFlushAndFromBeyondTheStreamWindow(t *testing.T, top topology) {
	a, b, rds := twoProcessesOn(t, top, map[string]string{"NOVA_STREAM_MAXLEN": "50"})
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL)
	conv := alice.CreateConversation(bob.User)

	// given 400 messages, far more than the stream keeps (about 50)
	for i := 1; i <= 400; i++ {
		alice.Send(conv, fmt.Sprint(i), i)
	}
	waitForStreamTop(t, rds.Client(), conv, "400-0")

	// then a client from seq 10 gets 11..400 in order (the start from Postgres, the rest from the stream)
	ws := bob.DialWS("", "")
	if sub := ws.Subscribe(conv, ptr(10)); sub.FromSeq != 10 || sub.LastSeq != 400 {
		t.Fatalf("subscribed %+v", sub)
	}
	expectSeqs(t, ws.Messages(390, 10*time.Second), 11)
	expectSilence(t, ws, 200*time.Millisecond)

	// when Redis loses everything (on a cluster: every master)
	rds.FlushAll(t)
	// then a client from seq 0 still gets all 400, from Postgres, and live delivery goes on
	ws2 := bob.DialWS("", "")
	ws2.Subscribe(conv, ptr(0))
	expectSeqs(t, ws2.Messages(400, 10*time.Second), 1)
	alice.Send(conv, "after-flush", 401)
	if m := ws2.Messages(1, 10*time.Second)[0]; m.Seq != 401 {
		t.Fatalf("live message after flush has seq %d", m.Seq)
	}
}

func TestSubscribeWhileMessagesArriveHasNoGapOrDuplicate(t *testing.T) {
	onEachTopology(t, testSubscribeWhileMessagesArriveHasNoGapOrDuplicate)
}

func testSubscribeWhileMessagesArriveHasNoGapOrDuplicate(t *testing.T, top topology) {
	a, b, _ := twoProcessesOn(t, top, nil)
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL)
	conv := alice.CreateConversation(bob.User)

	// given alice sends 600 messages as fast as she can
	const total = 600
	done := sendAtFullSpeed(alice, conv, total)

	// when bob subscribes from 0 in the middle of it
	for {
		status, body := bob.Do("GET", "/v1/conversations/"+string(conv), nil)
		if status == http.StatusOK && string(body) != "" && !containsLastSeq0(body) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, ptr(0))

	// then he gets 1..600 exactly once each, in order, across the backlog-to-live hand-over
	expectSeqs(t, ws.Messages(total, 30*time.Second), 1)
	<-done
	expectSilence(t, ws, 300*time.Millisecond)
}

// sendAtFullSpeed has sender post total messages over one WebSocket without waiting for the
// answers in between; the channel closes once every answer came.
func sendAtFullSpeed(sender *testinfra.Client, conv conversation.ID, total int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ws := sender.DialWS("", "")
		for i := 1; i <= total; i++ {
			ws.Write(map[string]any{"type": "send", "conversation_id": conv, "client_msg_id": fmt.Sprint(i), "body": i})
		}
		for i := 1; i <= total; i++ {
			ws.Next(20 * time.Second)
		}
	}()
	return done
}

func containsLastSeq0(body []byte) bool {
	var c struct {
		LastSeq int64 `json:"last_seq"`
	}
	_ = jsonUnmarshal(body, &c)
	return c.LastSeq == 0
}

func TestReconnectAfterPartialAckResendsTheUnacked(t *testing.T) {
	onEachTopology(t, testReconnectAfterPartialAckResendsTheUnacked)
}

func testReconnectAfterPartialAckResendsTheUnacked(t *testing.T, top topology) {
	a, b, _ := twoProcessesOn(t, top, nil)
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL)
	conv := alice.CreateConversation(bob.User)

	// given bob received 100 and acknowledged 50
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, nil)
	for i := 1; i <= 100; i++ {
		alice.Send(conv, fmt.Sprint(i), i)
	}
	ws.Messages(100, 10*time.Second)
	ws.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 50})
	ws.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 20}) // never moves back
	time.Sleep(100 * time.Millisecond)
	_ = ws.Conn.Close(1000, "")
	for i := 101; i <= 110; i++ {
		alice.Send(conv, fmt.Sprint(i), i)
	}

	// when he reconnects without since_seq (on the other instance)
	ws2 := bob.As(a.URL).DialWS(ws.ClientID, "")
	sub := ws2.Subscribe(conv, nil)

	// then he gets 51..110
	if sub.FromSeq != 50 {
		t.Fatalf("from_seq = %d, want 50", sub.FromSeq)
	}
	expectSeqs(t, ws2.Messages(60, 10*time.Second), 51)

	// and the unread count of that client reflects the cursor
	status, body := bob.Do("GET", "/v1/unread?client_id="+ws.ClientID, nil)
	var unread struct {
		Conversations []struct {
			ConversationID conversation.ID `json:"conversation_id"`
			Unread         int64           `json:"unread"`
			LastSeq        int64           `json:"last_seq"`
			AckedSeq       int64           `json:"acked_seq"`
		} `json:"conversations"`
	}
	if err := jsonUnmarshal(body, &unread); status != http.StatusOK || err != nil || len(unread.Conversations) != 1 {
		t.Fatalf("unread: %d %s", status, body)
	}
	if u := unread.Conversations[0]; u.Unread != 60 || u.AckedSeq != 50 || u.LastSeq != 110 {
		t.Fatalf("unread = %+v, want 60 unread, acked 50, last 110", u)
	}
}

func waitForStreamTop(t *testing.T, rdb redis.Cmdable, conv conversation.ID, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, err := rdb.XRevRangeN(context.Background(), "stream:conversation:"+string(conv), "+", "-", 1).Result()
		if err == nil && len(e) == 1 && e[0].ID == id {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream top is not %s after 10s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
