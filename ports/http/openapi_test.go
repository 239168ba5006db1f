package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/nova-chat/nova/internal/testinfra"
)

// contract loads docs/openapi.yaml into a validator.
func contract(t *testing.T) validator.Validator {
	t.Helper()
	spec, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("docs/openapi.yaml: %v", errs)
	}
	if ok, errs := v.ValidateDocument(); !ok {
		t.Fatalf("docs/openapi.yaml is not a valid OpenAPI 3.1 document: %v", errs)
	}
	return v
}

// exchange sends a request and checks the answer against the contract.
func exchange(t *testing.T, v validator.Validator, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		data = b
	default:
		data, _ = json.Marshal(b)
	}
	req, _ := http.NewRequest(method, url, bytes.NewReader(data))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkAnswer(t, v, req, resp.StatusCode, resp.Header, answer)
	return resp.StatusCode, answer
}

func checkAnswer(t *testing.T, v validator.Validator, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	resp := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	if ok, errs := v.ValidateHttpResponse(req, resp); !ok {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Message+": "+e.Reason)
			for _, se := range e.SchemaValidationErrors {
				msgs = append(msgs, "  "+se.Reason+" at "+se.FieldPath)
			}
		}
		t.Errorf("%s %s -> %d %s\ndoes not match docs/openapi.yaml:\n%s", req.Method, req.URL.Path, status, body, strings.Join(msgs, "\n"))
	}
}

func TestEveryAnswerMatchesTheOpenAPIDocument(t *testing.T) {
	v := contract(t)
	rds := testinfra.StartRedis(t)
	base := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()}).URL
	alice, bob := testinfra.NewUser(t, base), testinfra.NewUser(t, base)
	carol := uuid.NewString()

	exchange(t, v, "GET", base+"/healthz", "", nil)
	exchange(t, v, "GET", base+"/readyz", "", nil)
	status, body := exchange(t, v, "POST", base+"/v1/conversations", alice.Token,
		map[string]any{"participants": []string{string(bob.User)}, "title": "lunch <&>"})
	var conv struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(body, &conv) != nil {
		t.Fatalf("create: %d %s", status, body)
	}
	c := base + "/v1/conversations/" + conv.ID
	exchange(t, v, "GET", base+"/v1/conversations", alice.Token, nil)
	exchange(t, v, "GET", base+"/v1/conversations?limit=1", alice.Token, nil)
	exchange(t, v, "GET", c, alice.Token, nil)
	for i := range 3 {
		exchange(t, v, "POST", c+"/messages", alice.Token, map[string]any{"client_msg_id": fmt.Sprint(i), "body": map[string]any{"n": i}})
	}
	exchange(t, v, "POST", c+"/messages", alice.Token, map[string]any{"client_msg_id": "0", "body": map[string]any{"n": 0}}) // 200, a repeat
	exchange(t, v, "GET", c+"/messages?after_seq=0&limit=2", alice.Token, nil)
	exchange(t, v, "GET", c+"/messages?before_seq=3", alice.Token, nil)
	exchange(t, v, "POST", c+"/participants", alice.Token, map[string]any{"user_id": carol})
	exchange(t, v, "DELETE", c+"/participants/"+carol, alice.Token, nil)
	exchange(t, v, "GET", base+"/v1/unread?client_id="+uuid.NewString(), bob.Token, nil)
	// and the errors
	for _, e := range []struct {
		method, url string
		body        any
		want        int
	}{
		{"GET", base + "/v1/conversations/" + uuid.NewString(), nil, 404},
		{"POST", c + "/messages", map[string]any{"client_msg_id": "0", "body": "other"}, 409},
		{"POST", c + "/messages", map[string]any{"client_msg_id": "x", "body": 1, "extra": true}, 400},
		{"POST", c + "/messages", map[string]any{"client_msg_id": "big", "body": strings.Repeat("x", 70<<10)}, 413},
		{"GET", base + "/v1/conversations?limit=0", nil, 400},
	} {
		if status, body := exchange(t, v, e.method, e.url, alice.Token, e.body); status != e.want {
			t.Errorf("%s %s: %d %s, want %d", e.method, e.url, status, body, e.want)
		}
	}
	if status, _ := exchange(t, v, "GET", base+"/v1/conversations", "", nil); status != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", status)
	}
}

func TestTheContractCheckFailsWhenAResponseFieldIsRenamed(t *testing.T) {
	v := contract(t)
	req, _ := http.NewRequest("GET", "http://localhost:8080/v1/conversations/"+uuid.NewString(), nil)
	good := `{"id":"` + uuid.NewString() + `","title":"t","participants":[],"created_at":"2026-11-30T10:00:00Z","last_seq":3}`
	checkAnswer(t, v, req, 200, http.Header{"Content-Type": {"application/json"}}, []byte(good))

	// when the server renamed last_seq to lastSeq, the same check must fail
	renamed := strings.Replace(good, `"last_seq"`, `"lastSeq"`, 1)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(renamed)), Request: req}
	if ok, _ := v.ValidateHttpResponse(req, resp); ok {
		t.Fatal("a response with last_seq renamed to lastSeq passed the contract check")
	}
}
