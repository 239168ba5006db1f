// Package messagejson maps the domain's Message to the Message JSON of PROTOCOL.md and back.
// The format itself (its Go type and its encoder and decoder) belongs to the events package,
// which other services import and which may not know Nova's domain; this package is the one
// bridge, so every writer and reader inside Nova (HTTP answers, WebSocket frames, the outbox
// row that becomes the stream, live and Pub/Sub payloads, fan-out entries) uses the same code.
package messagejson

import (
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/events"
)

// Message is the Message JSON as a Go value: embed it in larger answers (a page of messages,
// a WebSocket frame) so that they encode it exactly as Encode does.
type Message = events.MessagePosted

// From is m as the Message JSON shows it.
func From(m conversation.Message) Message {
	return Message{
		ID: m.ID, ConversationID: string(m.ConversationID), Seq: m.Seq, StreamID: m.StreamID,
		SenderID: string(m.SenderID), ClientMsgID: m.ClientMsgID, Body: m.Body, CreatedAt: m.CreatedAt,
	}
}

// FromAll is From for each message of msgs (never nil, so an empty page encodes as []).
func FromAll(msgs []conversation.Message) []Message {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = From(m)
	}
	return out
}

// To is the domain's message read from the Message JSON.
func To(w Message) conversation.Message {
	return conversation.Message{
		ID: w.ID, ConversationID: conversation.ID(w.ConversationID), Seq: w.Seq, StreamID: w.StreamID,
		SenderID: conversation.UserID(w.SenderID), ClientMsgID: w.ClientMsgID, Body: w.Body, CreatedAt: w.CreatedAt,
	}
}

// Encode writes m as the Message JSON.
func Encode(m conversation.Message) ([]byte, error) { return events.EncodeMessage(From(m)) }

// Decode reads the Message JSON (its syntax; the fields are not validated).
func Decode(data []byte) (conversation.Message, error) {
	w, err := events.DecodeMessage(data)
	if err != nil {
		return conversation.Message{}, err
	}
	return To(w), nil
}
