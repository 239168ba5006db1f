package command

import (
	"context"
	"errors"

	"github.com/nova-chat/nova/domain/conversation"
)

// OfflineCounts keeps per (user, conversation) counts of messages that arrived while the user
// had no connection. Count applies an event at most once per consumer group.
type OfflineCounts interface {
	Count(ctx context.Context, group, eventID string, conv conversation.ID, users []conversation.UserID) (bool, error)
	Clear(ctx context.Context, user conversation.UserID, conv conversation.ID) error
}

// PresenceReader tells which users hold a live connection on any instance.
type PresenceReader interface {
	Online(ctx context.Context, users []conversation.UserID) (map[conversation.UserID]bool, error)
}

// CountOfflineHandler counts a new message for every participant but the sender who is offline.
type CountOfflineHandler struct {
	conversations conversation.Repository
	presence      PresenceReader
	counts        OfflineCounts
}

func NewCountOfflineHandler(conversations conversation.Repository, presence PresenceReader, counts OfflineCounts) CountOfflineHandler {
	if conversations == nil || presence == nil || counts == nil {
		panic("command.NewCountOfflineHandler: nil dependency")
	}
	return CountOfflineHandler{conversations: conversations, presence: presence, counts: counts}
}

// Handle is idempotent per (group, eventID): a redelivered event changes nothing. participants
// are the conversation's when the message was posted, as the event carries them; when the event
// does not (older entries, redrives), they are read from the conversation.
func (h CountOfflineHandler) Handle(ctx context.Context, group, eventID string, m conversation.Message, participants []conversation.UserID) error {
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
	var others []conversation.UserID
	for _, p := range participants {
		if p != m.SenderID {
			others = append(others, p)
		}
	}
	online, err := h.presence.Online(ctx, others)
	if err != nil {
		return err
	}
	offline := others[:0]
	for _, u := range others {
		if !online[u] {
			offline = append(offline, u)
		}
	}
	_, err = h.counts.Count(ctx, group, eventID, m.ConversationID, offline)
	return err
}
