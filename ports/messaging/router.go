package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nova-chat/nova/application"
	"github.com/nova-chat/nova/domain/conversation"
)

// GroupMessagingService is the consumer group of Nova's own handler (the offline counters).
const GroupMessagingService = "messaging-service"

// SubscriberFactory gives a subscriber reading the fan-out stream as one consumer group.
type SubscriberFactory interface {
	For(ctx context.Context, group string) (message.Subscriber, error)
}

// RouterStats are the router's running totals (exported as metrics).
type RouterStats struct{ Handled, DeadLettered, Malformed atomic.Int64 }

// Router runs the consumer-group handlers of this instance in a Watermill router. Every handler
// is its own consumer group on the fan-out stream, so each one sees every message once across
// all instances; a crashed instance's pending entries are claimed by the survivors.
type Router struct {
	router *message.Router
	Stats  *RouterStats
}

// Handler is one consumer group's work on a fan-out message (the Message JSON is msg.Payload).
type Handler struct {
	Group  string
	Handle message.NoPublishHandlerFunc
}

// NewRouter builds the router with its middleware: poisoned and malformed messages go to the
// dead-letter stream; panics become errors; failures are retried with backoff first.
func NewRouter(ctx context.Context, keys Keys, subs SubscriberFactory, deadLetters message.Publisher,
	app application.Application, reg prometheus.Registerer, log *slog.Logger) (*Router, error) {
	stats := &RouterStats{}
	wlog := watermill.NewSlogLoggerWithLevelMapping(log.With("component", "router"),
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
	if err != nil {
		return nil, err
	}
	poison, err := middleware.PoisonQueue(countingPublisher{deadLetters, stats, log.With("component", "router")}, keys.DeadLetterStream)
	if err != nil {
		return nil, err
	}
	r.AddMiddleware(
		poison,
		rejectMalformed(stats),
		middleware.Recoverer,
		middleware.Retry{MaxRetries: 5, InitialInterval: 100 * time.Millisecond, MaxInterval: 2 * time.Second,
			Multiplier: 2, Logger: wlog,
			ShouldRetry: func(p middleware.RetryParams) bool { return !errors.Is(p.Err, errPermanent) }}.Middleware,
	)
	// Watermill's own metrics: handler execution time and messages received, per consumer group.
	metrics.NewPrometheusMetricsBuilder(reg, "nova", "watermill").AddPrometheusRouterMetrics(r)
	for _, h := range handlers(app) {
		sub, err := subs.For(ctx, h.Group)
		if err != nil {
			return nil, fmt.Errorf("subscriber for %s: %w", h.Group, err)
		}
		handle := h.Handle
		r.AddConsumerHandler(h.Group, keys.FanoutStream, sub, func(msg *message.Message) error {
			if err := handle(msg); err != nil {
				return err
			}
			stats.Handled.Add(1)
			return nil
		})
	}
	return &Router{router: r, Stats: stats}, nil
}

// handlers lists every consumer group of this service. To add one, see docs/EVENTS.md.
func handlers(app application.Application) []Handler {
	return []Handler{{
		Group: GroupMessagingService,
		Handle: func(msg *message.Message) error {
			m, err := postedMessage(msg)
			if err != nil {
				return err
			}
			var participants []conversation.UserID
			if list := msg.Metadata.Get(MetaParticipants); list != "" {
				for _, p := range strings.Split(list, ",") {
					participants = append(participants, conversation.UserID(p))
				}
			}
			return app.Commands.CountOffline.Handle(msg.Context(), GroupMessagingService, msg.UUID, m, participants)
		},
	}}
}

// postedMessage is what the handler needs of a message_posted event: from the metadata when it
// names conversation, seq and sender (no JSON to decode), else from the payload (older entries).
func postedMessage(msg *message.Message) (conversation.Message, error) {
	conv, sender := msg.Metadata.Get(MetaConversationID), msg.Metadata.Get(MetaSenderID)
	if seq, err := strconv.ParseInt(msg.Metadata.Get(MetaSeq), 10, 64); err == nil && seq > 0 && conv != "" && sender != "" {
		return conversation.Message{ConversationID: conversation.ID(conv), Seq: seq, SenderID: conversation.UserID(sender)}, nil
	}
	var m conversation.Message
	if err := json.Unmarshal(msg.Payload, &m); err != nil || m.ConversationID == "" || m.Seq < 1 {
		return m, fmt.Errorf("%w: payload is not a stored message: %v", errPermanent, err)
	}
	return m, nil
}

// Run consumes until ctx ends, then closes the router (acking what was processed).
func (r *Router) Run(ctx context.Context) error {
	err := r.router.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Running is closed once every handler is subscribed.
func (r *Router) Running() chan struct{} { return r.router.Running() }

var errPermanent = errors.New("message cannot be processed")

// rejectMalformed sends entries the unmarshaller could not read straight to the dead letters.
func rejectMalformed(stats *RouterStats) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if reason := msg.Metadata.Get(MetaMalformed); reason != "" {
				stats.Malformed.Add(1)
				return nil, fmt.Errorf("%w: malformed fan-out entry: %s", errPermanent, reason)
			}
			return h(msg)
		}
	}
}

type countingPublisher struct {
	message.Publisher
	stats *RouterStats
	log   *slog.Logger
}

func (p countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	p.stats.DeadLettered.Add(int64(len(msgs)))
	for _, m := range msgs {
		entry := m.Metadata.Get(MetaEntryID)
		seq, _, _ := strings.Cut(entry, "-") // entry ids are <seq>-0
		p.log.Warn("fan-out message dead-lettered", "stream", topic, "conversation_id", m.Metadata.Get(MetaConversationID),
			"message_id", m.UUID, "seq", seq, "consumer_group", m.Metadata.Get(middleware.PoisonedHandlerKey),
			"reason", m.Metadata.Get(middleware.ReasonForPoisonedKey))
	}
	return nil
}
