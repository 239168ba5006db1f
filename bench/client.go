package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/auth"
)

// User is one bench user and its token.
type User struct {
	ID    string
	Token string
}

// API calls Nova's HTTP API; one keep-alive pool serves every goroutine of the bench. It stays
// a local piece beside the Go client (client/): that client has no call to create a
// conversation, and its Send retries a failed send until its context ends, which would turn
// send errors into latency in the measured runs; a send here is one request, timed as it is.
type API struct {
	http  *http.Client
	authn *auth.Authenticator
}

func newAPI() *API {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &API{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, authn: auth.NewAuthenticator(testinfra.JWTSecret)}
}

func (a *API) NewUser() User {
	id := uuid.NewString()
	tok, err := a.authn.Issue(conversation.UserID(id), 6*time.Hour)
	if err != nil {
		panic(err) // only a bad secret can fail, and the secret is a constant
	}
	return User{ID: id, Token: tok}
}

func (a *API) NewUsers(n int) []User {
	us := make([]User, n)
	for i := range us {
		us[i] = a.NewUser()
	}
	return us
}

// do sends one request as u and returns the status and the body.
func (a *API) do(ctx context.Context, method, url string, u User, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+u.Token)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// CreateConversation starts a conversation owned by owner with the other participants.
func (a *API) CreateConversation(ctx context.Context, base string, owner User, others []string) (string, error) {
	body, _ := json.Marshal(map[string]any{"participants": others, "title": "novabench"})
	status, data, err := a.do(ctx, http.MethodPost, base+"/v1/conversations", owner, body)
	if err != nil {
		return "", err
	}
	if status != http.StatusCreated {
		return "", fmt.Errorf("create conversation: %d %s", status, data)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// SendError is a send that Nova answered with neither 201 nor 200.
type SendError struct {
	Status int
	Body   string
}

func (e *SendError) Error() string { return fmt.Sprintf("send: HTTP %d %s", e.Status, e.Body) }

// Send posts one message (body is raw JSON) and returns its seq.
func (a *API) Send(ctx context.Context, base string, u User, conv, clientMsgID string, body []byte) (int64, error) {
	var b bytes.Buffer
	b.Grow(len(body) + 64)
	b.WriteString(`{"client_msg_id":`)
	b.WriteString(strconv.Quote(clientMsgID))
	b.WriteString(`,"body":`)
	b.Write(body)
	b.WriteByte('}')
	status, data, err := a.do(ctx, http.MethodPost, base+"/v1/conversations/"+conv+"/messages", u, b.Bytes())
	if err != nil {
		return 0, err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return 0, &SendError{Status: status, Body: strings.TrimSpace(string(data))}
	}
	var m struct {
		Seq int64 `json:"seq"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return 0, err
	}
	return m.Seq, nil
}

// frame is a server WebSocket frame, decoded loosely ("message" is a Message object in a
// message frame and a string in an error frame, so it stays raw).
type frame struct {
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id"`
	FromSeq        int64           `json:"from_seq"`
	LastSeq        int64           `json:"last_seq"`
	Code           string          `json:"code"`
	Message        json.RawMessage `json:"message"`
}

// DialWS opens /v1/ws as u on the node at base: a bare connection for the idle connections
// and the backlog scenario (the latency subscribers are Go clients, see subscribers).
func DialWS(ctx context.Context, base string, u User) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+u.Token)
	wsURL := strings.Replace(base, "http", "ws", 1) + "/v1/ws?client_id=" + uuid.NewString()
	c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial websocket: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial websocket: %w", err)
	}
	c.SetReadLimit(4 << 20)
	return c, nil
}

// Subscribe sends a subscribe frame from since.
func Subscribe(ctx context.Context, c *websocket.Conn, conv string, since int64) error {
	data := fmt.Sprintf(`{"type":"subscribe","id":"s","conversation_id":%q,"since_seq":%d}`, conv, since)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, []byte(data))
}

// readFrame reads and decodes the next frame.
func readFrame(ctx context.Context, c *websocket.Conn) (frame, error) {
	_, data, err := c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, fmt.Errorf("decode frame %.200s: %w", data, err)
	}
	if f.Type == "error" {
		return f, fmt.Errorf("server error frame: %s", data)
	}
	return f, nil
}

// SubscribeAndWait subscribes and waits for the "subscribed" answer.
func SubscribeAndWait(ctx context.Context, c *websocket.Conn, conv string, since int64) (frame, error) {
	if err := Subscribe(ctx, c, conv, since); err != nil {
		return frame{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	f, err := readFrame(ctx, c)
	if err != nil {
		return f, err
	}
	if f.Type != "subscribed" {
		return f, errors.New("expected subscribed, got " + f.Type)
	}
	return f, nil
}

// idleConns holds raw subscribed WebSockets that only answer the server's pings: the memory
// scenario's 10,000 connections and a latency shape's idle ones. They stay raw, not the Go
// client (client/): each client.Client runs an ack ticker and a reconnect loop of its own,
// 10,000 of them would load the bench process during the measurement, and what is measured is
// the server's cost of a bare subscribed connection.
type idleConns struct {
	conns   []*websocket.Conn
	opened  atomic.Int64 // connected and subscribed so far
	frames  atomic.Int64 // frames received after the subscribe answer
	readers sync.WaitGroup
	stop    context.CancelFunc
	rctx    context.Context
}

// newIdleConns makes room for count connections; close them with close, also after an error.
func newIdleConns(ctx context.Context, count int) *idleConns {
	ic := &idleConns{conns: make([]*websocket.Conn, count)}
	ic.rctx, ic.stop = context.WithCancel(context.WithoutCancel(ctx))
	return ic
}

// open opens the connections on base, 64 at a time; pick says connection j's user and
// conversation.
func (ic *idleConns) open(ctx context.Context, base string, pick func(j int) (User, string)) error {
	return parallel(ctx, len(ic.conns), 64, func(j int) error {
		u, conv := pick(j)
		c, err := DialWS(ctx, base, u)
		if err != nil {
			return fmt.Errorf("connection %d: %w", j, err)
		}
		ic.conns[j] = c
		if _, err := SubscribeAndWait(ctx, c, conv, 0); err != nil {
			return fmt.Errorf("connection %d: %w", j, err)
		}
		ic.readers.Add(1)
		go func() {
			defer ic.readers.Done()
			for {
				if _, _, err := c.Read(ic.rctx); err != nil {
					return
				}
				ic.frames.Add(1)
			}
		}()
		ic.opened.Add(1)
		return nil
	})
}

// close closes every connection and waits for their readers. Safe to call twice.
func (ic *idleConns) close() {
	ic.stop()
	for _, c := range ic.conns {
		if c != nil {
			_ = c.CloseNow()
		}
	}
	ic.readers.Wait()
}
