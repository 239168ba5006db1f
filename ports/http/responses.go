package http

import (
	"time"

	"github.com/nova-chat/nova/application/query"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
)

// The answers of the HTTP API (PROTOCOL.md section 3), declared here so that renaming a field
// of the domain or the application cannot change them; responses_test.go holds them to golden
// JSON. A Message is the shared Message JSON (internal/messagejson). Fields are in the order
// the API has always written them.

type conversationResponse struct {
	ID           string    `json:"id"`
	Title        string    `json:"title"`
	Participants []string  `json:"participants"`
	CreatedAt    time.Time `json:"created_at"`
	LastSeq      int64     `json:"last_seq"`
}

func toConversationResponse(s conversation.Snapshot) conversationResponse {
	var participants []string // nil stays nil (null), as before
	if s.Participants != nil {
		participants = make([]string, len(s.Participants))
		for i, p := range s.Participants {
			participants[i] = string(p)
		}
	}
	return conversationResponse{ID: string(s.ID), Title: s.Title, Participants: participants, CreatedAt: s.CreatedAt, LastSeq: s.LastSeq}
}

type conversationPageResponse struct {
	Conversations []conversationResponse `json:"conversations"`
	HasMore       bool                   `json:"has_more"`
}

func toConversationPageResponse(page query.ConversationPage) conversationPageResponse {
	out := make([]conversationResponse, len(page.Conversations))
	for i, s := range page.Conversations {
		out[i] = toConversationResponse(s)
	}
	return conversationPageResponse{Conversations: out, HasMore: page.HasMore}
}

type messagePageResponse struct {
	HasMore  bool                  `json:"has_more"`
	Messages []messagejson.Message `json:"messages"`
}

type unreadResponse struct {
	ConversationID string `json:"conversation_id"`
	Unread         int64  `json:"unread"`
	LastSeq        int64  `json:"last_seq"`
	AckedSeq       int64  `json:"acked_seq"`
}

type unreadPageResponse struct {
	Conversations []unreadResponse `json:"conversations"`
	HasMore       bool             `json:"has_more"`
}

func toUnreadPageResponse(page query.UnreadPage) unreadPageResponse {
	out := make([]unreadResponse, len(page.Conversations))
	for i, u := range page.Conversations {
		out[i] = unreadResponse{ConversationID: string(u.ConversationID), Unread: u.Unread, LastSeq: u.LastSeq, AckedSeq: u.AckedSeq}
	}
	return unreadPageResponse{Conversations: out, HasMore: page.HasMore}
}
