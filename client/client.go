// Package client is Nova's Go client: what an app needs to get Nova's guarantees end to end.
// It keeps one WebSocket to one of the instances it is given, subscribes to conversations and
// resumes each from the last message it delivered after any reconnect (with exponential backoff
// and jitter, trying the next instance), drops messages it has already delivered by seq, acks
// what the application took (coalesced), and sends with a client_msg_id generated once per
// message, so a retry after a timeout or on another instance is safe.
//
//	c, _ := client.New(client.Config{URLs: []string{"http://nova-1:8080", "http://nova-2:8080"},
//		ClientID: installationID, Token: tokenFromYourAuth})
//	c.Subscribe(conversationID)
//	go c.Run(ctx)
//	for m := range c.Messages() { show(m) } // each once, in seq order per conversation
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Message is a stored message (PROTOCOL.md section 3).
type Message struct {
	ID             string          `json:"id"`
	ConversationID string          `json:"conversation_id"`
	Seq            int64           `json:"seq"`
	StreamID       string          `json:"stream_id"`
	SenderID       string          `json:"sender_id"`
	ClientMsgID    string          `json:"client_msg_id"`
	Body           json.RawMessage `json:"body"`
	CreatedAt      time.Time       `json:"created_at"`
	// ReceivedAt is when this client read the WebSocket frame that carried the message (local
	// clock), before decoding it and before the application took it from Messages: the point
	// at which to measure delivery latency.
	ReceivedAt time.Time `json:"-"`
}

// TokenSource returns a valid access token (a JWT); it is asked before every connection and
// every send, so it can refresh a token before it expires.
type TokenSource func(ctx context.Context) (string, error)

// Config is what New needs; zero durations take the defaults shown.
type Config struct {
	URLs     []string // base URLs of Nova instances (http:// or https://), tried in turn
	ClientID string   // a UUID naming this installation; the same across restarts
	Token    TokenSource
	// ManualAck turns automatic acks off: call Ack once the application has durably
	// processed a message. Otherwise a message is acked once Messages handed it over.
	ManualAck bool
	AckEvery  time.Duration // acks are coalesced and sent this often (200 ms)
	// MinBackoff and MaxBackoff bound the wait before a reconnect (100 ms, 10 s), doubled
	// after each failure, with full jitter.
	MinBackoff, MaxBackoff time.Duration
	// OnUnsubscribed hears of a subscription the server ended (the user left or was removed).
	OnUnsubscribed func(conversationID, reason string)
	HTTPClient     *http.Client // for sends (default: 10 s timeout)
}

// Client is safe for concurrent use. Run it once; read Messages until Run returns.
type Client struct {
	cfg  Config
	msgs chan Message

	mu    sync.Mutex
	subs  map[string]int64 // conversation -> last seq delivered (-1: resume from the stored cursor)
	acked map[string]int64 // conversation -> last seq acked to Nova
	toAck map[string]int64 // conversation -> seq to ack at the next round
	conn  *websocket.Conn
	next  int // index of the URL to try next
}

