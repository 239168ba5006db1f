package http_test

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/internal/testinfra"
)

// TestHTTPAPI runs the HTTP contract (PROTOCOL.md sections 2 and 3) against one real instance:
// one Postgres database and one private Redis serve every subtest. The subtests that need an
// instance of their own (another send rate, a Redis to stop) share the database.
func TestHTTPAPI(t *testing.T) {
	db := testinfra.NewDatabase(t)
	rds := testinfra.StartRedis(t)
	env := testinfra.Env{DatabaseURL: db, RedisURL: rds.URL()}
	base := testinfra.StartInstance(t, env).URL

	groups := []struct {
		name string
		run  func(t *testing.T, base string)
	}{
		{"401 unauthenticated", testUnauthenticated},
		{"400 invalid_argument", testInvalidArgument},
		{"404 not_found", testNotFound},
		{"409 conflict", testConflict},
		{"413 payload_too_large", testPayloadTooLarge},
		{"bodies as sent", testBodiesAsSent},
		{"conversations", testConversations},
		{"messages", testMessages},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, base)
		})
	}
	t.Run("429 rate_limited", func(t *testing.T) {
		t.Parallel()
		limited := env
		limited.Settings = map[string]string{"NOVA_SEND_RATE": "1"}
		testRateLimited(t, testinfra.StartInstance(t, limited).URL)
	})
	t.Run("503 unavailable", func(t *testing.T) {
		t.Parallel()
		testReadiness(t, db)
	})
}

// ---------------------------------------------------------------------------
// 401
// ---------------------------------------------------------------------------

func testUnauthenticated(t *testing.T, base string) {
	user := uuid.NewString()
	future, past := time.Now().Add(time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	// control: the token builder itself makes tokens Nova accepts, so each 401 below is for its one flaw
	t.Run("control: a hand-signed valid token is accepted", func(t *testing.T) {
		token := signHS256(t, testinfra.JWTSecret, jwt.MapClaims{"sub": user, "exp": future})
		status, body := call(t, "GET", base+"/v1/conversations", bearer(token), nil)
		if status != http.StatusOK {
			t.Fatalf("status = %d %s, want 200", status, body)
		}
	})

	cases := []struct {
		name          string
		authorization string
	}{
		{"no Authorization header", ""},
		{"Bearer with garbage", "Bearer garbage.not.ajwt"},
		{"Bearer with nothing", "Bearer "},
		{"another scheme", "Basic dXNlcjpwYXNz"},
		{"expired token", "Bearer " + signHS256(t, testinfra.JWTSecret, jwt.MapClaims{"sub": user, "exp": past})},
		{"signed with another secret", "Bearer " + signHS256(t, "another-secret-that-is-long-enough-0123456789", jwt.MapClaims{"sub": user, "exp": future})},
		{"alg none", "Bearer " + unsignedToken(t, map[string]any{"sub": user, "exp": future})},
		{"no exp", "Bearer " + signHS256(t, testinfra.JWTSecret, jwt.MapClaims{"sub": user, "iat": time.Now().Unix()})},
		{"RS256 (HS/RS confusion)", "Bearer " + sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": user, "exp": future})},
		{"sub is not a UUID", "Bearer " + signHS256(t, testinfra.JWTSecret, jwt.MapClaims{"sub": "alice", "exp": future})},
		{"no sub", "Bearer " + signHS256(t, testinfra.JWTSecret, jwt.MapClaims{"exp": future})},
		{"HS512 with the right secret", "Bearer " + sign(t, jwt.SigningMethodHS512, []byte(testinfra.JWTSecret), jwt.MapClaims{"sub": user, "exp": future})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// given a request whose credentials are flawed in one way
			header := http.Header{}
			if tc.authorization != "" {
				header.Set("Authorization", tc.authorization)
			}

			// when it asks for the caller's conversations
			status, body := call(t, "GET", base+"/v1/conversations", header, nil)

			// then it is 401 unauthenticated
			requireError(t, status, body, http.StatusUnauthorized, "unauthenticated")
		})
	}

	t.Run("a 1 MB Authorization header is refused quickly", func(t *testing.T) {
		// given a correctly signed token padded to about a million bytes (below net/http's 1 MiB
		// header limit, so Nova itself must answer, and valid but for its size)
		token := signHS256(t, testinfra.JWTSecret, jwt.MapClaims{"sub": user, "exp": future, "pad": strings.Repeat("A", 740_000)})
		if len(token) < 980_000 || len(token) > 1_000_000 {
			t.Fatalf("token is %d bytes, want about 1 MB", len(token))
		}
		header := bearer(token)

		// when it is sent
		start := time.Now()
		status, body := call(t, "POST", base+"/v1/conversations", header, []byte(`{}`))
		took := time.Since(start)

		// then it is 401 unauthenticated, within 2 s
		requireError(t, status, body, http.StatusUnauthorized, "unauthenticated")
		if took > 2*time.Second {
			t.Errorf("took %s, want < 2s", took)
		}
	})
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signHS256(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, []byte(secret), claims)
}

// unsignedToken builds an `alg: none` JWT by hand: header.claims. with an empty signature.
func unsignedToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(data)
	}
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// ---------------------------------------------------------------------------
// 400
// ---------------------------------------------------------------------------

