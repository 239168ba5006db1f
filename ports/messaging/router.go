package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nova-chat/nova/application"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/internal/outagelog"
)

// GroupMessagingService is the consumer group of Nova's own handler (the offline counters).
const GroupMessagingService = "messaging-service"

// SubscriberFactory gives a subscriber reading the fan-out stream as one consumer group.
type SubscriberFactory interface {
	For(ctx context.Context, group string) (message.Subscriber, error)
	// Reachable answers whether Redis answers now: the router is built only then, since a
	// Watermill router that fails to start takes its whole close timeout to stop.
	Reachable(ctx context.Context) error
}

// RouterStats are the router's running totals (exported as metrics).
type RouterStats struct{ Handled, DeadLettered, Malformed int64 }

type routerCounts struct{ Handled, DeadLettered, Malformed atomic.Int64 }

// Router runs the consumer-group handlers of this instance in a Watermill router. Every handler
// is its own consumer group on the fan-out stream, so each one sees every message once across
// all instances; a crashed instance's pending entries are claimed by the survivors. When the
// router cannot start or stops (Redis unreachable when the instance starts), it is built again
// after a backoff; meanwhile Ready reports why, and nothing else in the instance stops.
type Router struct {
	build     func(ctx context.Context) (*message.Router, error)
	reachable func(ctx context.Context) error
	log       *slog.Logger
	down      *outagelog.Log // consumer groups not running: logged once per outage
	counts    *routerCounts

	mu      sync.Mutex
	lastErr error // nil while a router runs
}

// Handler is one consumer group's work on a fan-out message (the Message JSON is msg.Payload).
type Handler struct {
	Group  string
	Handle message.NoPublishHandlerFunc
}

var errNotStarted = errors.New("consumer groups not started yet")

// maxRebuildBackoff bounds the wait between attempts to build the router: an attempt is one
// connection to Redis, cheap to repeat, and consumer groups (and /readyz) should be back within
// a few seconds of Redis.
const maxRebuildBackoff = 2 * time.Second

