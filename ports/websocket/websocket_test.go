package websocket_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/auth"
)

// startNova runs one in-process instance on a fresh database and a private Redis.
func startNova(t *testing.T, settings map[string]string) (*testinfra.Instance, *testinfra.Redis) {
	t.Helper()
	rds := testinfra.StartRedis(t)
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL(), Settings: settings})
	return inst, rds
}

// wsURL is the ws:// address of path on inst with the given query.
func wsURL(inst *testinfra.Instance, path string, query url.Values) string {
	return "ws" + strings.TrimPrefix(inst.URL, "http") + path + "?" + query.Encode()
}

// dialRaw dials without testinfra's read loop: nothing is read unless the test reads.
func dialRaw(t *testing.T, rawURL string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, rawURL, &websocket.DialOptions{HTTPHeader: header})
	if err == nil {
		t.Cleanup(func() { _ = conn.CloseNow() })
	}
	return conn, resp, err
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": []string{"Bearer " + token}}
}

// requireRefused checks that a handshake was answered with status and no upgrade, and, when
// code is set, with the API's JSON error envelope carrying that code.
func requireRefused(t *testing.T, resp *http.Response, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("handshake upgraded, want HTTP %d", status)
	}
	if resp == nil {
		t.Fatalf("handshake failed without an HTTP answer (%v), want HTTP %d", err, status)
	}
	if resp.StatusCode != status {
		t.Fatalf("handshake answered %d, want %d (%v)", resp.StatusCode, status, err)
	}
	if resp.Header.Get("Sec-WebSocket-Accept") != "" {
		t.Fatalf("refused handshake still carries Sec-WebSocket-Accept")
	}
	if code == "" {
		return
	}
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	body := readBody(t, resp)
	if err := json.Unmarshal(body, &env); err != nil || env.Error.Code != code || env.Error.Message == "" {
		t.Fatalf("refusal body = %s, want the error envelope with code %s", body, code)
	}
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	if resp.Body == nil {
		return nil
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read refusal body: %v", err)
	}
	return data
}

func expectErrorFrame(t *testing.T, ws *testinfra.WS, id, code string) testinfra.Frame {
	t.Helper()
	f := ws.Next(5 * time.Second)
	if f.Type != "error" || f.Code != code || f.ID != id || f.Text == "" {
		t.Fatalf("got %s, want an error frame with code %q and id %q", f.Raw, code, id)
	}
	return f
}

// expectPong checks the connection is still open and answering, in order.
func expectPong(t *testing.T, ws *testinfra.WS, id string) {
	t.Helper()
	ws.Write(map[string]any{"type": "ping", "id": id})
	f := ws.Next(5 * time.Second)
	if f.Type != "pong" || f.ID != id {
		t.Fatalf("got %s, want pong %q", f.Raw, id)
	}
}

func requireSeqs(t *testing.T, msgs []conversation.Message, from int64) {
	t.Helper()
	for i, m := range msgs {
		if want := from + int64(i); m.Seq != want {
			t.Fatalf("message %d has seq %d, want %d", i, m.Seq, want)
		}
	}
}

func TestForeignOriginIsRefusedBeforeUpgrade(t *testing.T) {
	// given an instance with the default origin policy (same host only)
	inst, _ := startNova(t, nil)
	alice := testinfra.NewUser(t, inst.URL)

	// when a page on another site opens a WebSocket, then the handshake is refused with 403
	_, resp, err := alice.TryDialWS("", "", http.Header{"Origin": {"http://evil.example"}})
	requireRefused(t, resp, err, http.StatusForbidden, "")

	// and a page served by the same host (inst.URL is http://127.0.0.1:port) is let in
	sameHost := inst.URL
	ws, resp, err := alice.TryDialWS("", "", http.Header{"Origin": {sameHost}})
	if err != nil {
		t.Fatalf("same-host origin %s refused: %v (%v)", sameHost, err, resp)
	}
	expectPong(t, ws, "same-host")
}

func TestAllowedOriginsLetOnlyTheListedSitesIn(t *testing.T) {
	// given an instance that allows app.example.com
	inst, _ := startNova(t, map[string]string{"NOVA_ALLOWED_ORIGINS": "app.example.com"})
	alice := testinfra.NewUser(t, inst.URL)

	// when the listed site connects, then it is accepted
	ws, resp, err := alice.TryDialWS("", "", http.Header{"Origin": {"https://app.example.com"}})
	if err != nil {
		t.Fatalf("allowed origin refused: %v (%v)", err, resp)
	}
	expectPong(t, ws, "allowed")

	// and look-alikes and other sites are still refused
	for _, origin := range []string{"http://evil.example", "https://app.example.com.evil.example", "https://evil-app.example.com"} {
		_, resp, err := alice.TryDialWS("", "", http.Header{"Origin": {origin}})
		requireRefused(t, resp, err, http.StatusForbidden, "")
	}
}