func testInvalidArgument(t *testing.T, base string) {
	// given a conversation that alice is in
	alice := testinfra.NewUser(t, base)
	conv := alice.CreateConversation()
	messages := fmt.Sprintf("/v1/conversations/%s/messages", conv)

	cases := []struct {
		name, method, path string
		body               any
	}{
		{"malformed JSON", "POST", messages, []byte(`{"client_msg_id":"a","body":`)},
		{"not an object", "POST", messages, []byte(`["a",1]`)},
		{"empty request body", "POST", messages, []byte(``)},
		{"trailing data", "POST", messages, []byte(`{"client_msg_id":"a","body":1} {"x":1}`)},
		{"a stray closing brace", "POST", messages, []byte(`{"client_msg_id":"a","body":1}}`)},
		{"stray closing brackets", "POST", messages, []byte(`{"client_msg_id":"a","body":1}]]]`)},
		{"client_msg_id with a NUL", "POST", messages, map[string]any{"client_msg_id": "a\u0000b", "body": 1}},
		{"title with a NUL", "POST", "/v1/conversations", []byte(`{"participants":[],"title":"a\u0000b"}`)},
		{"unknown JSON field", "POST", messages, []byte(`{"client_msg_id":"a","body":1,"extra":true}`)},
		{"client_msg_id empty", "POST", messages, map[string]any{"client_msg_id": "", "body": 1}},
		{"client_msg_id 65 chars", "POST", messages, map[string]any{"client_msg_id": strings.Repeat("k", 65), "body": 1}},
		{"client_msg_id missing", "POST", messages, map[string]any{"body": 1}},
		{"body missing", "POST", messages, map[string]any{"client_msg_id": "no-body"}},
		{"participants with a non-UUID", "POST", "/v1/conversations", map[string]any{"participants": []string{uuid.NewString(), "bob"}}},
		{"unknown field on create", "POST", "/v1/conversations", []byte(`{"participants":[],"topic":"x"}`)},
		{"title over 200 bytes", "POST", "/v1/conversations", map[string]any{"title": strings.Repeat("t", 201)}},
		{"participant user_id not a UUID", "POST", fmt.Sprintf("/v1/conversations/%s/participants", conv), map[string]any{"user_id": "bob"}},
		{"limit=0", "GET", messages + "?limit=0", nil},
		{"limit=1001", "GET", messages + "?limit=1001", nil},
		{"limit=abc", "GET", messages + "?limit=abc", nil},
		{"after_seq=-1", "GET", messages + "?after_seq=-1", nil},
		{"after_seq=abc", "GET", messages + "?after_seq=abc", nil},
		{"before_seq=-1", "GET", messages + "?before_seq=-1", nil},
		{"before_seq=abc", "GET", messages + "?before_seq=abc", nil},
		{"after_seq and before_seq", "GET", messages + "?after_seq=1&before_seq=3", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// when alice sends this request
			status, body := bind(t, alice).Do(tc.method, tc.path, tc.body)

			// then it is 400 invalid_argument
			requireError(t, status, body, http.StatusBadRequest, "invalid_argument")
		})
	}

	t.Run("nothing invalid was stored", func(t *testing.T) {
		// then the conversation still has no messages
		if got := getConversation(t, bind(t, alice), conv); got.LastSeq != 0 {
			t.Errorf("last_seq = %d after only invalid sends, want 0", got.LastSeq)
		}
	})
}

// ---------------------------------------------------------------------------
// 404
// ---------------------------------------------------------------------------

