package command

import (
	"context"
	"errors"

	"github.com/nova-chat/nova/domain/conversation"
)

// OfflineCounts keeps per (user, conversation) counts of messages that arrived while the user
// had no connection.
type OfflineCounts interface {
	// CountOffline adds one for each of recipients who holds no live connection on any instance,
	// at most once per (group, conversation, seq), and reports whether the message was new.
	CountOffline(ctx context.Context, group string, conv conversation.ID, seq int64, recipients []conversation.UserID) (bool, error)
	Clear(ctx context.Context, user conversation.UserID, conv conversation.ID) error
}

// CountOfflineHandler counts a new message for every participant but the sender who is offline.
type CountOfflineHandler struct {
	conversations conversation.Repository
	counts        OfflineCounts
}

func NewCountOfflineHandler(conversations conversation.Repository, counts OfflineCounts) CountOfflineHandler {
	if conversations == nil || counts == nil {
		panic("command.NewCountOfflineHandler: nil dependency")
	}
	return CountOfflineHandler{conversations: conversations, counts: counts}
}

// Handle is idempotent per (group, message): a redelivered event changes nothing. participants
// are the conversation's when the message was posted, as the event carries them; when the event
// does not (older entries, redrives), they are read from the conversation.
func (h CountOfflineHandler) Handle(ctx context.Context, group string, m conversation.Message, participants []conversation.UserID) error {
	if participants == nil {
		c, err := h.conversations.Get(ctx, m.ConversationID)
		if errors.Is(err, conversation.ErrNotFound) {
			return nil // nothing to count for a conversation that does not exist
		}
		if err != nil {
			return err
		}
		participants = c.Participants()
	}
	recipients := make([]conversation.UserID, 0, len(participants))
	for _, p := range participants {
		if p != m.SenderID {
			recipients = append(recipients, p)
		}
	}
	_, err := h.counts.CountOffline(ctx, group, m.ConversationID, m.Seq, recipients)
	return err
}
