package query

import (
	"context"

	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

// CursorReader reads one client's cursors by conversation (both the hot and the durable copy).
type CursorReader interface {
	AckedSeqs(ctx context.Context, user conversation.UserID, client clientsync.ClientID) (map[conversation.ID]int64, error)
}

// Cursors answers "how far has this client got": the higher of the hot and the durable copy,
// since a cursor only moves forward and either copy may lag or be lost.
type Cursors struct {
	hot, durable CursorReader
	convs        Conversations
}

func NewCursors(hot, durable CursorReader, rm ReadModel) Cursors {
	if hot == nil || durable == nil {
		panic("query.NewCursors: nil dependency")
	}
	return Cursors{hot: hot, durable: durable, convs: NewConversations(rm)}
}

// AckedSeqs merges both copies; the hot one is optional (Redis may be down or empty).
func (q Cursors) AckedSeqs(ctx context.Context, user conversation.UserID, client clientsync.ClientID) (map[conversation.ID]int64, error) {
	out, err := q.durable.AckedSeqs(ctx, user, client)
	if err != nil {
		return nil, err
	}
	if hot, err := q.hot.AckedSeqs(ctx, user, client); err == nil {
		for conv, seq := range hot {
			out[conv] = max(out[conv], seq)
		}
	}
	return out, nil
}

// Unread is one conversation's count of messages after the client's cursor.
type Unread struct {
	ConversationID conversation.ID
	Unread         int64
	LastSeq        int64
	AckedSeq       int64
}

// UnreadPage is Unread for one page of the user's conversations (see ConversationPage).
type UnreadPage struct {
	Conversations []Unread
	HasMore       bool
}

// Unread counts, for one page of user's conversations, the messages after client's cursor.
func (q Cursors) Unread(ctx context.Context, user conversation.UserID, client clientsync.ClientID, p Page) (UnreadPage, error) {
	page, err := q.convs.ListFor(ctx, user, p)
	if err != nil {
		return UnreadPage{}, err
	}
	acked, err := q.AckedSeqs(ctx, user, client)
	if err != nil {
		return UnreadPage{}, err
	}
	out := make([]Unread, len(page.Conversations))
	for i, c := range page.Conversations {
		a := min(acked[c.ID], c.LastSeq)
		out[i] = Unread{ConversationID: c.ID, Unread: c.LastSeq - a, LastSeq: c.LastSeq, AckedSeq: a}
	}
	return UnreadPage{Conversations: out, HasMore: page.HasMore}, nil
}