func testNotFound(t *testing.T, base string) {
	// given a conversation of alice and bob, and eve who is in none
	alice, bob, eve := testinfra.NewUser(t, base), testinfra.NewUser(t, base), testinfra.NewUser(t, base)
	hidden := alice.CreateConversation(bob.User)
	alice.Send(hidden, "a-1", map[string]string{"text": "secret"})
	absent := conversation.ID(uuid.NewString())

	requests := []struct {
		name, method, path string
		body               any
	}{
		{"GET conversation", "GET", "/v1/conversations/%s", nil},
		{"GET messages", "GET", "/v1/conversations/%s/messages", nil},
		{"GET messages before_seq", "GET", "/v1/conversations/%s/messages?before_seq=10", nil},
		{"POST message", "POST", "/v1/conversations/%s/messages", map[string]any{"client_msg_id": "e-1", "body": "hi"}},
		{"POST message repeating alice's client_msg_id", "POST", "/v1/conversations/%s/messages", map[string]any{"client_msg_id": "a-1", "body": map[string]string{"text": "secret"}}},
		{"POST participant (eve adds herself)", "POST", "/v1/conversations/%s/participants", map[string]any{"user_id": string(eve.User)}},
		{"DELETE participant", "DELETE", "/v1/conversations/%s/participants/" + string(bob.User), nil},
	}
	for _, r := range requests {
		t.Run(r.name+" is the same for a hidden and an absent conversation", func(t *testing.T) {
			// when eve asks about the conversation she is not in, and about one that does not exist
			eve := bind(t, eve)
			hiddenStatus, hiddenBody := eve.Do(r.method, fmt.Sprintf(r.path, hidden), r.body)
			absentStatus, absentBody := eve.Do(r.method, fmt.Sprintf(r.path, absent), r.body)

			// then both are 404 not_found with the very same answer, so ids cannot be probed
			hiddenErr := requireError(t, hiddenStatus, hiddenBody, http.StatusNotFound, "not_found")
			absentErr := requireError(t, absentStatus, absentBody, http.StatusNotFound, "not_found")
			if hiddenErr != absentErr || !bytes.Equal(hiddenBody, absentBody) {
				t.Errorf("hidden and absent differ:\n hidden %s\n absent %s", hiddenBody, absentBody)
			}
		})
	}

	t.Run("eve's attempts changed nothing", func(t *testing.T) {
		got := getConversation(t, bind(t, alice), hidden)
		if got.LastSeq != 1 || !slices.Equal(got.Participants, []conversation.UserID{alice.User, bob.User}) {
			t.Errorf("conversation changed by a non-participant: %+v", got)
		}
	})

	for _, path := range []string{
		"/v1/conversations/not-a-uuid",
		"/v1/conversations/not-a-uuid/messages",
		"/v1/conversations/" + string(hidden) + "x",
		"/v1/nope",
		"/nope",
	} {
		t.Run("GET "+path, func(t *testing.T) {
			// when alice asks for a malformed id or an unknown route
			status, body := bind(t, alice).Do("GET", path, nil)

			// then it is 404 not_found
			requireError(t, status, body, http.StatusNotFound, "not_found")
		})
	}
	t.Run("POST message to a malformed id", func(t *testing.T) {
		status, body := bind(t, alice).Do("POST", "/v1/conversations/not-a-uuid/messages", map[string]any{"client_msg_id": "x", "body": 1})
		requireError(t, status, body, http.StatusNotFound, "not_found")
	})
}

// ---------------------------------------------------------------------------
// 409
// ---------------------------------------------------------------------------

func testConflict(t *testing.T, base string) {
	// given alice sent client_msg_id "c-1" once (encoding/json sends the body as {"n":1,"text":"hi"})
	alice := testinfra.NewUser(t, base)
	conv := alice.CreateConversation()
	path := fmt.Sprintf("/v1/conversations/%s/messages", conv)
	first, status := alice.Send(conv, "c-1", map[string]any{"text": "hi", "n": 1})
	if status != http.StatusCreated || first.Seq != 1 {
		t.Fatalf("first send: status %d seq %d, want 201 and seq 1", status, first.Seq)
	}

	t.Run("the same body again is 200 with the original message", func(t *testing.T) {
		alice := bind(t, alice)
		again, status := alice.Send(conv, "c-1", map[string]any{"text": "hi", "n": 1})
		if status != http.StatusOK || again.ID != first.ID || again.Seq != first.Seq {
			t.Errorf("repeat: status %d id %s seq %d, want 200 %s %d", status, again.ID, again.Seq, first.ID, first.Seq)
		}
	})
	t.Run("the same body with other JSON whitespace is 200 with the original message", func(t *testing.T) {
		alice := bind(t, alice)
		status, body := alice.Do("POST", path, []byte("{ \"client_msg_id\" : \"c-1\",\n \"body\" : {\n  \"n\" : 1 ,  \"text\" : \"hi\" }\n}"))
		again := mustDecodeMessage(t, body)
		if status != http.StatusOK || again.ID != first.ID || again.Seq != first.Seq {
			t.Errorf("spaced repeat: status %d %s, want 200 with id %s seq %d", status, body, first.ID, first.Seq)
		}
	})
	t.Run("the same body with its keys in another order is 200 with the original message", func(t *testing.T) {
		alice := bind(t, alice)
		status, body := alice.Do("POST", path, []byte(`{"client_msg_id":"c-1","body":{"text":"hi","n":1}}`))
		again := mustDecodeMessage(t, body)
		if status != http.StatusOK || again.ID != first.ID {
			t.Errorf("reordered repeat: status %d %s, want 200 with id %s", status, body, first.ID)
		}
	})
	t.Run("a different body is 409 conflict", func(t *testing.T) {
		alice := bind(t, alice)
		status, body := alice.Do("POST", path, map[string]any{"client_msg_id": "c-1", "body": map[string]any{"text": "hi", "n": 2}})
		requireError(t, status, body, http.StatusConflict, "conflict")
	})
	t.Run("another sender may use the same client_msg_id", func(t *testing.T) {
		alice := bind(t, alice)
		bob := testinfra.NewUser(t, base)
		addParticipant(t, alice, conv, bob.User)
		_, status := bob.Send(conv, "c-1", "bob's own")
		if status != http.StatusCreated {
			t.Errorf("bob's c-1: status %d, want 201", status)
		}
	})
}

