package http

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/application/query"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/apierror"
)

func (h *handlers) createConversation(c echo.Context) error {
	if !h.limiter.Allow(c.Request().Context(), string(currentUser(c))) {
		return apierror.RateLimited
	}
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
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.app.Queries.Conversations.ListFor(c.Request().Context(), currentUser(c), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toConversationPageResponse(page))
}

// pageParams reads ?after=<conversation id>&limit=L (1..1000, default 1000) of the list calls.
func pageParams(c echo.Context) (query.Page, error) {
	var p query.Page
	if s := c.QueryParam("after"); s != "" {
		id, err := conversation.ParseID(s)
		if err != nil {
			return p, apierror.InvalidArgument("after must be a conversation id")
		}
		p.After = id
	}
	limit, err := intParam(c, "limit", query.MaxPageLimit)
	if err != nil || limit < 1 || limit > query.MaxPageLimit {
		return p, apierror.InvalidArgument(fmt.Sprintf("limit must be 1 to %d", query.MaxPageLimit))
	}
	p.Limit = limit
	return p, nil
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
	if !h.limiter.Allow(c.Request().Context(), string(currentUser(c))) {
		return apierror.RateLimited
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
	if !h.limiter.Allow(c.Request().Context(), string(currentUser(c))) {
		return apierror.RateLimited
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
