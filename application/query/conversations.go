// Package query holds Nova's read-side use cases.
package query

import (
	"context"

	"github.com/nova-chat/nova/domain/conversation"
)

// ReadModel is what the queries need from the stored read models.
type ReadModel interface {
	Conversation(ctx context.Context, id conversation.ID) (conversation.Snapshot, error)
	ConversationsOf(ctx context.Context, user conversation.UserID, after conversation.ID, limit int) ([]conversation.Snapshot, error)
	MessagesAfter(ctx context.Context, id conversation.ID, afterSeq int64, limit int) ([]conversation.Message, error)
	MessagesBefore(ctx context.Context, id conversation.ID, beforeSeq int64, limit int) ([]conversation.Message, error)
}

// Conversations answers questions about the conversations a user takes part in.
type Conversations struct{ rm ReadModel }

func NewConversations(rm ReadModel) Conversations {
	if rm == nil {
		panic("query.NewConversations: nil read model")
	}
	return Conversations{rm: rm}
}

// Get returns the conversation if the user is a participant; otherwise conversation.ErrNotFound.
func (q Conversations) Get(ctx context.Context, user conversation.UserID, id conversation.ID) (conversation.Snapshot, error) {
	s, err := q.rm.Conversation(ctx, id)
	if err != nil {
		return conversation.Snapshot{}, err
	}
	if !isParticipant(s, user) {
		return conversation.Snapshot{}, conversation.ErrNotFound
	}
	return s, nil
}

// Page asks for at most Limit items after the item named After ("": from the first).
type Page struct {
	After conversation.ID
	Limit int
}

// MaxPageLimit is the most items one page holds, and a page's size when none is asked for.
const MaxPageLimit = 1000

// ConversationPage is one page of a user's conversations, in creation order; HasMore says
// another page follows (ask for it with After = the last one's id).
type ConversationPage struct {
	Conversations []conversation.Snapshot
	HasMore       bool
}

// ListFor returns one page of the conversations user takes part in.
func (q Conversations) ListFor(ctx context.Context, user conversation.UserID, p Page) (ConversationPage, error) {
	limit := p.Limit
	if limit < 1 || limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	list, err := q.rm.ConversationsOf(ctx, user, p.After, limit+1)
	if err != nil {
		return ConversationPage{}, err
	}
	if len(list) > limit {
		return ConversationPage{Conversations: list[:limit], HasMore: true}, nil
	}
	return ConversationPage{Conversations: list}, nil
}

func isParticipant(s conversation.Snapshot, user conversation.UserID) bool {
	for _, p := range s.Participants {
		if p == user {
			return true
		}
	}
	return false
}

// Participants lists who is in a conversation, for authorisation checks inside Nova (a port
// re-checking live subscriptions); it is never answered to a client as such.
func (q Conversations) Participants(ctx context.Context, id conversation.ID) ([]conversation.UserID, error) {
	s, err := q.rm.Conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.Participants, nil
}