// ---------------------------------------------------------------------------
// 413
// ---------------------------------------------------------------------------

func testPayloadTooLarge(t *testing.T, base string) {
	alice := testinfra.NewUser(t, base)
	conv := alice.CreateConversation()
	path := fmt.Sprintf("/v1/conversations/%s/messages", conv)
	// text makes a JSON string body of exactly n bytes, quotes included
	text := func(n int) string { return strings.Repeat("x", n-2) }

	t.Run("a message request over 96 KiB", func(t *testing.T) {
		alice := bind(t, alice)
		status, body := alice.Do("POST", path, map[string]any{"client_msg_id": "big", "body": text(100 << 10)})
		requireError(t, status, body, http.StatusRequestEntityTooLarge, "payload_too_large")
	})
	t.Run("a create request over 96 KiB", func(t *testing.T) {
		alice := bind(t, alice)
		status, body := alice.Do("POST", "/v1/conversations", map[string]any{"title": text(97 << 10)})
		requireError(t, status, body, http.StatusRequestEntityTooLarge, "payload_too_large")
	})
	t.Run("a body over 64 KiB in a request under 96 KiB", func(t *testing.T) {
		alice := bind(t, alice)
		status, body := alice.Do("POST", path, map[string]any{"client_msg_id": "65k", "body": text(64<<10 + 1)})
		requireError(t, status, body, http.StatusRequestEntityTooLarge, "payload_too_large")
	})
	t.Run("a body of exactly 64 KiB is stored", func(t *testing.T) {
		alice := bind(t, alice)
		m, status := alice.Send(conv, "64k", text(64<<10))
		if status != http.StatusCreated || len(m.Body) != 64<<10 {
			t.Errorf("status %d body %d bytes, want 201 and %d", status, len(m.Body), 64<<10)
		}
	})
}

// ---------------------------------------------------------------------------
// 429
// ---------------------------------------------------------------------------

func testRateLimited(t *testing.T, base string) {
	// given an instance that lets each user send 1 message a second, burst 5
	alice := testinfra.NewUser(t, base)
	conv := alice.CreateConversation()
	path := fmt.Sprintf("/v1/conversations/%s/messages", conv)

	// when alice sends 10 messages at once
	var statuses []int
	limited := 0
	for i := range 10 {
		status, body := alice.Do("POST", path, map[string]any{"client_msg_id": fmt.Sprintf("r-%d", i), "body": i})
		statuses = append(statuses, status)
		if status != http.StatusCreated {
			requireError(t, status, body, http.StatusTooManyRequests, "rate_limited")
			limited++
		}
	}

	// then the burst of 5, less the create, goes through and at least one of the rest is 429 rate_limited
	if !slices.Equal(statuses[:4], []int{201, 201, 201, 201}) {
		t.Errorf("first four statuses = %v, want all 201", statuses[:4])
	}
	if limited == 0 {
		t.Errorf("statuses = %v, want at least one 429", statuses)
	}
	// and a refused send stored nothing
	if got := getConversation(t, alice, conv).LastSeq; got != int64(10-limited) {
		t.Errorf("last_seq = %d, want %d (one per 201)", got, 10-limited)
	}
	// and creating conversations takes from the same bucket (alice's is empty now)
	status, body := alice.Do("POST", "/v1/conversations", map[string]any{"title": "one more"})
	requireError(t, status, body, http.StatusTooManyRequests, "rate_limited")
	// and another user has a bucket of their own
	bob := testinfra.NewUser(t, base)
	if _, status := bob.Send(bob.CreateConversation(), "b-1", "hi"); status != http.StatusCreated {
		t.Errorf("bob's first send: %d, want 201", status)
	}
}

// ---------------------------------------------------------------------------
// bodies: stored and answered as sent, compared exactly, UTF-8 only
// ---------------------------------------------------------------------------

