package http

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/application/query"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/ports/apierror"
)

func (h *handlers) postMessage(c echo.Context) error {
	start := time.Now()
	id, err := conversation.ParseID(c.Param("id"))
	if err != nil {
		return conversation.ErrNotFound
	}
	user := currentUser(c)
	if !h.limiter.Allow(c.Request().Context(), string(user)) {
		return apierror.RateLimited
	}
	var req struct {
		ClientMsgID string          `json:"client_msg_id"`
		Body        json.RawMessage `json:"body"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	msg, created, err := h.app.Commands.PostMessage.Handle(c.Request().Context(), command.PostMessage{
		ConversationID: id, SenderID: user, ClientMsgID: req.ClientMsgID, Body: req.Body,
	})
	h.obs.SendHandled("http", time.Since(start), monitoring.Outcome(created, err, err != nil && apierror.From(err).Status < 500))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, messagejson.From(msg))
}

func (h *handlers) listMessages(c echo.Context) error {
	id, err := conversation.ParseID(c.Param("id"))
	if err != nil {
		return conversation.ErrNotFound
	}
	limit, err := intParam(c, "limit", query.DefaultPageSize)
	if err != nil {
		return err
	}
	after, before := c.QueryParam("after_seq"), c.QueryParam("before_seq")
	if after != "" && before != "" {
		return apierror.InvalidArgument("give after_seq or before_seq, not both")
	}
	ctx, user := c.Request().Context(), currentUser(c)
	var page query.MessagePage
	if before != "" {
		seq, err := intParam(c, "before_seq", 0)
		if err != nil {
			return err
		}
		page, err = h.app.Queries.Messages.Before(ctx, user, id, int64(seq), limit)
		if err != nil {
			return err
		}
	} else {
		seq, err := intParam(c, "after_seq", 0)
		if err != nil {
			return err
		}
		page, err = h.app.Queries.Messages.After(ctx, user, id, int64(seq), limit)
		if err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, messagePageResponse{Messages: messagejson.FromAll(page.Messages), HasMore: page.HasMore})
}

func intParam(c echo.Context, name string, def int) (int, error) {
	s := c.QueryParam(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, apierror.InvalidArgument(name + " must be a non-negative integer")
	}
	return n, nil
}

func (h *handlers) unread(c echo.Context) error {
	client, err := clientsync.ParseClientID(c.QueryParam("client_id"))
	if err != nil {
		return err
	}
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.app.Queries.Cursors.Unread(c.Request().Context(), currentUser(c), client, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toUnreadPageResponse(page))
}