func TestAuthenticationHappensBeforeUpgrade(t *testing.T) {
	inst, _ := startNova(t, nil)
	alice := testinfra.NewUser(t, inst.URL)
	query := url.Values{"client_id": {uuid.NewString()}}

	t.Run("no token: 401 unauthenticated", func(t *testing.T) {
		_, resp, err := dialRaw(t, wsURL(inst, "/v1/ws", query), nil)
		requireRefused(t, resp, err, http.StatusUnauthorized, "unauthenticated")
	})

	t.Run("expired token: 401 unauthenticated", func(t *testing.T) {
		expired, err := auth.NewAuthenticator(testinfra.JWTSecret).Issue(alice.User, -time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		_, resp, err := dialRaw(t, wsURL(inst, "/v1/ws", query), bearer(expired))
		requireRefused(t, resp, err, http.StatusUnauthorized, "unauthenticated")
	})

	t.Run("token signed with another secret: 401 unauthenticated", func(t *testing.T) {
		forged, err := auth.NewAuthenticator("another-secret-0123456789-0123456789-xyz").Issue(alice.User, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, resp, err := dialRaw(t, wsURL(inst, "/v1/ws", query), bearer(forged))
		requireRefused(t, resp, err, http.StatusUnauthorized, "unauthenticated")
	})

	t.Run("1 MB Authorization header: 401 unauthenticated, quickly", func(t *testing.T) {
		start := time.Now()
		_, resp, err := dialRaw(t, wsURL(inst, "/v1/ws", query), bearer(strings.Repeat("a", 1<<20)))
		requireRefused(t, resp, err, http.StatusUnauthorized, "unauthenticated")
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("refusal took %s", d)
		}
	})

	t.Run("client_id not a UUID: 400 invalid_argument", func(t *testing.T) {
		_, resp, err := dialRaw(t, wsURL(inst, "/v1/ws", url.Values{"client_id": {"not-a-uuid"}}), bearer(alice.Token))
		requireRefused(t, resp, err, http.StatusBadRequest, "invalid_argument")
	})

	t.Run("no client_id: 400 invalid_argument", func(t *testing.T) {
		_, resp, err := dialRaw(t, wsURL(inst, "/v1/ws", nil), bearer(alice.Token))
		requireRefused(t, resp, err, http.StatusBadRequest, "invalid_argument")
	})

	t.Run("access_token in the query, for browsers: accepted", func(t *testing.T) {
		// given a browser-style URL that carries the token and no Authorization header
		q := url.Values{"client_id": {uuid.NewString()}, "access_token": {alice.Token}}
		conn, resp, err := dialRaw(t, wsURL(inst, "/v1/ws", q), nil)
		if err != nil {
			t.Fatalf("dial with access_token: %v (%v)", err, resp)
		}
		// then the connection is alice's: she can subscribe to her own conversation
		conv := alice.CreateConversation()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		frame := fmt.Sprintf(`{"type":"subscribe","id":"q","conversation_id":%q}`, conv)
		if err := conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Type, ID, ConversationID string }
		if err := json.Unmarshal(data, &got); err != nil || got.Type != "subscribed" || got.ID != "q" {
			t.Fatalf("got %s, want subscribed", data)
		}
	})
}

func TestOversizedFrameClosesWith1009(t *testing.T) {
	// given a connection
	inst, _ := startNova(t, nil)
	ws := testinfra.NewUser(t, inst.URL).DialWS("", "")

	// when a frame just under 128 KiB arrives, it is answered (here: rejected for its unknown field)
	under := `{"type":"ping","id":"under","pad":"` + strings.Repeat("x", 128<<10-100) + `"}`
	ws.Write(under)
	expectErrorFrame(t, ws, "under", "invalid_argument")
	expectPong(t, ws, "still-open")

	// and when a frame over 128 KiB arrives
	over := `{"type":"ping","id":"over","pad":"` + strings.Repeat("x", 128<<10) + `"}`
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ws.Conn.Write(ctx, websocket.MessageText, []byte(over)) // the server may hang up mid-write

	// then the server closes the connection with 1009
	status, closed := ws.Closed(5 * time.Second)
	if !closed {
		t.Fatal("connection still open after an oversized frame")
	}
	if status != websocket.StatusMessageTooBig {
		t.Fatalf("closed with %v (%v), want 1009", status, ws.CloseErr)
	}
}