func testBodiesAsSent(t *testing.T, base string) {
	alice := testinfra.NewUser(t, base)
	conv := alice.CreateConversation()
	url := fmt.Sprintf("%s/v1/conversations/%s/messages", base, conv)

	t.Run("angle brackets and ampersands are not escaped", func(t *testing.T) {
		// given a body of 1,000 '<', '>' and '&'
		text := strings.Repeat("<>&", 1000)
		req := []byte(`{"client_msg_id":"html","body":{"text":"` + text + `"}}`)
		// when it is sent
		status, answer := call(t, "POST", url, bearer(alice.Token), req)
		if status != http.StatusCreated {
			t.Fatalf("status %d %s", status, answer)
		}
		// then the answer holds it as sent (encoding/json would write \u003c, six times larger)
		if !bytes.Contains(answer, []byte(text)) || len(answer) > len(text)+400 {
			t.Errorf("answer is %d bytes for a %d-byte text, escaped: %.80s", len(answer), len(text), answer)
		}
		// and so does history, which is what was stored
		status, page := call(t, "GET", url+"?after_seq=0", bearer(alice.Token), nil)
		if status != http.StatusOK || !bytes.Contains(page, []byte(text)) {
			t.Errorf("history: %d, %d bytes, text as sent: %v", status, len(page), bytes.Contains(page, []byte(text)))
		}
	})
	t.Run("a body that is not UTF-8 is 400", func(t *testing.T) {
		status, answer := call(t, "POST", url, bearer(alice.Token), []byte("{\"client_msg_id\":\"utf8\",\"body\":{\"text\":\"\xff\xfe\"}}"))
		requireError(t, status, answer, http.StatusBadRequest, "invalid_argument")
	})
	t.Run("a repeat with another large integer is a conflict", func(t *testing.T) {
		send := func(n string) (int, []byte) {
			return call(t, "POST", url, bearer(alice.Token), []byte(`{"client_msg_id":"big-int","body":{"id":`+n+`}}`))
		}
		if status, answer := send("9007199254740993"); status != http.StatusCreated {
			t.Fatalf("first send: %d %s", status, answer)
		}
		// (the two numbers are the same float64)
		status, answer := send("9007199254740992")
		requireError(t, status, answer, http.StatusConflict, "conflict")
		if status, answer := send("9007199254740993"); status != http.StatusOK {
			t.Errorf("the same number again: %d %s, want 200 (a repeat)", status, answer)
		}
	})
}

// ---------------------------------------------------------------------------
// 503
// ---------------------------------------------------------------------------

func testReadiness(t *testing.T, db string) {
	// given an instance with a Redis of its own
	rds := testinfra.StartRedis(t)
	base := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: db, RedisURL: rds.URL()}).URL

	// when everything is up, then /readyz is 200 {"status":"ready"}
	status, body := call(t, "GET", base+"/readyz", nil, nil)
	if status != http.StatusOK || !jsonEqual(body, `{"status":"ready"}`) {
		t.Fatalf("readyz before: %d %s, want 200 {\"status\":\"ready\"}", status, body)
	}

	// when Redis stops
	rds.Stop()

	// then /readyz is 503 unavailable naming redis, and not postgres
	status, body = call(t, "GET", base+"/readyz", nil, nil)
	e := requireError(t, status, body, http.StatusServiceUnavailable, "unavailable")
	if !strings.Contains(e.Message, "redis") || strings.Contains(e.Message, "postgres") {
		t.Errorf("message %q should name redis and only redis", e.Message)
	}
	// and does not tell the public what the backend said (addresses, users)
	if port := strconv.Itoa(rds.Port); strings.Contains(e.Message, port) || strings.Contains(e.Message, "127.0.0.1") ||
		strings.Contains(e.Message, "refused") {
		t.Errorf("message %q echoes the backend's error", e.Message)
	}
	// and /healthz still answers, the process runs
	if status, body := call(t, "GET", base+"/healthz", nil, nil); status != http.StatusOK {
		t.Errorf("healthz: %d %s, want 200", status, body)
	}
}

// ---------------------------------------------------------------------------
// happy paths
// ---------------------------------------------------------------------------

type conversationJSON struct {
	ID           conversation.ID       `json:"id"`
	Title        string                `json:"title"`
	Participants []conversation.UserID `json:"participants"`
	CreatedAt    time.Time             `json:"created_at"`
	LastSeq      int64                 `json:"last_seq"`
}

