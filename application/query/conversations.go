// Package query holds Nova's read-side use cases.
package query

import (
	"context"

	"github.com/nova-chat/nova/domain/conversation"
)

// ReadModel is what the queries need from the stored read models.
type ReadModel interface {
	Conversation(ctx context.Context, id conversation.ID) (conversation.Snapshot, error)
	ConversationsOf(ctx context.Context, user conversation.UserID) ([]conversation.Snapshot, error)
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

func (q Conversations) ListFor(ctx context.Context, user conversation.UserID) ([]conversation.Snapshot, error) {
	return q.rm.ConversationsOf(ctx, user)
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
