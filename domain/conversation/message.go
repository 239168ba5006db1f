package conversation

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	MaxClientMsgIDLen = 64
	MaxBodyBytes      = 64 << 10
	MaxTitleLen       = 200
	MaxParticipants   = 1000
)

// Message is one post in a conversation; Seq is its gapless position, 1, 2, 3, ...
type Message struct {
	ID             string          `json:"id"`
	ConversationID ID              `json:"conversation_id"`
	Seq            int64           `json:"seq"`
	StreamID       string          `json:"stream_id"`
	SenderID       UserID          `json:"sender_id"`
	ClientMsgID    string          `json:"client_msg_id"`
	Body           json.RawMessage `json:"body"`
	CreatedAt      time.Time       `json:"created_at"`
}

// StreamID is the entry id of message seq in its conversation stream: the stream id and seq say the same thing.
func StreamID(seq int64) string { return strconv.FormatInt(seq, 10) + "-0" }

// NewMessageDraft is what a sender asks to post, before the conversation gives it a place.
type NewMessageDraft struct {
	ID          string
	SenderID    UserID
	ClientMsgID string
	Body        json.RawMessage
	At          time.Time
}

// Validate checks what a draft says on its own, before any conversation is asked.
func (d NewMessageDraft) Validate() error {
	if n := len(d.ClientMsgID); n < 1 || n > MaxClientMsgIDLen || !utf8.ValidString(d.ClientMsgID) || hasControl(d.ClientMsgID) {
		return invalid("client_msg_id must be 1 to 64 printable characters")
	}
	if len(d.Body) == 0 {
		return invalid("body is required")
	}
	if len(d.Body) > MaxBodyBytes {
		return invalid("body must be at most 64 KiB of JSON")
	}
	if !json.Valid(d.Body) {
		return invalid("body must be valid JSON")
	}
	return nil
}

// IsRepeatOf tells a retried send (the same JSON value, whatever its spacing or key order)
// from a reuse of the key for another body.
func (m Message) IsRepeatOf(body json.RawMessage) bool {
	var a, b any
	if json.Unmarshal(m.Body, &a) != nil || json.Unmarshal(body, &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// hasControl reports C0 control characters (NUL and friends), which identifiers must not hold.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}
