// Package command holds Nova's write-side use cases, one per file.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/domain/conversation"
)

// PostMessage asks to add a message to a conversation.
type PostMessage struct {
	ConversationID conversation.ID
	SenderID       conversation.UserID
	ClientMsgID    string
	Body           json.RawMessage
}

type PostMessageHandler struct {
	repo conversation.Repository
	now  func() time.Time
}

func NewPostMessageHandler(repo conversation.Repository) PostMessageHandler {
	if repo == nil {
		panic("command.NewPostMessageHandler: nil dependency")
	}
	return PostMessageHandler{repo: repo, now: time.Now}
}

// Handle stores the message once. created is false when the sender had already posted this
// client_msg_id: then the original message is returned, from any instance, at any later time.
// A repeat is recognised by the unique key inside the write itself (its transaction rolls
// back), so first sends, the common case, pay no extra lookup.
func (h PostMessageHandler) Handle(ctx context.Context, cmd PostMessage) (msg conversation.Message, created bool, err error) {
	draft := conversation.NewMessageDraft{
		ID: uuid.Must(uuid.NewV7()).String(), SenderID: cmd.SenderID,
		ClientMsgID: cmd.ClientMsgID, Body: cmd.Body, At: h.now(),
	}
	if err := draft.Validate(); err != nil {
		return conversation.Message{}, false, err
	}
	// posted is read only once Update succeeded: a send whose caller gave up (its context ended)
	// may still be decided by a group commit after Update returned, and must not write this
	// call's results then
	var posted conversation.Message
	err = h.repo.Update(ctx, cmd.ConversationID, func(c *conversation.Conversation) error {
		m, err := c.PostMessage(draft)
		posted = m
		return err
	})
	var dup *conversation.DuplicateMessageError
	if errors.As(err, &dup) {
		return original(cmd, dup.Original)
	}
	if err != nil {
		return conversation.Message{}, false, err
	}
	return posted, true, nil
}

// original answers a retry with the stored message, only for the same body. The sender is a
// participant: the repeat was detected inside an Update whose PostMessage checked that.
func original(cmd PostMessage, orig conversation.Message) (conversation.Message, bool, error) {
	if !orig.IsRepeatOf(cmd.Body) {
		return conversation.Message{}, false, conversation.ErrClientMsgIDReused
	}
	return orig, false, nil
}
