package nova

import (
	"context"
	"fmt"
	"log/slog"

	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application"
	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/application/query"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/demo"
	nhttp "github.com/nova-chat/nova/ports/http"
	"github.com/nova-chat/nova/ports/messaging"
	"github.com/nova-chat/nova/ports/ratelimit"
	"github.com/nova-chat/nova/ports/websocket"
)

// Plain constructors that wire.go composes; each works without wire too.

func NewApplication(repo conversation.Repository, rm *postgres.ReadModel, hot *redisstream.ClientSyncCache,
	cursors *postgres.ClientSyncRepository, offline *redisstream.OfflineCounter, members command.MembershipNotifier) application.Application {
	return application.Application{
		Commands: application.Commands{
			StartConversation:  command.NewStartConversationHandler(repo),
			ChangeParticipants: command.NewChangeParticipantsHandler(repo, members),
			PostMessage:        command.NewPostMessageHandler(repo),
			AcknowledgeSync:    command.NewAcknowledgeSyncHandler(repo, hot, offline, cursors),
			CountOffline:       command.NewCountOfflineHandler(repo, offline),
		},
		Queries: application.Queries{
			Conversations: query.NewConversations(rm),
			Messages:      query.NewMessages(rm),
			Cursors:       query.NewCursors(hot, cursors, rm),
		},
	}
}

// NewMembershipNotifier publishes membership notices on the live channels. A notice is best
// effort (keep-alive rounds re-check membership), so the command goes on without it; a failed
// one is logged here rather than lost.
func NewMembershipNotifier(pub *redisstream.DualStreamPublisher, log *slog.Logger) command.MembershipNotifier {
	return loggedNotifier{pub: pub, log: log.With("component", "membership-notices")}
}

type loggedNotifier struct {
	pub *redisstream.DualStreamPublisher
	log *slog.Logger
}

func (n loggedNotifier) Removed(ctx context.Context, conv conversation.ID, user conversation.UserID) error {
	err := n.pub.Removed(ctx, conv, user)
	if err != nil {
		n.log.Warn("removal notice not published; live subscriptions end at the next keep-alive round instead",
			"conversation_id", conv, "error", err)
	}
	return err
}

// NewReadinessChecks are what /readyz asks: Postgres, Redis, that migrations are applied, and
// that the consumer groups run (they retry on their own when Redis was away at start).
func NewReadinessChecks(pool *pgxpool.Pool, rdb redis.UniversalClient, partitions redisstream.FanoutPartitions,
	m *postgres.Migrator, router *messaging.Router) []nhttp.ReadinessCheck {
	return []nhttp.ReadinessCheck{
		{Name: "postgres", Check: pool.Ping},
		{Name: "redis", Check: func(ctx context.Context) error { return redisstream.CheckSupported(ctx, rdb, partitions) }},
		{Name: "migrations", Check: func(ctx context.Context) error {
			pending, err := m.Pending(ctx)
			if err == nil && pending {
				err = fmt.Errorf("pending")
			}
			return err
		}},
		{Name: "consumer_groups", Check: router.Ready},
	}
}

func NewWebSocketOptions(cfg Config) websocket.Options {
	return websocket.Options{OriginPatterns: cfg.AllowedOrigins, MaxConnsPerUser: int(cfg.MaxConnsPerUser),
		MaxSubscriptions: cfg.MaxSubscriptions, PingInterval: cfg.PingInterval}
}

// NewPublicRoutes are the routes other ports add to the public router.
func NewPublicRoutes(ws *websocket.Handler, page *demo.Page) []nhttp.Routes {
	return []nhttp.Routes{ws, page}
}

// NewDemoEnabled is NOVA_DEMO: the demo page and its development token endpoint.
func NewDemoEnabled(cfg Config) demo.Enabled { return demo.Enabled(cfg.Demo) }

// NewMessagingKeys hands the listeners the key names the Redis adapter writes.
func NewMessagingKeys(partitions redisstream.FanoutPartitions) messaging.Keys {
	return messaging.Keys{FanoutStream: redisstream.FanoutStream, FanoutStreams: partitions.Streams(), DeadLetterStream: redisstream.DeadLetterStream,
		ChannelPrefix: redisstream.PubSubChannel("")}
}

// NewLiveEnabled: live channels feed delivery (interest-based) unless an A/B run asks for the fan-out stream.
func NewLiveEnabled(cfg Config) messaging.LiveEnabled {
	return messaging.LiveEnabled(cfg.LiveFeed != "fanout")
}

// NewFanoutEnabled: every instance reads the whole fan-out stream only in A/B runs of the old design.
func NewFanoutEnabled(cfg Config) messaging.FanoutEnabled {
	return messaging.FanoutEnabled(cfg.LiveFeed == "fanout")
}

func NewConsumerName(cfg Config) redisstream.ConsumerName {
	return redisstream.ConsumerName(cfg.InstanceID)
}

// NewFanoutUnmarshaller is how consumer groups read fan-out entries (it never fails; see the type).
func NewFanoutUnmarshaller() wredis.Unmarshaller { return messaging.FanoutUnmarshaller{} }

// NewSharedSendRate counts sends across the deployment in Redis; nil (per instance only) when
// NOVA_SEND_RATE is 0, the limit being off.
func NewSharedSendRate(rdb redis.UniversalClient, r ratelimit.SendRate) ratelimit.Shared {
	if r <= 0 {
		return nil
	}
	return redisstream.NewSendRateLimiter(rdb, float64(r), r.Burst())
}

// NewDeclaredGroups are the consumer groups of other services Nova keeps (NOVA_FANOUT_GROUPS).
func NewDeclaredGroups(cfg Config) redisstream.DeclaredGroups { return cfg.FanoutGroups }
