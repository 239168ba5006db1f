package conversation

import (
	"bytes"
	"encoding/json"
	"math/big"
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
	ID             string
	ConversationID ID
	Seq            int64
	StreamID       string
	SenderID       UserID
	ClientMsgID    string
	Body           json.RawMessage
	CreatedAt      time.Time
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
	// characters, as PROTOCOL.md section 3 says: 64 of them are at most 256 bytes
	if n := utf8.RuneCountInString(d.ClientMsgID); n < 1 || n > MaxClientMsgIDLen || !utf8.ValidString(d.ClientMsgID) || hasControl(d.ClientMsgID) {
		return invalid("client_msg_id must be 1 to 64 printable characters")
	}
	if len(d.Body) == 0 {
		return invalid("body is required")
	}
	if len(d.Body) > MaxBodyBytes {
		return &TooLargeError{Reason: "body must be at most 64 KiB of JSON"}
	}
	if !json.Valid(d.Body) {
		return invalid("body must be valid JSON")
	}
	if !utf8.Valid(d.Body) { // encoding/json lets invalid UTF-8 inside strings through
		return invalid("body must be UTF-8")
	}
	return nil
}

// IsRepeatOf tells a retried send (the same JSON value, whatever its spacing or key order)
// from a reuse of the key for another body. Numbers compare exactly (1e3 equals 1000, but
// 9007199254740993 does not equal 9007199254740992, as it would as float64).
func (m Message) IsRepeatOf(body json.RawMessage) bool {
	a, errA := decodeExact(m.Body)
	b, errB := decodeExact(body)
	return errA == nil && errB == nil && sameJSON(a, b)
}

func decodeExact(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// exactNumber is n's exact value; false for an exponent beyond ±400, whose value would take
// a huge allocation to compute (such numbers count as the same only when written the same).
func exactNumber(n json.Number) (*big.Rat, bool) {
	if i := strings.IndexAny(string(n), "eE"); i >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(string(n[i+1:]), "+"))
		if err != nil || exp > 400 || exp < -400 {
			return nil, false
		}
	}
	return new(big.Rat).SetString(string(n))
}

// sameJSON compares two decoded JSON values; numbers (json.Number) by their exact value.
func sameJSON(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		if a == b {
			return true
		}
		x, okX := exactNumber(a)
		y, okY := exactNumber(b)
		return okX && okY && x.Cmp(y) == 0
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !sameJSON(va, vb) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	default: // string, bool, nil
		return a == b
	}
}

// hasControl reports C0 control characters (NUL and friends), which identifiers must not hold.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}