// NewRouter prepares the router with its middleware: poisoned and malformed messages go to the
// dead-letter stream; failures are retried with backoff first; panics become errors, and a
// message whose handler panics on every attempt is dead-lettered (middlewares). The
// Watermill router itself is built by Run, and built again if it fails.
func NewRouter(keys Keys, subs SubscriberFactory, deadLetters message.Publisher,
	app application.Application, reg prometheus.Registerer, log *slog.Logger) *Router {
	if subs == nil || deadLetters == nil || reg == nil || log == nil || len(keys.FanoutStreams) == 0 {
		panic("messaging.NewRouter: nil dependency")
	}
	stats := &routerCounts{}
	log = log.With("component", "router")
	build := func(ctx context.Context) (*message.Router, error) {
		wlog := newWatermillLogger(log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
		r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
		if err != nil {
			return nil, err
		}
		// only what can never succeed is dead-lettered; a transient failure (Postgres or Redis
		// away longer than the retries) is nacked and handled again, until it succeeds
		poison, err := middleware.PoisonQueueWithFilter(countingPublisher{deadLetters, stats, log}, keys.DeadLetterStream,
			func(err error) bool { return errors.Is(err, errPermanent) })
		if err != nil {
			return nil, err
		}
		r.AddMiddleware(middlewares(poison, stats, middleware.Retry{MaxRetries: 5, InitialInterval: 100 * time.Millisecond,
			MaxInterval: 2 * time.Second, Multiplier: 2, Logger: wlog})...)
		// Watermill's own metrics: handler execution time and messages received, per consumer group
		// (registering again after a rebuild reuses the collectors).
		metrics.NewPrometheusMetricsBuilder(reg, "nova", "watermill").AddPrometheusRouterMetrics(r)
		for _, h := range handlers(app) {
			sub, err := subs.For(ctx, h.Group)
			if err != nil {
				_ = r.Close()
				return nil, fmt.Errorf("subscriber for %s: %w", h.Group, err)
			}
			handle := func(msg *message.Message) error {
				if err := h.Handle(msg); err != nil {
					return err
				}
				stats.Handled.Add(1)
				return nil
			}
			// one handler per partition, the group's subscriber shared: a conversation is in one
			// partition, so its messages keep their order
			for p, stream := range keys.FanoutStreams {
				r.AddConsumerHandler(handlerName(h.Group, p, len(keys.FanoutStreams)), stream, sub, handle)
			}
		}
		return r, nil
	}
	return &Router{build: build, reachable: subs.Reachable, log: log, counts: stats, lastErr: errNotStarted,
		down: outagelog.New(log, "consumer groups not running; retrying", "consumer groups run again")}
}

// handlerName names a group's handler of partition p of n: the group itself without partitions,
// so the router's metrics keep their labels.
func handlerName(group string, p, n int) string {
	if n < 2 {
		return group
	}
	return group + "-" + strconv.Itoa(p)
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
			return app.Commands.CountOffline.Handle(msg.Context(), GroupMessagingService, m, participants)
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
	m, err := messagejson.Decode(msg.Payload)
	if err != nil || m.ConversationID == "" || m.Seq < 1 {
		return m, fmt.Errorf("%w: payload is not a stored message: %v", errPermanent, err)
	}
	return m, nil
}

// Run consumes until ctx ends, building the router again (with backoff) whenever it cannot
// start or stops on its own.
func (r *Router) Run(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := r.reachable(ctx)
		if err == nil {
			err = r.runOnce(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("router stopped")
		}
		r.setErr(err)
		r.down.Failed(err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxRebuildBackoff)
	}
	return nil
}

func (r *Router) runOnce(ctx context.Context) error {
	wr, err := r.build(ctx)
	if err != nil {
		return err
	}
	defer wr.Close()
	// says "running" once the router runs; a router that fails before it does never closes
	// Running, so the watcher also ends with this attempt, not only at shutdown
	attempt, ended := context.WithCancel(ctx)
	defer ended()
	go func() {
		select {
		case <-wr.Running():
			r.setErr(nil)
			r.down.OK()
		case <-attempt.Done():
		}
	}()
	err = wr.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (r *Router) setErr(err error) {
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
}

// Ready reports whether the consumer groups run (nil), or why not (for /readyz).
func (r *Router) Ready(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

var errPermanent = errors.New("message cannot be processed")

// middlewares is the chain around every group's handler, outermost first: the poison queue
// (dead letters, for permanent failures only), malformed-entry rejection, then retry with
// backoff around the handler, whose panics become errors inside the retries. A handler that
// still panics when the retries are spent cannot handle this message (a bug, or an entry it
// cannot read): the message is dead-lettered, to be replayed once that is fixed, instead of
// being handed over again forever while its conversation's later messages wait behind it.
func middlewares(poison message.HandlerMiddleware, stats *routerCounts, retry middleware.Retry) []message.HandlerMiddleware {
	retry.ShouldRetry = func(p middleware.RetryParams) bool { return !errors.Is(p.Err, errPermanent) }
	return []message.HandlerMiddleware{poison, rejectMalformed(stats), panicsArePermanent, retry.Middleware, middleware.Recoverer}
}

// panicsArePermanent marks a panic that outlasted the retries as permanent.
func panicsArePermanent(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if panicked := (middleware.RecoveredPanicError{}); errors.As(err, &panicked) {
			return out, fmt.Errorf("%w: the handler panicked on every attempt: %v", errPermanent, panicked.V)
		}
		return out, err
	}
}

// rejectMalformed sends entries the unmarshaller could not read straight to the dead letters.
func rejectMalformed(stats *routerCounts) message.HandlerMiddleware {
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
	stats *routerCounts
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

// Stats returns the running totals at this moment (a copy: read-only for the caller).
func (r *Router) Stats() RouterStats {
	c := r.counts
	return RouterStats{Handled: c.Handled.Load(), DeadLettered: c.DeadLettered.Load(), Malformed: c.Malformed.Load()}
}
