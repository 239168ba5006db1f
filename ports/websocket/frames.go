// Package websocket is the WebSocket port: subscriptions with exact recovery, sends and acks.
package websocket

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/nova-chat/nova/internal/messagejson"
)

// inFrame is any client frame; which fields are required depends on Type.
type inFrame struct {
	Type           string          `json:"type"`
	ID             string          `json:"id,omitempty"`
	ConversationID string          `json:"conversation_id,omitempty"`
	SinceSeq       *int64          `json:"since_seq,omitempty"`
	ClientMsgID    string          `json:"client_msg_id,omitempty"`
	Body           json.RawMessage `json:"body,omitempty"`
	Seq            *int64          `json:"seq,omitempty"`
}

const maxRequestIDLen = 128

// decodeFrame parses and checks one client frame. Its error text is safe to show the client.
func decodeFrame(data []byte) (inFrame, error) {
	f, err := decodeFields(data)
	if len(f.ID) > maxRequestIDLen {
		f.ID = "" // never echo an oversized id, whatever else is wrong
		if err == nil {
			err = errors.New("id must be at most 128 characters")
		}
	}
	return f, err
}

func decodeFields(data []byte) (inFrame, error) {
	var f inFrame
	if !utf8.Valid(data) {
		return f, errors.New("frame is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("frame is not a valid JSON object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF { // More() misses a stray '}' or ']'
		return f, errors.New("frame holds more than one JSON value")
	}
	switch f.Type {
	case "subscribe":
		if f.SinceSeq != nil && *f.SinceSeq < 0 {
			return f, errors.New("since_seq must not be negative")
		}
		return f, require(f.ConversationID != "", "conversation_id")
	case "unsubscribe":
		return f, require(f.ConversationID != "", "conversation_id")
	case "send":
		if err := require(f.ConversationID != "", "conversation_id"); err != nil {
			return f, err
		}
		if err := require(f.ClientMsgID != "", "client_msg_id"); err != nil {
			return f, err
		}
		return f, require(len(f.Body) > 0, "body")
	case "ack":
		if err := require(f.ConversationID != "", "conversation_id"); err != nil {
			return f, err
		}
		return f, require(f.Seq != nil, "seq")
	case "ping":
		return f, nil
	case "":
		return f, errors.New("type is required")
	default:
		return f, fmt.Errorf("unknown frame type %q", f.Type)
	}
}

func require(ok bool, field string) error {
	if !ok {
		return fmt.Errorf("%s is required", field)
	}
	return nil
}

// Server frames. A message frame splices in the Message JSON as stored and delivered (encoded
// once, by internal/messagejson, when the message was stored); a sent frame carries it as a value.

func messageFrame(messageJSON []byte) []byte {
	b := make([]byte, 0, len(messageJSON)+32)
	b = append(b, `{"type":"message","message":`...)
	b = append(b, messageJSON...)
	return append(b, '}')
}

type subscribedFrame struct {
	Type           string `json:"type"`
	ID             string `json:"id,omitempty"`
	ConversationID string `json:"conversation_id"`
	FromSeq        int64  `json:"from_seq"`
	LastSeq        int64  `json:"last_seq"`
}

// unsubscribedFrame: the server ended a subscription (PROTOCOL.md section 4).
type unsubscribedFrame struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	Reason         string `json:"reason"`
}

type sentFrame struct {
	Type    string              `json:"type"`
	ID      string              `json:"id,omitempty"`
	Message messagejson.Message `json:"message"`
}

type pongFrame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

type errorFrame struct {
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}
