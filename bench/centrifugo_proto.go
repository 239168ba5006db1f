package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// A minimal client of Centrifugo's bidirectional JSON protocol (the v2 client protocol, the
// only one v6 speaks) over WebSocket: commands {"id":N,"connect":{...}} and
// {"id":N,"subscribe":{...}}; replies {"id":N,"connect":{...}} / {"id":N,"error":{...}};
// asynchronous pushes {"push":{"channel":...,"pub":{"data":...,"offset":N}}}. One WebSocket
// message may carry several replies separated by newlines. The server pings with an empty
// reply {} and wants an empty command {} back within pong_timeout (8 s by default).

// cfCommandConnect encodes a connect command with a connection JWT.
func cfCommandConnect(id uint32, token, name string) []byte {
	return []byte(`{"id":` + strconv.FormatUint(uint64(id), 10) + `,"connect":{"token":` + strconv.Quote(token) +
		`,"name":` + strconv.Quote(name) + `}}`)
}

// cfCommandSubscribe encodes a subscribe command.
func cfCommandSubscribe(id uint32, channel string) []byte {
	return []byte(`{"id":` + strconv.FormatUint(uint64(id), 10) + `,"subscribe":{"channel":` + strconv.Quote(channel) + `}}`)
}

// cfPong answers a server ping.
var cfPong = []byte(`{}`)

type cfError struct {
	Code      int    `json:"code"`
	Message   string `json:"message"`
	Temporary bool   `json:"temporary,omitempty"`
}

func (e *cfError) Error() string { return fmt.Sprintf("centrifugo error %d: %s", e.Code, e.Message) }

type cfPublication struct {
	Data   json.RawMessage `json:"data"`
	Offset uint64          `json:"offset"`
}

type cfDisconnect struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

type cfPush struct {
	Channel     string         `json:"channel"`
	Pub         *cfPublication `json:"pub,omitempty"`
	Unsubscribe *cfDisconnect  `json:"unsubscribe,omitempty"`
	Disconnect  *cfDisconnect  `json:"disconnect,omitempty"`
}

type cfConnectResult struct {
	Client  string `json:"client"`
	Version string `json:"version"`
	Ping    int    `json:"ping"`
	Pong    bool   `json:"pong"`
}

type cfSubscribeResult struct {
	Recoverable bool   `json:"recoverable"`
	Positioned  bool   `json:"positioned"`
	Epoch       string `json:"epoch"`
	Offset      uint64 `json:"offset"`
}

// cfReply is one server reply or push.
type cfReply struct {
	ID        uint32             `json:"id,omitempty"`
	Error     *cfError           `json:"error,omitempty"`
	Push      *cfPush            `json:"push,omitempty"`
	Connect   *cfConnectResult   `json:"connect,omitempty"`
	Subscribe *cfSubscribeResult `json:"subscribe,omitempty"`
}

// isPing: a reply with nothing in it is the server's ping.
func (r *cfReply) isPing() bool {
	return r.ID == 0 && r.Error == nil && r.Push == nil && r.Connect == nil && r.Subscribe == nil
}

// cfDecode splits one WebSocket message into its newline-separated replies.
func cfDecode(data []byte) ([]cfReply, error) {
	var out []cfReply
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var r cfReply
		if err := json.Unmarshal(line, &r); err != nil {
			return out, fmt.Errorf("decode centrifugo reply %.200s: %w", line, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// cfSubscriber is one client connection and the channels it subscribed to.
type cfSubscriber struct {
	conn     *websocket.Conn
	channels []string
	offsets  map[string]uint64 // stream top offset of each channel at subscribe
	pong     bool              // the server wants pongs
}

// cfDialSubscribe opens /connection/websocket on the node at base, connects with token and
// subscribes to channels (pipelined: all commands first, then the replies), answering pings
// meanwhile.
func cfDialSubscribe(ctx context.Context, base, token string, channels []string) (*cfSubscriber, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	wsURL := strings.Replace(base, "http", "ws", 1) + "/connection/websocket"
	c, resp, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", wsURL, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", wsURL, err)
	}
	c.SetReadLimit(4 << 20)
	s := &cfSubscriber{conn: c, channels: channels, offsets: make(map[string]uint64, len(channels))}
	fail := func(err error) (*cfSubscriber, error) { _ = c.CloseNow(); return nil, err }

	// Commands: connect is id 1, channel i is id i+2. Several commands may share a message.
	var buf bytes.Buffer
	buf.Write(cfCommandConnect(1, token, "novabench"))
	for i, ch := range channels {
		buf.WriteByte('\n')
		buf.Write(cfCommandSubscribe(uint32(i+2), ch))
	}
	if err := c.Write(ctx, websocket.MessageText, buf.Bytes()); err != nil {
		return fail(fmt.Errorf("write connect/subscribe: %w", err))
	}
	pending := len(channels) + 1
	for pending > 0 {
		_, data, err := c.Read(ctx)
		if err != nil {
			return fail(fmt.Errorf("read connect/subscribe replies (%d outstanding): %w", pending, err))
		}
		replies, err := cfDecode(data)
		if err != nil {
			return fail(err)
		}
		for _, r := range replies {
			switch {
			case r.isPing():
				if err := c.Write(ctx, websocket.MessageText, cfPong); err != nil {
					return fail(err)
				}
			case r.Error != nil:
				what := "connect"
				if r.ID >= 2 && int(r.ID-2) < len(channels) {
					what = "subscribe " + channels[r.ID-2]
				}
				return fail(fmt.Errorf("%s: %w", what, r.Error))
			case r.ID == 1 && r.Connect != nil:
				s.pong = r.Connect.Pong
				pending--
			case r.ID >= 2 && int(r.ID-2) < len(channels) && r.Subscribe != nil:
				s.offsets[channels[r.ID-2]] = r.Subscribe.Offset
				pending--
			case r.Push != nil && r.Push.Disconnect != nil:
				return fail(fmt.Errorf("disconnected at subscribe: %d %s", r.Push.Disconnect.Code, r.Push.Disconnect.Reason))
			}
		}
	}
	return s, nil
}

// errCfUnsubscribed is a server-side unsubscribe or disconnect while reading.
var errCfUnsubscribed = errors.New("centrifugo ended the subscription")
