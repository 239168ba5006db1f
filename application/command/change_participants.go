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

// MembershipNotifier tells every instance at once that a user left a conversation, so their
// live subscriptions end there and then. It is best effort: each instance also re-checks
// membership on its own at every keep-alive round.
type MembershipNotifier interface {
	Removed(ctx context.Context, conv conversation.ID, user conversation.UserID) error
}

type ChangeParticipantsHandler struct {
	repo     conversation.Repository
	notifier MembershipNotifier
	now      func() time.Time
}

func NewChangeParticipantsHandler(repo conversation.Repository, notifier MembershipNotifier) ChangeParticipantsHandler {
	if repo == nil || notifier == nil {
		panic("command.NewChangeParticipantsHandler: nil dependency")
	}
	return ChangeParticipantsHandler{repo: repo, notifier: notifier, now: time.Now}
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

// Remove takes the user out and then tells the instances, so their live subscriptions end at
// once. A failed notice does not fail the removal, which is stored: the notifier reports it,
// and keep-alive rounds catch up.
func (h ChangeParticipantsHandler) Remove(ctx context.Context, cmd RemoveParticipant) error {
	if err := h.repo.Update(ctx, cmd.ConversationID, func(c *conversation.Conversation) error {
		return c.RemoveParticipant(cmd.By, cmd.User, h.now())
	}); err != nil {
		return err
	}
	_ = h.notifier.Removed(ctx, cmd.ConversationID, cmd.User)
	return nil
}