func TestMalformedFramesAreAnsweredAndTheConnectionStaysUsable(t *testing.T) {
	inst, _ := startNova(t, nil)
	alice := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation()

	cases := []struct {
		name, frame, id string
		binary          bool
	}{
		{name: "bad JSON", frame: `{"type":"ping","id":"b1"`},
		{name: "not an object", frame: `[1,2,3]`},
		{name: "null", frame: `null`},
		{name: "two JSON values", frame: `{"type":"ping","id":"two"} {"type":"ping"}`, id: "two"},
		{name: "no type", frame: `{"id":"nt"}`, id: "nt"},
		{name: "unknown type", frame: `{"type":"dance","id":"u1"}`, id: "u1"},
		{name: "unknown field", frame: `{"type":"ping","id":"f1","extra":true}`, id: "f1"},
		{name: "subscribe without conversation_id", frame: `{"type":"subscribe","id":"m1"}`, id: "m1"},
		{name: "subscribe with negative since_seq", frame: fmt.Sprintf(`{"type":"subscribe","id":"m2","conversation_id":%q,"since_seq":-1}`, conv), id: "m2"},
		{name: "unsubscribe without conversation_id", frame: `{"type":"unsubscribe","id":"m3"}`, id: "m3"},
		{name: "send without body", frame: fmt.Sprintf(`{"type":"send","id":"m4","conversation_id":%q,"client_msg_id":"c1"}`, conv), id: "m4"},
		{name: "send without client_msg_id", frame: fmt.Sprintf(`{"type":"send","id":"m5","conversation_id":%q,"body":1}`, conv), id: "m5"},
		{name: "ack without seq", frame: fmt.Sprintf(`{"type":"ack","id":"m6","conversation_id":%q}`, conv), id: "m6"},
		{name: "ack with a string seq", frame: fmt.Sprintf(`{"type":"ack","id":"m7","conversation_id":%q,"seq":"5"}`, conv), id: "m7"},
		{name: "invalid UTF-8", frame: "{\"type\":\"ping\",\"id\":\"\xff\xfe\"}"},
		{name: "deeply nested JSON", frame: strings.Repeat("[", 100000)},
		{name: "deeply nested body", frame: `{"type":"send","id":"n2","body":` + strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000) + "}"},
		{name: "id longer than 128 characters", frame: `{"type":"ping","id":"` + strings.Repeat("i", 129) + `"}`},
		{name: "id longer than 128 characters in a frame that does not decode", frame: `{"type":"ping","id":"` + strings.Repeat("i", 129) + `","extra":1}`},
		{name: "binary frame", frame: `{"type":"ping","id":"bin"}`, binary: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// given a connection
			ws := alice.DialWS("", "")

			// when the malformed frame arrives
			if tc.binary {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := ws.Conn.Write(ctx, websocket.MessageBinary, []byte(tc.frame)); err != nil {
					t.Fatal(err)
				}
			} else {
				ws.Write(tc.frame)
			}

			// then it is answered with invalid_argument, echoing the id where it could be read
			expectErrorFrame(t, ws, tc.id, "invalid_argument")
			// and the same connection still answers
			expectPong(t, ws, "p")
		})
	}
}

func TestNonParticipantGetsNotFoundLikeForAMissingConversation(t *testing.T) {
	// given alice's conversation with bob, and mallory, who is in neither
	inst, _ := startNova(t, nil)
	alice := testinfra.NewUser(t, inst.URL)
	bob := testinfra.NewUser(t, inst.URL)
	mallory := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation(bob.User)
	alice.Send(conv, "before", "secret")
	missing := uuid.NewString()
	ws := mallory.DialWS("", "")

	// when mallory subscribes to, posts into and acknowledges alice's conversation, again and again
	var texts []string
	for round := range 3 {
		for _, target := range []string{string(conv), missing} {
			for _, frame := range []map[string]any{
				{"type": "subscribe", "id": "s", "conversation_id": target},
				{"type": "subscribe", "id": "s0", "conversation_id": target, "since_seq": 0},
				{"type": "send", "id": "w", "conversation_id": target, "client_msg_id": fmt.Sprintf("m-%d", round), "body": "x"},
				{"type": "ack", "id": "a", "conversation_id": target, "seq": 1},
			} {
				ws.Write(frame)
				// then every frame is answered not_found, in the very words used for a missing id
				f := expectErrorFrame(t, ws, frame["id"].(string), "not_found")
				texts = append(texts, f.Text)
			}
		}
	}
	for _, text := range texts {
		if text != texts[0] {
			t.Fatalf("not_found texts differ (%q vs %q): conversation ids can be probed", text, texts[0])
		}
	}

	// and nothing reached the conversation, and mallory hears nothing of it
	if n := listMessages(t, alice, conv); n != 1 {
		t.Fatalf("conversation holds %d messages, want 1", n)
	}
	alice.Send(conv, "after", "secret")
	if f, ok := ws.TryNext(300 * time.Millisecond); ok {
		t.Fatalf("mallory received %s", f.Raw)
	}
	expectPong(t, ws, "p")
}

