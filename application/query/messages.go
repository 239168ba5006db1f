package query

import (
	"context"

	"github.com/nova-chat/nova/domain/conversation"
)

const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// MessagePage is one page of history; HasMore says another page follows in the same direction.
type MessagePage struct {
	Messages []conversation.Message
	HasMore  bool
}

// Messages pages through a conversation's history for one of its participants.
type Messages struct {
	conversations Conversations
	rm            ReadModel
}

func NewMessages(rm ReadModel) Messages {
	return Messages{conversations: NewConversations(rm), rm: rm}
}

// After returns messages with seq > afterSeq, ascending.
func (q Messages) After(ctx context.Context, user conversation.UserID, id conversation.ID, afterSeq int64, limit int) (MessagePage, error) {
	if err := q.check(ctx, user, id, limit); err != nil {
		return MessagePage{}, err
	}
	msgs, err := q.rm.MessagesAfter(ctx, id, afterSeq, limit+1)
	return page(msgs, limit), err
}

// Before returns messages with seq < beforeSeq, descending, for scrolling back.
func (q Messages) Before(ctx context.Context, user conversation.UserID, id conversation.ID, beforeSeq int64, limit int) (MessagePage, error) {
	if err := q.check(ctx, user, id, limit); err != nil {
		return MessagePage{}, err
	}
	msgs, err := q.rm.MessagesBefore(ctx, id, beforeSeq, limit+1)
	return page(msgs, limit), err
}

func (q Messages) check(ctx context.Context, user conversation.UserID, id conversation.ID, limit int) error {
	if limit < 1 || limit > MaxPageSize {
		return &conversation.ValidationError{Reason: "limit must be between 1 and 1000"}
	}
	_, err := q.conversations.Get(ctx, user, id)
	return err
}

func page(msgs []conversation.Message, limit int) MessagePage {
	if len(msgs) > limit {
		return MessagePage{Messages: msgs[:limit], HasMore: true}
	}
	if msgs == nil {
		msgs = []conversation.Message{}
	}
	return MessagePage{Messages: msgs}
}
