package http

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/domain/conversation"
)

type conversationResponse struct {
	ID           conversation.ID       `json:"id"`
	Title        string                `json:"title"`
	Participants []conversation.UserID `json:"participants"`
	CreatedAt    time.Time             `json:"created_at"`
	LastSeq      int64                 `json:"last_seq"`
}

func toConversationResponse(s conversation.Snapshot) conversationResponse {
	return conversationResponse{ID: s.ID, Title: s.Title, Participants: s.Participants, CreatedAt: s.CreatedAt, LastSeq: s.LastSeq}
}

func (h *handlers) createConversation(c echo.Context) error {
	var req struct {
		Participants []string `json:"participants"`
		Title        string   `json:"title"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	participants := make([]conversation.UserID, 0, len(req.Participants))
	for _, p := range req.Participants {
		u, err := conversation.ParseUserID(p)
		if err != nil {
			return err
		}
		participants = append(participants, u)
	}
	s, err := h.app.Commands.StartConversation.Handle(c.Request().Context(), command.StartConversation{
		StartedBy: currentUser(c), Title: req.Title, Participants: participants,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toConversationResponse(s))
}

func (h *handlers) listConversations(c echo.Context) error {
	list, err := h.app.Queries.Conversations.ListFor(c.Request().Context(), currentUser(c))
	if err != nil {
		return err
	}
	out := make([]conversationResponse, len(list))
	for i, s := range list {
		out[i] = toConversationResponse(s)
	}
	return c.JSON(http.StatusOK, map[string]any{"conversations": out})
}

func (h *handlers) getConversation(c echo.Context) error {
	id, err := conversation.ParseID(c.Param("id"))
	if err != nil {
		return conversation.ErrNotFound
	}
	s, err := h.app.Queries.Conversations.Get(c.Request().Context(), currentUser(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toConversationResponse(s))
}

func (h *handlers) addParticipant(c echo.Context) error {
	id, err := conversation.ParseID(c.Param("id"))
	if err != nil {
		return conversation.ErrNotFound
	}
	var req struct {
		UserID string `json:"user_id"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	user, err := conversation.ParseUserID(req.UserID)
	if err != nil {
		return err
	}
	s, err := h.app.Commands.ChangeParticipants.Add(c.Request().Context(), command.AddParticipant{
		ConversationID: id, By: currentUser(c), User: user,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toConversationResponse(s))
}

func (h *handlers) removeParticipant(c echo.Context) error {
	id, err := conversation.ParseID(c.Param("id"))
	if err != nil {
		return conversation.ErrNotFound
	}
	user, err := conversation.ParseUserID(c.Param("user_id"))
	if err != nil {
		return conversation.ErrNotFound
	}
	err = h.app.Commands.ChangeParticipants.Remove(c.Request().Context(), command.RemoveParticipant{
		ConversationID: id, By: currentUser(c), User: user,
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
