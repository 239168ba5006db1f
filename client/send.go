package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// APIError is an error answer of Nova's HTTP API (PROTOCOL.md section 3): Code is
// invalid_argument, not_found, conflict, payload_too_large, rate_limited, unavailable, ...
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("nova: %d %s: %s", e.Status, e.Code, e.Message) }

// retryable: the request may not have been applied, or may succeed later; the same
// client_msg_id makes a retry safe.
func (e *APIError) retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// Send posts body to a conversation and returns the stored message. The client_msg_id is made
// once, so retries (after a timeout, a 5xx, a 429, or on the next instance) can never store it
// twice; they go on until ctx ends. An answer that retrying cannot change (400, 404, 409, 413)
// is returned at once as an *APIError.
func (c *Client) Send(ctx context.Context, conversationID string, body any) (Message, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return Message{}, fmt.Errorf("encode body: %w", err)
	}
	req, _ := json.Marshal(map[string]any{"client_msg_id": uuid.Must(uuid.NewV7()).String(), "body": json.RawMessage(raw)})
	backoff := c.cfg.MinBackoff
	for attempt := 0; ; attempt++ {
		m, err := c.post(ctx, c.cfg.URLs[attempt%len(c.cfg.URLs)], conversationID, req)
		var apiErr *APIError
		if err == nil || (errors.As(err, &apiErr) && !apiErr.retryable()) || ctx.Err() != nil {
			return m, err
		}
		select {
		case <-ctx.Done():
			return Message{}, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

func (c *Client) post(ctx context.Context, base, conv string, body []byte) (Message, error) {
	token, err := c.cfg.Token(ctx)
	if err != nil {
		return Message{}, fmt.Errorf("token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/conversations/"+conv+"/messages", bytes.NewReader(body))
	if err != nil {
		return Message{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return Message{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Message{}, err
	}
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
		var m Message
		return m, json.Unmarshal(data, &m)
	}
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(data, &env)
	return Message{}, &APIError{Status: resp.StatusCode, Code: env.Error.Code, Message: env.Error.Message}
}
