package systemtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/internal/testinfra"
)

func TestSIGTERMClosesWebSocketsWith1001AndExitsZero(t *testing.T) {
	// given a `nova serve` process and a client subscribed to a conversation on it
	rds := testinfra.StartRedis(t)
	p := testinfra.StartProcess(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()})
	alice := testinfra.NewUser(t, p.URL)
	conv := alice.CreateConversation()
	ws := alice.DialWS("", "")
	ws.Subscribe(conv, nil)

	// and a message sent just before SIGTERM
	last, _ := alice.Send(conv, "last-before-sigterm", map[string]string{"text": "bye"})

	// when the process gets SIGTERM
	err := p.Stop()

	// then it exits 0
	if err != nil {
		t.Fatalf("nova serve exited with %v, want exit code 0", err)
	}
	// and the client was told the server is going away
	status, closed := ws.Closed(5 * time.Second)
	if !closed {
		t.Fatal("WebSocket still open after the process exited")
	}
	if status != websocket.StatusGoingAway {
		t.Fatalf("WebSocket closed with %v (%v), want 1001", status, ws.CloseErr)
	}
	// and the relay published the message before exiting
	stream := shutdownStreamSeqs(t, rds, conv)
	if !stream[last.Seq] {
		t.Fatalf("seq %d is not in the conversation stream after shutdown (stream holds %v)", last.Seq, stream)
	}
}

func TestSIGTERMWhileTheRelayIsBusyStillRelaysWhatWasCommitted(t *testing.T) {
	// given a `nova serve` process whose relay has published seq 1
	rds := testinfra.StartRedis(t)
	p := testinfra.StartProcess(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()})
	alice := testinfra.NewUser(t, p.URL)
	conv := alice.CreateConversation()
	alice.Send(conv, "c-1", 1)
	shutdownWaitForSeq(t, rds, conv, 1)

	// and Redis holding writes for 2 s, so the relay is stuck publishing seq 2 while seq 3 is
	// committed behind it (sends need only Postgres)
	if err := rds.Client().Do(context.Background(), "CLIENT", "PAUSE", "2000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	alice.Send(conv, "c-2", 2)
	time.Sleep(200 * time.Millisecond)
	third, _ := alice.Send(conv, "c-3", 3)

	// when the process gets SIGTERM
	err := p.Stop()

	// then it exits 0 having relayed everything committed before it stopped, seq 3 included
	if err != nil {
		t.Fatalf("nova serve exited with %v, want exit code 0", err)
	}
	stream := shutdownStreamSeqs(t, rds, conv)
	for seq := int64(1); seq <= third.Seq; seq++ {
		if !stream[seq] {
			t.Fatalf("seq %d is not in the conversation stream after shutdown (stream holds %v): the relay stopped without draining the outbox",
				seq, stream)
		}
	}
}

func TestSIGTERMDuringSendsRelaysEveryAcknowledgedMessage(t *testing.T) {
	// given a `nova serve` process taking a steady flow of sends from several clients (the
	// stream is kept long enough that trimming cannot hide a message)
	rds := testinfra.StartRedis(t)
	p := testinfra.StartProcess(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL(),
		Settings: map[string]string{"NOVA_STREAM_MAXLEN": "1000000"}})
	alice := testinfra.NewUser(t, p.URL)
	conv := alice.CreateConversation()
	var (
		mu    sync.Mutex
		acked []int64
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seq, ok := shutdownTrySend(client, alice, conv, fmt.Sprintf("w%d-%d", w, i))
				if !ok {
					return // the listener is gone
				}
				mu.Lock()
				acked = append(acked, seq)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)

	// when the process gets SIGTERM in the middle of them
	err := p.Stop()
	close(stop)
	wg.Wait()

	// then it exits 0
	if err != nil {
		t.Fatalf("nova serve exited with %v, want exit code 0", err)
	}
	if len(acked) == 0 {
		t.Fatal("no send was acknowledged before the shutdown")
	}
	// and every message the API acknowledged reached the conversation stream before the exit
	stream := shutdownStreamSeqs(t, rds, conv)
	var missing []int64
	for _, seq := range acked {
		if !stream[seq] {
			missing = append(missing, seq)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged messages are not in the stream after shutdown: seqs %v",
			len(missing), len(acked), missing)
	}
}

// shutdownTrySend posts one message; ok is false once the server no longer answers with 201.
func shutdownTrySend(client *http.Client, c *testinfra.Client, conv conversation.ID, clientMsgID string) (int64, bool) {
	body, _ := json.Marshal(map[string]any{"client_msg_id": clientMsgID, "body": clientMsgID})
	req, err := http.NewRequest("POST", c.Base+"/v1/conversations/"+string(conv)+"/messages", bytes.NewReader(body))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return 0, false
	}
	m, err := messagejson.Decode(data)
	if err != nil {
		return 0, false
	}
	return m.Seq, true
}

// shutdownStreamSeqs reads which seqs the conversation stream holds (the process has exited,
// so nothing more will arrive).
func shutdownStreamSeqs(t *testing.T, rds *testinfra.Redis, conv conversation.ID) map[int64]bool {
	t.Helper()
	entries, err := rds.Client().XRange(context.Background(), redisstream.ConversationStream(string(conv)), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seqs := make(map[int64]bool, len(entries))
	for _, e := range entries {
		seq, err := strconv.ParseInt(strings.TrimSuffix(e.ID, "-0"), 10, 64)
		if err != nil {
			t.Fatalf("stream entry id %s", e.ID)
		}
		seqs[seq] = true
	}
	return seqs
}

func shutdownWaitForSeq(t *testing.T, rds *testinfra.Redis, conv conversation.ID, seq int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !shutdownStreamSeqs(t, rds, conv)[seq] {
		if time.Now().After(deadline) {
			t.Fatalf("seq %d not in the conversation stream after 10s", seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSIGTERMStoresTheLastAcknowledgedCursor(t *testing.T) {
	// given bob has received three messages and acks them just before the process gets SIGTERM
	rds := testinfra.StartRedis(t)
	env := testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()}
	p := testinfra.StartProcess(t, env)
	alice := testinfra.NewUser(t, p.URL)
	bob := testinfra.NewUser(t, p.URL)
	conv := alice.CreateConversation(bob.User)
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, nil)
	for i := 1; i <= 3; i++ {
		alice.Send(conv, fmt.Sprint(i), i)
	}
	expectSeqs(t, ws.Messages(3, 10*time.Second), 1)
	ws.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 3})
	ws.Write(map[string]any{"type": "ping", "id": "after-ack"})
	if f := ws.Next(5 * time.Second); f.Type != "pong" {
		t.Fatalf("got %s, want the pong that follows the ack", f.Raw)
	}

	// when the process stops, and Redis loses the hot copy of the cursor too
	if err := p.Stop(); err != nil {
		t.Fatalf("nova serve exited with %v", err)
	}
	if err := rds.Client().FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}

	// then the durable cursor holds the ack: the same client resumes after seq 3
	q := testinfra.StartProcess(t, env)
	again := bob.As(q.URL).DialWS(ws.ClientID, "")
	if f := again.Subscribe(conv, nil); !strings.Contains(string(f.Raw), `"from_seq":3`) {
		t.Fatalf("subscribed %s, want from_seq 3", f.Raw)
	}
}