func testConversations(t *testing.T, base string) {
	alice, bob, carol := testinfra.NewUser(t, base), testinfra.NewUser(t, base), testinfra.NewUser(t, base)

	// when alice starts a conversation with bob (listing bob twice)
	status, body := alice.Do("POST", "/v1/conversations", map[string]any{
		"participants": []conversation.UserID{bob.User, bob.User}, "title": "lunch"})

	// then it is 201 with alice included, last_seq 0 and every field of the contract
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s, want 201", status, body)
	}
	requireKeys(t, body, "id", "title", "participants", "created_at", "last_seq")
	var created conversationJSON
	mustDecode(t, body, &created)
	if _, err := uuid.Parse(string(created.ID)); err != nil {
		t.Errorf("id %q is not a UUID", created.ID)
	}
	if created.Title != "lunch" || created.LastSeq != 0 || created.CreatedAt.IsZero() ||
		!slices.Equal(created.Participants, []conversation.UserID{alice.User, bob.User}) {
		t.Errorf("created = %+v, want title lunch, last_seq 0, participants [alice bob]", created)
	}
	conv := created.ID

	t.Run("GET list includes it for every participant and for nobody else", func(t *testing.T) {
		alice, bob, carol := bind(t, alice), bind(t, bob), bind(t, carol)
		alice.Send(conv, "a-1", "hi")
		for name, c := range map[string]*testinfra.Client{"alice": alice, "bob": bob} {
			got, ok := findConversation(listConversations(t, c), conv)
			if !ok || got.LastSeq != 1 || got.Title != "lunch" || len(got.Participants) != 2 {
				t.Errorf("%s's list: found=%v %+v, want it with last_seq 1", name, ok, got)
			}
		}
		status, body := carol.Do("GET", "/v1/conversations", nil)
		if status != http.StatusOK || !jsonEqual(body, `{"conversations":[],"has_more":false}`) {
			t.Errorf("carol's list: %d %s, want 200 {\"conversations\":[],\"has_more\":false}", status, body)
		}
	})

	t.Run("lists come in pages", func(t *testing.T) {
		dave := testinfra.NewUser(t, base)
		var made []conversation.ID
		for range 5 {
			made = append(made, dave.CreateConversation())
		}
		slices.Sort(made) // UUIDv7: creation order
		client := uuid.NewString()
		for _, path := range []string{"/v1/conversations?limit=2", "/v1/unread?client_id=" + client + "&limit=2"} {
			// when dave pages through his five conversations two at a time
			var seen []conversation.ID
			next := path
			for pages := 0; ; pages++ {
				if pages > 3 {
					t.Fatalf("%s: more than 3 pages for 5 conversations", path)
				}
				status, body := dave.Do("GET", next, nil)
				var page struct {
					Conversations []struct {
						ID             conversation.ID `json:"id"`
						ConversationID conversation.ID `json:"conversation_id"`
					} `json:"conversations"`
					HasMore *bool `json:"has_more"`
				}
				mustDecode(t, body, &page)
				if status != http.StatusOK || page.HasMore == nil || len(page.Conversations) > 2 {
					t.Fatalf("%s: %d %s", next, status, body)
				}
				for _, c := range page.Conversations {
					seen = append(seen, cmp.Or(c.ID, c.ConversationID))
				}
				if !*page.HasMore {
					break
				}
				next = path + "&after=" + string(seen[len(seen)-1])
			}
			// then he sees each once, in creation order
			if !slices.Equal(seen, made) {
				t.Errorf("%s: pages gave %v, want %v", path, seen, made)
			}
		}
		for _, bad := range []string{"?limit=0", "?limit=1001", "?after=nope"} {
			status, body := dave.Do("GET", "/v1/conversations"+bad, nil)
			requireError(t, status, body, http.StatusBadRequest, "invalid_argument")
		}
	})

	t.Run("add and remove a participant", func(t *testing.T) {
		alice, carol := bind(t, alice), bind(t, carol)
		// given carol cannot see the conversation
		if status, _ := carol.Do("GET", "/v1/conversations/"+string(conv), nil); status != http.StatusNotFound {
			t.Fatalf("carol before being added: %d, want 404", status)
		}

		// when alice adds carol
		got := addParticipant(t, alice, conv, carol.User)

		// then the answer is the conversation with carol, and carol may read and post
		if !slices.Contains(got.Participants, carol.User) || got.ID != conv {
			t.Fatalf("add answer %+v lacks carol", got)
		}
		if status, body := carol.Do("GET", "/v1/conversations/"+string(conv), nil); status != http.StatusOK {
			t.Errorf("carol GET conversation: %d %s, want 200", status, body)
		}
		if page := listMessages(t, carol, conv, ""); len(page.Messages) == 0 {
			t.Errorf("carol sees no messages")
		}
		carol.Send(conv, "c-1", "hello")
		if _, ok := findConversation(listConversations(t, carol), conv); !ok {
			t.Errorf("carol's list lacks the conversation")
		}

		// when alice removes carol
		status, body := alice.Do("DELETE", fmt.Sprintf("/v1/conversations/%s/participants/%s", conv, carol.User), nil)

		// then it is 204 with no body, and to carol the conversation no longer exists
		if status != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("remove: %d %q, want 204 and no body", status, body)
		}
		for _, r := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/conversations/" + string(conv), nil},
			{"GET", fmt.Sprintf("/v1/conversations/%s/messages", conv), nil},
			{"POST", fmt.Sprintf("/v1/conversations/%s/messages", conv), map[string]any{"client_msg_id": "c-2", "body": "?"}},
			{"POST", fmt.Sprintf("/v1/conversations/%s/messages", conv), map[string]any{"client_msg_id": "c-1", "body": "hello"}},
		} {
			status, body := carol.Do(r.method, r.path, r.body)
			requireError(t, status, body, http.StatusNotFound, "not_found")
		}
		if _, ok := findConversation(listConversations(t, carol), conv); ok {
			t.Errorf("carol's list still has the conversation")
		}
		if got := getConversation(t, alice, conv); slices.Contains(got.Participants, carol.User) {
			t.Errorf("carol still listed: %v", got.Participants)
		}
	})
}