func listMessages(t *testing.T, c *testinfra.Client, conv conversation.ID) int {
	t.Helper()
	status, body := c.Do("GET", "/v1/conversations/"+string(conv)+"/messages?limit=1000", nil)
	if status != http.StatusOK {
		t.Fatalf("list messages: %d %s", status, body)
	}
	var page struct{ Messages []messagejson.Message }
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	return len(page.Messages)
}

func TestSlowReaderIsCutOffWith1008AndOthersAreUnaffected(t *testing.T) {
	// given a conversation followed by a fast reader and by a slow one whose client never reads
	inst, _ := startNova(t, nil)
	alice := testinfra.NewUser(t, inst.URL)
	fast := testinfra.NewUser(t, inst.URL)
	slow := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation(fast.User, slow.User)
	fastWS := fast.DialWS("", "")
	fastWS.Subscribe(conv, nil)

	slowClient := uuid.NewString()
	slowConn, resp, err := dialRaw(t, wsURL(inst, "/v1/ws", url.Values{"client_id": {slowClient}}), bearer(slow.Token))
	if err != nil {
		t.Fatalf("dial slow reader: %v (%v)", err, resp)
	}
	slowConn.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := slowConn.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"subscribe","id":"s","conversation_id":%q}`, conv))); err != nil {
		t.Fatal(err)
	}
	if _, data, err := slowConn.Read(ctx); err != nil || !strings.Contains(string(data), `"subscribed"`) {
		t.Fatalf("slow reader subscribe: %s %v", data, err)
	}

	// when messages of 8 KiB are sent until the slow reader's queue overflows (plus some more)
	stats := inst.Server.WebSockets().Stats
	body := map[string]string{"text": strings.Repeat("x", 8<<10)}
	sent, extra := 0, -1
	for extra != 0 {
		sent++
		alice.Send(conv, fmt.Sprintf("m-%d", sent), body)
		switch {
		case extra > 0:
			extra--
		case stats().SlowCutoffs > 0:
			extra = 20
		case sent >= 5000:
			t.Fatalf("no client cut off after %d messages (%d MiB)", sent, sent*8>>10)
		}
	}
	t.Logf("slow reader cut off; %d messages (%d KiB) sent", sent, sent*8)

	// then the fast reader gets every message, in order
	requireSeqs(t, fastWS.Messages(sent, 30*time.Second), 1)
	if n := stats().SlowCutoffs; n != 1 {
		t.Fatalf("%d clients cut off, want only the slow one", n)
	}

	// and the slow reader, reading at last, gets an in-order prefix and then a close with 1008
	var last int64
	for {
		_, data, err := slowConn.Read(ctx)
		if err != nil {
			if status := websocket.CloseStatus(err); status != websocket.StatusPolicyViolation {
				t.Fatalf("slow reader ended with %v (status %v) after seq %d, want a close with 1008", err, status, last)
			}
			break
		}
		var f struct {
			Type    string
			Message messagejson.Message
		}
		if err := json.Unmarshal(data, &f); err != nil || f.Type != "message" {
			t.Fatalf("slow reader got %.200s", data)
		}
		if f.Message.Seq != last+1 {
			t.Fatalf("slow reader got seq %d after %d", f.Message.Seq, last)
		}
		last = f.Message.Seq
	}
	if last >= int64(sent) {
		t.Fatalf("slow reader got all %d messages; it was never cut off", sent)
	}

	// and it recovers by reconnecting from what it has
	again := slow.DialWS(slowClient, "")
	sub := again.Subscribe(conv, &last)
	if sub.FromSeq != last || sub.LastSeq != int64(sent) {
		t.Fatalf("resubscribed from %d to %d, want %d to %d", sub.FromSeq, sub.LastSeq, last, sent)
	}
	requireSeqs(t, again.Messages(sent-int(last), 30*time.Second), last+1)
}

func TestConnectionsPerUserAreLimited(t *testing.T) {
	// given an instance allowing two connections per user, and alice holding two
	inst, _ := startNova(t, map[string]string{"NOVA_MAX_CONNS_PER_USER": "2"})
	alice := testinfra.NewUser(t, inst.URL)
	first := alice.DialWS("", "")
	alice.DialWS("", "")

	// when she opens a third, then it is refused with 429 before any upgrade
	_, resp, err := alice.TryDialWS("", "", nil)
	requireRefused(t, resp, err, http.StatusTooManyRequests, "rate_limited")

	// and the limit is per user: bob still gets in
	testinfra.NewUser(t, inst.URL).DialWS("", "")

	// and once alice closes one, a new one is admitted
	if err := first.Conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws, resp, err := alice.TryDialWS("", "", nil)
		if err == nil {
			expectPong(t, ws, "third")
			break
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("dial after closing one: %v (%v)", err, resp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConversationShorthandSubscribesOnConnect(t *testing.T) {
	// given a conversation of alice and bob holding two messages
	inst, _ := startNova(t, nil)
	alice := testinfra.NewUser(t, inst.URL)
	bob := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation(bob.User)
	alice.Send(conv, "c-1", 1)
	alice.Send(conv, "c-2", 2)
	path := "/v1/conversations/" + string(conv) + "/ws"

	// when bob connects to the conversation's own WebSocket
	ws := bob.DialWS("", path)

	// then the first frame says he is subscribed, at the live end, and new messages follow
	f := ws.Next(5 * time.Second)
	if f.Type != "subscribed" || f.ConversationID != string(conv) || f.FromSeq != 2 || f.LastSeq != 2 {
		t.Fatalf("first frame %s, want subscribed from 2 to 2", f.Raw)
	}
	alice.Send(conv, "c-3", 3)
	requireSeqs(t, ws.Messages(1, 5*time.Second), 3)

	// and after acknowledging seq 1 and reconnecting, it resumes from the stored cursor
	ws.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 1})
	expectPong(t, ws, "acked")
	_ = ws.Conn.Close(websocket.StatusNormalClosure, "bye")
	again := bob.DialWS(ws.ClientID, path)
	f = again.Next(5 * time.Second)
	if f.Type != "subscribed" || f.FromSeq != 1 || f.LastSeq != 3 {
		t.Fatalf("first frame on reconnect %s, want subscribed from 1 to 3", f.Raw)
	}
	requireSeqs(t, again.Messages(2, 5*time.Second), 2)

	// and someone outside the conversation, or asking for one that does not exist, gets 404 before any upgrade
	mallory := testinfra.NewUser(t, inst.URL)
	for _, p := range []string{path, "/v1/conversations/" + uuid.NewString() + "/ws", "/v1/conversations/not-a-uuid/ws"} {
		_, resp, err := mallory.TryDialWS("", p, nil)
		requireRefused(t, resp, err, http.StatusNotFound, "not_found")
	}
}

func TestAckIsBoundedByLastSeqAndMovesOnlyForward(t *testing.T) {
	// given a conversation with 8 messages, followed by bob
	inst, rds := startNova(t, nil)
	bob, conv, ws := followedByBob(t, inst, 8)

	// when he acknowledges beyond the last seq, or seq 0, then each is invalid_argument
	ws.Write(map[string]any{"type": "ack", "id": "beyond", "conversation_id": conv, "seq": 9})
	expectErrorFrame(t, ws, "beyond", "invalid_argument")
	ws.Write(map[string]any{"type": "ack", "id": "zero", "conversation_id": conv, "seq": 0})
	expectErrorFrame(t, ws, "zero", "invalid_argument")

	// when he acknowledges 5, lets it be stored, then acknowledges 3
	ws.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 5})
	expectPong(t, ws, "after-5")
	time.Sleep(1500 * time.Millisecond) // the durable copy is written about once a second
	ws.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 3})
	expectPong(t, ws, "after-3")
	if err := ws.Conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}

	// then a reconnect with the same client_id and no since_seq resumes after 5
	resumeFrom := func(step string) {
		t.Helper()
		again := bob.DialWS(ws.ClientID, "")
		sub := again.Subscribe(conv, nil)
		if sub.FromSeq != 5 || sub.LastSeq != 8 {
			t.Fatalf("%s: subscribed from %d to %d, want 5 to 8", step, sub.FromSeq, sub.LastSeq)
		}
		requireSeqs(t, again.Messages(3, 5*time.Second), 6)
		_ = again.Conn.Close(websocket.StatusNormalClosure, "bye")
	}
	resumeFrom("hot and durable cursors")

	// and so it does from the durable copy alone, once the Redis copy is gone
	time.Sleep(300 * time.Millisecond) // the disconnect's final flush
	key := redisstream.ClientSyncKey(bob.User, clientsync.ClientID(ws.ClientID))
	if n, err := rds.Client().Del(context.Background(), key).Result(); err != nil || n != 1 {
		t.Fatalf("delete hot cursor %s: %d %v", key, n, err)
	}
	resumeFrom("durable cursor")
}

func ptr(v int64) *int64 { return &v }

// followedByBob makes a conversation of alice's and bob's on inst with n messages from alice, and
// returns bob, the conversation and bob's WebSocket subscribed to it from the start, the n
// messages read.
func followedByBob(t *testing.T, inst *testinfra.Instance, n int) (bob *testinfra.Client, conv conversation.ID, ws *testinfra.WS) {
	t.Helper()
	alice := testinfra.NewUser(t, inst.URL)
	bob = testinfra.NewUser(t, inst.URL)
	conv = alice.CreateConversation(bob.User)
	for i := 1; i <= n; i++ {
		alice.Send(conv, fmt.Sprintf("c-%d", i), i)
	}
	ws = bob.DialWS("", "")
	ws.Subscribe(conv, ptr(0))
	requireSeqs(t, ws.Messages(n, 5*time.Second), 1)
	return bob, conv, ws
}

func TestAcksOfAConnectionThatEndedWhilePostgresWasAwayAreStoredWhenItComesBack(t *testing.T) {
	// given bob, on an instance that reaches Postgres through a proxy the test can cut, with
	// three messages delivered
	rds := testinfra.StartRedis(t)
	dbURL := testinfra.NewDatabase(t)
	viaProxy, proxy := testinfra.ProxiedDatabaseURL(t, dbURL)
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: viaProxy, RedisURL: rds.URL()})
	bob, conv, ws := followedByBob(t, inst, 3)

	// when he acknowledges 3, and Postgres goes away before the durable copy's flush (about a
	// second later) and he disconnects: the disconnect's own flush fails
	ws.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 3})
	expectPong(t, ws, "after-ack")
	proxy.Cut()
	if err := ws.Conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	proxy.Restore()

	// then the durable cursor is stored once Postgres is back
	pool := testinfra.Pool(t, dbURL)
	testinfra.Eventually(t, 10*time.Second, "the durable cursor holds 3", func() bool {
		var acked int64
		err := pool.QueryRow(context.Background(), `SELECT acked_seq FROM client_sync
			WHERE user_id = $1 AND client_id = $2 AND conversation_id = $3`, bob.User, ws.ClientID, conv).Scan(&acked)
		return err == nil && acked == 3
	})
}

func TestSendOverWebSocketIsIdempotent(t *testing.T) {
	// given alice connected to her conversation
	inst, _ := startNova(t, nil)
	alice := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation()
	ws := alice.DialWS("", "")

	// when she sends over the WebSocket
	ws.Write(map[string]any{"type": "send", "id": "r1", "conversation_id": conv, "client_msg_id": "c-1", "body": map[string]string{"text": "hi"}})

	// then the answer is "sent" with the stored message
	first := ws.Next(5 * time.Second)
	if first.Type != "sent" || first.ID != "r1" || first.Message == nil {
		t.Fatalf("got %s, want sent r1", first.Raw)
	}
	m := first.Message
	if m.Seq != 1 || m.ID == "" || m.ConversationID != conv || m.SenderID != alice.User || m.ClientMsgID != "c-1" ||
		m.StreamID != "1-0" || string(m.Body) != `{"text":"hi"}` {
		t.Fatalf("sent message %+v", m)
	}

	// when she repeats the same client_msg_id, then she gets the same message back
	ws.Write(map[string]any{"type": "send", "id": "r2", "conversation_id": conv, "client_msg_id": "c-1", "body": map[string]string{"text": "hi"}})
	repeat := ws.Next(5 * time.Second)
	if repeat.Type != "sent" || repeat.ID != "r2" || repeat.Message == nil || repeat.Message.ID != m.ID || repeat.Message.Seq != 1 {
		t.Fatalf("repeat got %s, want sent r2 with message %s seq 1", repeat.Raw, m.ID)
	}
	// and so does the HTTP API for that client_msg_id
	if again, status := alice.Send(conv, "c-1", map[string]string{"text": "hi"}); status != http.StatusOK || again.ID != m.ID {
		t.Fatalf("HTTP repeat: %d %s, want 200 %s", status, again.ID, m.ID)
	}

	// and a new client_msg_id is the next message
	ws.Write(map[string]any{"type": "send", "id": "r3", "conversation_id": conv, "client_msg_id": "c-2", "body": 2})
	if next := ws.Next(5 * time.Second); next.Type != "sent" || next.Message == nil || next.Message.Seq != 2 {
		t.Fatalf("got %s, want sent seq 2", next.Raw)
	}
	if n := listMessages(t, alice, conv); n != 2 {
		t.Fatalf("conversation holds %d messages, want 2", n)
	}
}

func TestConnectionIsClosedWhenItsTokenExpires(t *testing.T) {
	// given a connection made with a token valid for 2 s
	inst, _ := startNova(t, nil)
	alice := testinfra.NewUser(t, inst.URL)
	short, err := auth.NewAuthenticator(testinfra.JWTSecret).Issue(alice.User, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	alice.Token = short
	start := time.Now()
	ws := alice.DialWS("", "")
	expectPong(t, ws, "alive")

	// when the token expires, then the server closes the connection with 4001 token_expired
	status, closed := ws.Closed(8 * time.Second)
	if !closed {
		t.Fatalf("connection still open %s after its token expired", time.Since(start).Round(time.Millisecond))
	}
	if status != 4001 || !strings.Contains(ws.CloseErr.Error(), "token_expired") {
		t.Fatalf("closed with %v (%v), want 4001 token_expired", status, ws.CloseErr)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("closed after %s, before the token expired", d)
	}
}

func TestConnectionAndSendLimitsHoldAcrossInstances(t *testing.T) {
	// given two instances of one deployment, each allowing two connections per user and one
	// send a second (burst 5)
	rds := testinfra.StartRedis(t)
	env := testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL(),
		Settings: map[string]string{"NOVA_MAX_CONNS_PER_USER": "2", "NOVA_SEND_RATE": "1"}}
	a, b := testinfra.StartInstance(t, env), testinfra.StartInstance(t, env)
	alice := testinfra.NewUser(t, a.URL)
	onB := testinfra.NewUser(t, b.URL)
	onB.User, onB.Token = alice.User, alice.Token

	// when alice holds one connection on each
	alice.DialWS("", "")
	onB.DialWS("", "")

	// then a third is refused on either instance
	for _, c := range []*testinfra.Client{alice, onB} {
		_, resp, err := c.TryDialWS("", "", nil)
		requireRefused(t, resp, err, http.StatusTooManyRequests, "rate_limited")
	}

	// when she sends 10 messages at once, alternating between the instances
	conv := alice.CreateConversation()
	created := 0
	for i := range 10 {
		c := alice
		if i%2 == 1 {
			c = onB
		}
		status, body := c.Do("POST", "/v1/conversations/"+string(conv)+"/messages",
			map[string]any{"client_msg_id": fmt.Sprintf("r-%d", i), "body": i})
		switch status {
		case http.StatusCreated:
			created++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("send %d: %d %s", i, status, body)
		}
	}

	// then the burst of 5 (less the create) is the deployment's, not each instance's (one more
	// may have refilled)
	if created < 4 || created > 5 {
		t.Errorf("%d of 10 sends accepted across two instances, want the burst of 5 less the create (or one more)", created)
	}
}

func TestSubscriptionsPerConnectionAreCapped(t *testing.T) {
	// given an instance allowing two subscriptions per connection, and alice in three conversations
	inst, _ := startNova(t, map[string]string{"NOVA_MAX_SUBSCRIPTIONS": "2"})
	alice := testinfra.NewUser(t, inst.URL)
	c1, c2, c3 := alice.CreateConversation(), alice.CreateConversation(), alice.CreateConversation()
	ws := alice.DialWS("", "")
	ws.Subscribe(c1, nil)
	ws.Subscribe(c2, nil)

	// when she subscribes to the third, then it is refused with rate_limited
	ws.Write(map[string]any{"type": "subscribe", "id": "third", "conversation_id": c3})
	expectErrorFrame(t, ws, "third", "rate_limited")

	// and subscribing again to one she holds is no new subscription
	if f := ws.Subscribe(c1, nil); f.Type != "subscribed" {
		t.Fatalf("re-subscribe: %s", f.Raw)
	}
	// and after an unsubscribe there is room again
	ws.Write(map[string]any{"type": "unsubscribe", "conversation_id": c2})
	if f := ws.Subscribe(c3, nil); f.Type != "subscribed" {
		t.Fatalf("after an unsubscribe: %s", f.Raw)
	}
}

func TestAConnectionFloodingFramesIsLimited(t *testing.T) {
	// given a connection
	inst, _ := startNova(t, nil)
	ws := testinfra.NewUser(t, inst.URL).DialWS("", "")

	// when it sends 1,500 pings at once (the burst is 1,000, then 100 a second)
	const n = 1500
	for i := range n {
		ws.Write(map[string]any{"type": "ping", "id": fmt.Sprint(i)})
	}

	// then the burst is answered and the rest is refused with rate_limited, and the connection stays
	pongs, limited := 0, 0
	for pongs+limited < n {
		f := ws.Next(10 * time.Second)
		switch {
		case f.Type == "pong":
			pongs++
		case f.Type == "error" && f.Code == "rate_limited":
			limited++
		default:
			t.Fatalf("unexpected frame %s", f.Raw)
		}
	}
	if pongs < 1000 || pongs > 1200 || limited == 0 {
		t.Fatalf("%d pongs and %d refusals for %d pings, want the burst of 1,000 (plus what refilled) and refusals", pongs, limited, n)
	}
	expectPong(t, waitRefill(ws), "after")
}

func TestMalformedFramesCountAgainstTheFrameLimit(t *testing.T) {
	// given a connection
	inst, _ := startNova(t, nil)
	ws := testinfra.NewUser(t, inst.URL).DialWS("", "")

	// when it sends 1,500 frames that are not JSON at once (the burst is 1,000, then 100 a second)
	const n = 1500
	for range n {
		if err := ws.Conn.Write(context.Background(), websocket.MessageText, []byte("{not json")); err != nil {
			t.Fatal(err)
		}
	}

	// then the burst is answered invalid_argument and the rest rate_limited, and the connection stays
	invalid, limited := 0, 0
	for invalid+limited < n {
		f := ws.Next(10 * time.Second)
		switch {
		case f.Type == "error" && f.Code == "invalid_argument":
			invalid++
		case f.Type == "error" && f.Code == "rate_limited":
			limited++
		default:
			t.Fatalf("unexpected frame %s", f.Raw)
		}
	}
	if invalid < 1000 || invalid > 1200 || limited == 0 {
		t.Fatalf("%d invalid_argument and %d rate_limited for %d malformed frames, want the burst of 1,000 (plus what refilled) and refusals",
			invalid, limited, n)
	}
	expectPong(t, waitRefill(ws), "after")
}

// waitRefill lets the frame bucket refill a little and sends one more ping.
func waitRefill(ws *testinfra.WS) *testinfra.WS {
	time.Sleep(100 * time.Millisecond)
	ws.Write(map[string]any{"type": "ping", "id": "after"})
	return ws
}

func TestAConnectionWhoseMembershipCannotBeCheckedIsClosedAfterABound(t *testing.T) {
	// given an instance pinging every 300 ms that reaches Postgres through a proxy the test can
	// cut, and alice subscribed to her conversation
	rds := testinfra.StartRedis(t)
	viaProxy, proxy := testinfra.ProxiedDatabaseURL(t, testinfra.NewDatabase(t))
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: viaProxy, RedisURL: rds.URL(),
		Settings: map[string]string{"NOVA_WS_PING_INTERVAL": "300ms"}})
	alice := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation()
	ws := alice.DialWS("", "")
	ws.Subscribe(conv, nil)

	// (control: while membership can be checked, rounds come and go and the connection stays)
	if code, closed := ws.Closed(1500 * time.Millisecond); closed {
		t.Fatalf("closed with %d while Postgres was there", code)
	}

	// when Postgres can no longer be reached
	proxy.Cut()
	defer proxy.Restore()

	// then, once the shared membership view (5 s) is too old and three rounds could not check
	// it, the connection is closed with 1001: fail closed, the client reconnects
	code, closed := ws.Closed(15 * time.Second)
	if !closed || code != websocket.StatusGoingAway {
		t.Fatalf("closed=%v code=%d, want closed with 1001 (going away)", closed, code)
	}
}
