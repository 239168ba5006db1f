package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

// HotCursors is the fast copy of the cursors (Redis); it may lose data, Postgres may not.
type HotCursors interface {
	Advance(ctx context.Context, key clientsync.Key, seq int64, at time.Time) error
}

// AcknowledgeSyncHandler moves a client's cursor: at once in the hot copy, and durably when
// the caller persists (coalesced by the WebSocket port to about once a second and on disconnect).
type AcknowledgeSyncHandler struct {
	conversations conversation.Repository
	hot           HotCursors
	offline       OfflineCounts
	repo          clientsync.Repository
	now           func() time.Time
}

func NewAcknowledgeSyncHandler(conversations conversation.Repository, hot HotCursors, offline OfflineCounts,
	repo clientsync.Repository) AcknowledgeSyncHandler {
	if conversations == nil || hot == nil || offline == nil || repo == nil {
		panic("command.NewAcknowledgeSyncHandler: nil dependency")
	}
	return AcknowledgeSyncHandler{conversations: conversations, hot: hot, offline: offline, repo: repo, now: time.Now}
}

// Synced clears the user's offline counter of a conversation (on subscribe and on ack).
func (h AcknowledgeSyncHandler) Synced(ctx context.Context, user conversation.UserID, conv conversation.ID) error {
	return h.offline.Clear(ctx, user, conv)
}

// Acknowledge checks the caller may read the conversation and that seq exists, then moves the
// hot cursor. A Redis failure is returned; the durable copy still follows through Persist.
func (h AcknowledgeSyncHandler) Acknowledge(ctx context.Context, key clientsync.Key, seq int64) error {
	c, err := h.conversations.Get(ctx, key.Conversation)
	if err != nil {
		return err
	}
	if !c.IsParticipant(key.User) {
		return conversation.ErrNotFound
	}
	if seq < 1 || seq > c.LastSeq() {
		return &conversation.ValidationError{Reason: "seq must be between 1 and the conversation's last seq"}
	}
	if err := h.hot.Advance(ctx, key, seq, h.now()); err != nil {
		return fmt.Errorf("%w: %v", ErrHotCursorUnavailable, err)
	}
	if err := h.offline.Clear(ctx, key.User, key.Conversation); err != nil {
		return fmt.Errorf("%w: %v", ErrHotCursorUnavailable, err)
	}
	return nil
}

// ErrHotCursorUnavailable: the acknowledgement is valid but Redis did not take it; Persist still will.
var ErrHotCursorUnavailable = errors.New("hot cursor copy unavailable")

// Persist stores the cursor durably (forward only).
func (h AcknowledgeSyncHandler) Persist(ctx context.Context, key clientsync.Key, seq int64) error {
	return h.repo.Update(ctx, key, func(c *clientsync.ClientSync) error {
		return c.Acknowledge(seq, h.now())
	})
}