type pageJSON struct {
	Messages []messagejson.Message `json:"messages"`
	HasMore  bool                  `json:"has_more"`
}

func testMessages(t *testing.T, base string) {
	// given a conversation with five messages from alice
	alice := testinfra.NewUser(t, base)
	conv := alice.CreateConversation()
	for i := 1; i <= 5; i++ {
		m, status := alice.Send(conv, fmt.Sprintf("m-%d", i), map[string]int{"n": i})
		if status != http.StatusCreated || m.Seq != int64(i) {
			t.Fatalf("send %d: status %d seq %d", i, status, m.Seq)
		}
	}

	t.Run("a sent message has every field of the contract", func(t *testing.T) {
		alice := bind(t, alice)
		status, body := alice.Do("POST", fmt.Sprintf("/v1/conversations/%s/messages", conv),
			[]byte(`{"client_msg_id":"shape","body":{"text":"hi"}}`))
		if status != http.StatusCreated {
			t.Fatalf("send: %d %s", status, body)
		}
		requireKeys(t, body, "id", "conversation_id", "seq", "stream_id", "sender_id", "client_msg_id", "body", "created_at")
		m := mustDecodeMessage(t, body)
		if m.Seq != 6 || m.StreamID != "6-0" || m.ConversationID != conv || m.SenderID != alice.User ||
			m.ClientMsgID != "shape" || !jsonEqual(m.Body, `{"text":"hi"}`) || m.CreatedAt.IsZero() {
			t.Errorf("message = %+v", m)
		}
		if _, err := uuid.Parse(m.ID); err != nil {
			t.Errorf("id %q is not a UUID", m.ID)
		}
	})

	cases := []struct {
		query   string
		want    []int64
		hasMore bool
	}{
		{"", []int64{1, 2, 3, 4, 5, 6}, false},
		{"after_seq=2", []int64{3, 4, 5, 6}, false},
		{"after_seq=0&limit=2", []int64{1, 2}, true},
		{"after_seq=4&limit=2", []int64{5, 6}, false},
		{"after_seq=6", []int64{}, false},
		{"before_seq=5&limit=2", []int64{4, 3}, true},
		{"before_seq=3", []int64{2, 1}, false},
		{"before_seq=3&limit=2", []int64{2, 1}, false},
		{"before_seq=1", []int64{}, false},
		{"before_seq=100", []int64{6, 5, 4, 3, 2, 1}, false},
	}
	for _, tc := range cases {
		t.Run("?"+tc.query, func(t *testing.T) {
			alice := bind(t, alice)
			// when alice pages through the history
			page := listMessages(t, alice, conv, tc.query)

			// then she gets these seqs, in this order, and knows whether more follow
			if got := seqs(page.Messages); !slices.Equal(got, tc.want) || page.HasMore != tc.hasMore {
				t.Errorf("seqs = %v has_more = %v, want %v %v", got, page.HasMore, tc.want, tc.hasMore)
			}
			for _, m := range page.Messages {
				if m.StreamID != conversation.StreamID(m.Seq) || m.ConversationID != string(conv) || m.SenderID != string(alice.User) {
					t.Errorf("message %d malformed: %+v", m.Seq, m)
				}
			}
		})
	}

	t.Run("the default limit is 100", func(t *testing.T) {
		alice := bind(t, alice)
		// given a conversation with 101 messages
		conv := alice.CreateConversation()
		for i := 1; i <= 101; i++ {
			alice.Send(conv, fmt.Sprintf("d-%d", i), i)
		}

		// when alice asks without a limit
		page := listMessages(t, alice, conv, "")

		// then she gets seq 1..100 and has_more, and the next page is 101 alone
		want := make([]int64, 100)
		for i := range want {
			want[i] = int64(i + 1)
		}
		if got := seqs(page.Messages); !slices.Equal(got, want) || !page.HasMore {
			t.Errorf("first page: %d messages %v.. has_more=%v, want 1..100 and has_more", len(got), got[:min(3, len(got))], page.HasMore)
		}
		next := listMessages(t, alice, conv, "after_seq=100")
		if got := seqs(next.Messages); !slices.Equal(got, []int64{101}) || next.HasMore {
			t.Errorf("second page: %v has_more=%v, want [101] false", got, next.HasMore)
		}
		if all := listMessages(t, alice, conv, "limit=1000"); len(all.Messages) != 101 || all.HasMore {
			t.Errorf("limit=1000: %d messages has_more=%v, want 101 false", len(all.Messages), all.HasMore)
		}
	})
}

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// requireError checks the status and that the body is exactly {"error":{"code","message"}}.
func requireError(t *testing.T, status int, body []byte, wantStatus int, wantCode string) apiError {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status = %d, want %d; body %.300s", status, wantStatus, body)
	}
	var envelope struct {
		Error *apiError `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&envelope); err != nil || envelope.Error == nil {
		t.Fatalf("body %.300s is not {\"error\":{\"code\",\"message\"}}: %v", body, err)
	}
	if envelope.Error.Code != wantCode || envelope.Error.Message == "" {
		t.Fatalf("error = %+v, want code %q and a message", *envelope.Error, wantCode)
	}
	return *envelope.Error
}

// requireKeys checks that the JSON object has exactly these keys.
func requireKeys(t *testing.T, body []byte, keys ...string) {
	t.Helper()
	var obj map[string]json.RawMessage
	mustDecode(t, body, &obj)
	var got []string
	for k := range obj {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("keys = %v, want %v", got, keys)
	}
}

// call sends a request with exactly the given headers (no token is added).
func call(t *testing.T, method, url string, header http.Header, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// bind is a client for the same user whose failures belong to t (a subtest).
func bind(t *testing.T, c *testinfra.Client) *testinfra.Client {
	b := testinfra.NewUser(t, c.Base)
	b.User, b.Token = c.User, c.Token
	return b
}

func mustDecode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %.300s: %v", data, err)
	}
}

// mustDecodeMessage reads a Message as the server wrote it (the one Message JSON decoder).
func mustDecodeMessage(t *testing.T, data []byte) conversation.Message {
	t.Helper()
	m, err := messagejson.Decode(data)
	if err != nil {
		t.Fatalf("decode message %.300s: %v", data, err)
	}
	return m
}

func jsonEqual(got []byte, want string) bool {
	var a, b any
	return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(want), &b) == nil &&
		fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

func getConversation(t *testing.T, c *testinfra.Client, id conversation.ID) conversationJSON {
	t.Helper()
	status, body := c.Do("GET", "/v1/conversations/"+string(id), nil)
	if status != http.StatusOK {
		t.Fatalf("GET conversation: %d %s", status, body)
	}
	var out conversationJSON
	mustDecode(t, body, &out)
	return out
}

func listConversations(t *testing.T, c *testinfra.Client) []conversationJSON {
	t.Helper()
	status, body := c.Do("GET", "/v1/conversations", nil)
	if status != http.StatusOK {
		t.Fatalf("GET conversations: %d %s", status, body)
	}
	var out struct{ Conversations []conversationJSON }
	mustDecode(t, body, &out)
	return out.Conversations
}

func findConversation(list []conversationJSON, id conversation.ID) (conversationJSON, bool) {
	for _, c := range list {
		if c.ID == id {
			return c, true
		}
	}
	return conversationJSON{}, false
}

func addParticipant(t *testing.T, c *testinfra.Client, id conversation.ID, user conversation.UserID) conversationJSON {
	t.Helper()
	status, body := c.Do("POST", fmt.Sprintf("/v1/conversations/%s/participants", id), map[string]any{"user_id": user})
	if status != http.StatusOK {
		t.Fatalf("add participant: %d %s, want 200", status, body)
	}
	var out conversationJSON
	mustDecode(t, body, &out)
	return out
}

func listMessages(t *testing.T, c *testinfra.Client, id conversation.ID, query string) pageJSON {
	t.Helper()
	status, body := c.Do("GET", fmt.Sprintf("/v1/conversations/%s/messages?%s", id, query), nil)
	if status != http.StatusOK {
		t.Fatalf("GET messages?%s: %d %s", query, status, body)
	}
	requireKeys(t, body, "messages", "has_more")
	var page pageJSON
	mustDecode(t, body, &page)
	return page
}

func seqs(msgs []messagejson.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}
