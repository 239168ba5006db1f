package command

import (
	"context"
	"time"

	"github.com/nova-chat/nova/domain/conversation"
)

// AddParticipant lets a participant bring a user into the conversation.
type AddParticipant struct {
	ConversationID conversation.ID
	By, User       conversation.UserID
}

// RemoveParticipant lets a participant take a user (or themselves) out of the conversation.
type RemoveParticipant struct {
	ConversationID conversation.ID
	By, User       conversation.UserID
}

type ChangeParticipantsHandler struct {
	repo conversation.Repository
	now  func() time.Time
}

func NewChangeParticipantsHandler(repo conversation.Repository) ChangeParticipantsHandler {
	if repo == nil {
		panic("command.NewChangeParticipantsHandler: nil repository")
	}
	return ChangeParticipantsHandler{repo: repo, now: time.Now}
}

func (h ChangeParticipantsHandler) Add(ctx context.Context, cmd AddParticipant) (conversation.Snapshot, error) {
	var s conversation.Snapshot
	err := h.repo.Update(ctx, cmd.ConversationID, func(c *conversation.Conversation) error {
		if err := c.AddParticipant(cmd.By, cmd.User, h.now()); err != nil {
			return err
		}
		s = c.Snapshot()
		return nil
	})
	return s, err
}

func (h ChangeParticipantsHandler) Remove(ctx context.Context, cmd RemoveParticipant) error {
	return h.repo.Update(ctx, cmd.ConversationID, func(c *conversation.Conversation) error {
		return c.RemoveParticipant(cmd.By, cmd.User, h.now())
	})
}
