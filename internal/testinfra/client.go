package testinfra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
)

// Client calls Nova's HTTP API as one user.
type Client struct {
	t     testing.TB
	Base  string
	User  conversation.UserID
	Token string
	http  *http.Client
}

// NewUser makes a fresh user and a client for it against base.
func NewUser(t testing.TB, base string) *Client {
	u := conversation.UserID(uuid.NewString())
	return &Client{t: t, Base: base, User: u, Token: Token(t, u), http: &http.Client{Timeout: 30 * time.Second}}
}

// As returns a client for the same user against another instance.
func (c *Client) As(base string) *Client {
	cp := *c
	cp.Base = base
	return &cp
}

// WithTimeout returns a client for the same user whose requests give up after d (a frozen
// instance answers nothing; the default is 30 s).
func (c *Client) WithTimeout(d time.Duration) *Client {
	cp := *c
	cp.http = &http.Client{Timeout: d}
	return &cp
}

// Do sends a request with the user's token; body is JSON-encoded unless it is []byte or nil.
func (c *Client) Do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	status, data, err := c.TryDo(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, data
}

// TryDo is Do that returns transport errors instead of failing the test (safe in goroutines).
func (c *Client) TryDo(method, path string, body any) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.Base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// CreateConversation starts a conversation with the given other participants.
func (c *Client) CreateConversation(others ...conversation.UserID) conversation.ID {
	c.t.Helper()
	status, body := c.Do("POST", "/v1/conversations", map[string]any{"participants": others, "title": "test"})
	if status != http.StatusCreated {
		c.t.Fatalf("create conversation: %d %s", status, body)
	}
	var out struct{ ID conversation.ID }
	mustUnmarshal(c.t, body, &out)
	return out.ID
}

// Send posts a message and fails the test unless it is stored (201) or a repeat (200).
func (c *Client) Send(conv conversation.ID, clientMsgID string, body any) (conversation.Message, int) {
	c.t.Helper()
	status, data := c.Do("POST", fmt.Sprintf("/v1/conversations/%s/messages", conv),
		map[string]any{"client_msg_id": clientMsgID, "body": body})
	if status != http.StatusCreated && status != http.StatusOK {
		c.t.Fatalf("send %s: %d %s", clientMsgID, status, data)
	}
	m, err := messagejson.Decode(data)
	if err != nil {
		c.t.Fatalf("decode %s: %v", data, err)
	}
	return m, status
}

func mustUnmarshal(t testing.TB, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}