// New checks cfg and makes a client.
func New(cfg Config) (*Client, error) {
	if len(cfg.URLs) == 0 || cfg.ClientID == "" || cfg.Token == nil {
		return nil, errors.New("client.New: URLs, ClientID and Token are required")
	}
	for _, u := range cfg.URLs {
		if _, err := url.Parse(u); err != nil {
			return nil, fmt.Errorf("client.New: URL %q: %w", u, err)
		}
	}
	cfg.AckEvery = or(cfg.AckEvery, 200*time.Millisecond)
	cfg.MinBackoff = or(cfg.MinBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = or(cfg.MaxBackoff, 10*time.Second)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	// unbuffered: a message counts as delivered (and is acked) only once the application took it
	return &Client{cfg: cfg, msgs: make(chan Message), subs: map[string]int64{}, acked: map[string]int64{},
		toAck: map[string]int64{}}, nil
}

// Messages delivers each message once, in seq order per conversation. It is closed when Run
// returns.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Subscribe follows a conversation from where this installation left off (the cursor Nova
// keeps for ClientID, moved by acks), now if connected, else on the next connection.
func (c *Client) Subscribe(conversationID string) { c.subscribe(conversationID, -1) }

// SubscribeFrom follows a conversation from after seq since (0: from its first message), for
// an application that keeps its own cursor.
func (c *Client) SubscribeFrom(conversationID string, since int64) {
	c.subscribe(conversationID, max(since, 0))
}

func (c *Client) subscribe(conv string, since int64) {
	c.mu.Lock()
	if _, ok := c.subs[conv]; !ok || since >= 0 {
		c.subs[conv] = since
	}
	conn, from := c.conn, c.subs[conv]
	c.mu.Unlock()
	if conn != nil {
		_ = c.write(context.Background(), conn, subscribeFrame(conv, from))
	}
}

// Ack records that the application processed conversationID up to seq (with ManualAck).
func (c *Client) Ack(conversationID string, seq int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ackLocked(conversationID, seq)
}

func (c *Client) ackLocked(conv string, seq int64) {
	if seq > max(c.acked[conv], c.toAck[conv]) {
		c.toAck[conv] = seq
	}
}

// CloseError is how a connection ended, by its WebSocket close code: 4001 the token expired,
// 1008 the client read too slowly, 1001 the instance is shutting down, 1009 a frame was too big.
type CloseError struct {
	Code   websocket.StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("nova closed the connection: %d %s", e.Code, e.Reason)
}

// ErrUnauthenticated: Nova refused the token (401) even after asking the TokenSource again.
var ErrUnauthenticated = errors.New("nova: unauthenticated")

// Run keeps a connection until ctx ends (then it returns nil) or the token is refused twice in
// a row (ErrUnauthenticated); everything else is retried with backoff on the next instance.
func (c *Client) Run(ctx context.Context) error {
	defer close(c.msgs)
	backoff := c.cfg.MinBackoff
	refused := 0
	for ctx.Err() == nil {
		connected, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var status *httpStatusError
		if errors.As(err, &status) && status.code == http.StatusUnauthorized {
			if refused++; refused >= 2 {
				return ErrUnauthenticated
			}
		} else {
			refused = 0
		}
		if connected {
			backoff = c.cfg.MinBackoff
		}
		var ce *CloseError
		if errors.As(err, &ce) && ce.Code == statusTokenExpired {
			continue // at once, with a fresh token
		}
		wait := time.Duration(rand.Int64N(int64(backoff) + 1)) // full jitter
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
	return nil
}

const statusTokenExpired websocket.StatusCode = 4001

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return fmt.Sprintf("nova answered %d", e.code) }

// session is one connection: dial the next instance, subscribe to everything from where each
// conversation was, then hand messages over until the connection ends.
func (c *Client) session(ctx context.Context) (connected bool, err error) {
	c.mu.Lock()
	base := c.cfg.URLs[c.next%len(c.cfg.URLs)]
	c.next++
	c.mu.Unlock()
	token, err := c.cfg.Token(ctx)
	if err != nil {
		return false, fmt.Errorf("token: %w", err)
	}
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/v1/ws?client_id=" + url.QueryEscape(c.cfg.ClientID)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, resp, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	cancel()
	if err != nil {
		if resp != nil {
			return false, &httpStatusError{resp.StatusCode}
		}
		return false, err
	}
	conn.SetReadLimit(1 << 20)
	defer conn.CloseNow()
	sctx, stop := context.WithCancel(ctx)
	defer stop()

	c.mu.Lock()
	c.conn = conn
	frames := make([][]byte, 0, len(c.subs))
	for conv, last := range c.subs {
		frames = append(frames, subscribeFrame(conv, last))
	}
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.conn = nil; c.mu.Unlock() }()
	for _, f := range frames {
		if err := c.write(sctx, conn, f); err != nil {
			return true, err
		}
	}
	go c.ackLoop(sctx, conn)
	return true, c.read(sctx, conn)
}

func subscribeFrame(conv string, since int64) []byte {
	f := map[string]any{"type": "subscribe", "conversation_id": conv}
	if since >= 0 {
		f["since_seq"] = since
	}
	data, _ := json.Marshal(f)
	return data
}

func (c *Client) write(ctx context.Context, conn *websocket.Conn, data []byte) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, data)
}

type inFrame struct {
	Type           string   `json:"type"`
	ConversationID string   `json:"conversation_id"`
	Reason         string   `json:"reason"`
	Message        *Message `json:"message"`
}

// read hands over new messages in order (a re-sent one, at or below what was delivered, is
// dropped), until the connection ends.
func (c *Client) read(ctx context.Context, conn *websocket.Conn) error {
	for {
		_, data, err := conn.Read(ctx)
		received := time.Now()
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 {
				var ce websocket.CloseError
				errors.As(err, &ce)
				return &CloseError{Code: code, Reason: ce.Reason}
			}
			return err
		}
		var f inFrame
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		switch f.Type {
		case "message":
			if f.Message == nil || !c.isNew(*f.Message) {
				continue
			}
			f.Message.ReceivedAt = received
			select {
			case c.msgs <- *f.Message:
			case <-ctx.Done():
				return ctx.Err()
			}
			c.delivered(*f.Message)
		case "unsubscribed":
			c.mu.Lock()
			delete(c.subs, f.ConversationID)
			c.mu.Unlock()
			if c.cfg.OnUnsubscribed != nil {
				c.cfg.OnUnsubscribed(f.ConversationID, f.Reason)
			}
		}
	}
}

func (c *Client) isNew(m Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, ok := c.subs[m.ConversationID]
	return ok && m.Seq > last
}

func (c *Client) delivered(m Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Seq > c.subs[m.ConversationID] {
		c.subs[m.ConversationID] = m.Seq
	}
	if !c.cfg.ManualAck {
		c.ackLocked(m.ConversationID, m.Seq)
	}
}

// ackLoop sends the acks recorded since its last round, one frame per conversation.
func (c *Client) ackLoop(ctx context.Context, conn *websocket.Conn) {
	t := time.NewTicker(c.cfg.AckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		pending := maps.Clone(c.toAck)
		c.mu.Unlock()
		for conv, seq := range pending {
			data, _ := json.Marshal(map[string]any{"type": "ack", "conversation_id": conv, "seq": seq})
			if c.write(ctx, conn, data) != nil {
				return // what was not sent stays pending for the next connection
			}
			c.mu.Lock()
			c.acked[conv] = max(c.acked[conv], seq)
			if c.toAck[conv] <= seq {
				delete(c.toAck, conv)
			}
			c.mu.Unlock()
		}
	}
}

func or(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
