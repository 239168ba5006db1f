package testinfra

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
)

// Frame is any server frame, decoded loosely.
type Frame struct {
	Type           string                `json:"type"`
	ID             string                `json:"id"`
	ConversationID string                `json:"conversation_id"`
	FromSeq        int64                 `json:"from_seq"`
	LastSeq        int64                 `json:"last_seq"`
	Message        *conversation.Message `json:"-"` // read with messagejson, as the server wrote it
	Code           string                `json:"code"`
	Text           string                `json:"message_text"`
	Raw            json.RawMessage       `json:"-"`
}

// WS is a test WebSocket client.
type WS struct {
	t        testing.TB
	Conn     *websocket.Conn
	ClientID string
	frames   chan Frame
	closed   chan struct{}
	CloseErr error
}

// DialWS connects as c's user with a client id (a fresh one if empty) to path (default /v1/ws).
func (c *Client) DialWS(clientID, path string) *WS {
	c.t.Helper()
	ws, resp, err := c.TryDialWS(clientID, path, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		c.t.Fatalf("dial websocket: %v (status %d)", err, status)
	}
	return ws
}

// TryDialWS dials and returns the error and handshake response instead of failing.
func (c *Client) TryDialWS(clientID, path string, header http.Header) (*WS, *http.Response, error) {
	if clientID == "" {
		clientID = uuid.NewString()
	}
	if path == "" {
		path = "/v1/ws"
	}
	u := strings.Replace(c.Base, "http", "ws", 1) + path + "?client_id=" + clientID
	if header == nil {
		header = http.Header{}
	}
	if header.Get("Authorization") == "" && c.Token != "" {
		header.Set("Authorization", "Bearer "+c.Token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(4 << 20)
	w := &WS{t: c.t, Conn: conn, ClientID: clientID, frames: make(chan Frame, 100000), closed: make(chan struct{})}
	go w.readLoop()
	c.t.Cleanup(func() { _ = conn.CloseNow() })
	return w, resp, nil
}

func (w *WS) readLoop() {
	defer close(w.closed)
	for {
		_, data, err := w.Conn.Read(context.Background())
		if err != nil {
			w.CloseErr = err
			return
		}
		var f Frame
		_ = json.Unmarshal(data, &f)
		var inner struct {
			Message json.RawMessage `json:"message"`
		}
		_ = json.Unmarshal(data, &inner)
		if f.Type == "error" {
			_ = json.Unmarshal(inner.Message, &f.Text)
		} else if len(inner.Message) > 0 && inner.Message[0] == '{' {
			if m, err := messagejson.Decode(inner.Message); err == nil {
				f.Message = &m
			}
		}
		f.Raw = data
		w.frames <- f
	}
}

// Write sends one frame (JSON-encoded unless it is a string).
func (w *WS) Write(v any) {
	w.t.Helper()
	if err := w.TryWrite(v); err != nil {
		w.t.Fatalf("write frame: %v", err)
	}
}

// TryWrite is Write that returns the error instead of failing the test (safe in goroutines).
func (w *WS) TryWrite(v any) error {
	var data []byte
	if s, ok := v.(string); ok {
		data = []byte(s)
	} else {
		var err error
		if data, err = json.Marshal(v); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.Conn.Write(ctx, websocket.MessageText, data)
}

// Next returns the next frame, failing the test after timeout.
func (w *WS) Next(timeout time.Duration) Frame {
	w.t.Helper()
	f, ok := w.TryNext(timeout)
	if !ok {
		w.t.Fatalf("no frame within %s (close: %v)", timeout, w.CloseErr)
	}
	return f
}

// TryNext returns the next frame or false after timeout or once the connection is closed.
func (w *WS) TryNext(timeout time.Duration) (Frame, bool) {
	select {
	case f := <-w.frames:
		return f, true
	case <-time.After(timeout):
		return Frame{}, false
	case <-w.closed:
		select {
		case f := <-w.frames:
			return f, true
		default:
			return Frame{}, false
		}
	}
}

// Subscribe sends a subscribe frame and returns the "subscribed" answer.
func (w *WS) Subscribe(conv conversation.ID, since *int64) Frame {
	w.t.Helper()
	f := map[string]any{"type": "subscribe", "id": "s-" + string(conv), "conversation_id": conv}
	if since != nil {
		f["since_seq"] = *since
	}
	w.Write(f)
	got := w.Next(10 * time.Second)
	if got.Type != "subscribed" {
		w.t.Fatalf("subscribe: got %s %s", got.Type, got.Raw)
	}
	return got
}

// Messages collects n message frames (failing on any other frame or a timeout).
func (w *WS) Messages(n int, timeout time.Duration) []conversation.Message {
	w.t.Helper()
	out := make([]conversation.Message, 0, n)
	deadline := time.Now().Add(timeout)
	for len(out) < n {
		f, ok := w.TryNext(time.Until(deadline))
		if !ok {
			w.t.Fatalf("got %d of %d messages within %s (close: %v)", len(out), n, timeout, w.CloseErr)
		}
		if f.Type != "message" || f.Message == nil {
			w.t.Fatalf("expected a message frame, got %s", f.Raw)
		}
		out = append(out, *f.Message)
	}
	return out
}

// Closed reports whether the server closed the connection, and its close status.
func (w *WS) Closed(timeout time.Duration) (websocket.StatusCode, bool) {
	select {
	case <-w.closed:
		return websocket.CloseStatus(w.CloseErr), true
	case <-time.After(timeout):
		return -1, false
	}
}
