package command

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/domain/conversation"
)

// StartConversation creates a conversation; the caller is always a participant.
type StartConversation struct {
	StartedBy    conversation.UserID
	Title        string
	Participants []conversation.UserID
}

type StartConversationHandler struct {
	repo conversation.Repository
	now  func() time.Time
}

func NewStartConversationHandler(repo conversation.Repository) StartConversationHandler {
	if repo == nil {
		panic("command.NewStartConversationHandler: nil repository")
	}
	return StartConversationHandler{repo: repo, now: time.Now}
}

func (h StartConversationHandler) Handle(ctx context.Context, cmd StartConversation) (conversation.Snapshot, error) {
	id := conversation.ID(uuid.Must(uuid.NewV7()).String())
	c, err := conversation.Start(id, cmd.Title, cmd.StartedBy, cmd.Participants, h.now())
	if err != nil {
		return conversation.Snapshot{}, err
	}
	if err := h.repo.Create(ctx, c); err != nil {
		return conversation.Snapshot{}, err
	}
	return c.Snapshot(), nil
}
