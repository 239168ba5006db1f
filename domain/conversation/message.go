package conversation

import (
	"bytes"
	"encoding/json"
	"strconv"
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

func (d NewMessageDraft) validate() error {
	if n := len(d.ClientMsgID); n < 1 || n > MaxClientMsgIDLen || !utf8.ValidString(d.ClientMsgID) {
		return invalid("client_msg_id must be 1 to 64 characters")
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

// IsRepeatOf tells a retried send (same body, whatever its JSON spacing) from a reuse of the key.
func (m Message) IsRepeatOf(body json.RawMessage) bool {
	var a, b bytes.Buffer
	if json.Compact(&a, m.Body) != nil || json.Compact(&b, body) != nil {
		return false
	}
	return bytes.Equal(a.Bytes(), b.Bytes())
}
