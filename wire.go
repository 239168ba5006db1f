//go:build wireinject

package nova

import (
	"context"
	"log/slog"

	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/wire"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/admin"
	"github.com/nova-chat/nova/ports/auth"
	"github.com/nova-chat/nova/ports/demo"
	nhttp "github.com/nova-chat/nova/ports/http"
	"github.com/nova-chat/nova/ports/messaging"
	"github.com/nova-chat/nova/ports/ratelimit"
	"github.com/nova-chat/nova/ports/websocket"
)

var configSet = wire.FieldsOf(new(Config),
	"DatabaseURL", "RedisURL", "HTTPAddr", "JWTSecret", "StreamMaxLen", "PubSubCompat", "FanoutPartitions", "SendRate", "Groups", "LiveRecheck")

var adapterSet = wire.NewSet(
	postgres.NewPool,
	postgres.NewMigrator,
	postgres.NewConversationRepository,
	wire.Bind(new(conversation.Repository), new(*postgres.ConversationRepository)),
	postgres.NewReadModel,
	postgres.NewClientSyncRepository,
	redisstream.NewClientSyncCache,
	redisstream.NewBacklog,
	wire.Bind(new(redisstream.HistoryReader), new(*postgres.ReadModel)),
	wire.Bind(new(delivery.Source), new(*redisstream.Backlog)),
	wire.Bind(new(messaging.StreamTops), new(*redisstream.Backlog)),
	wire.Bind(new(messaging.DurableTops), new(*postgres.ReadModel)),
	redisstream.NewLiveChannels,
	wire.Bind(new(delivery.Interest), new(*redisstream.LiveChannels)),
	wire.Bind(new(messaging.LiveFeed), new(*redisstream.LiveChannels)),
	NewConsumerName,
	NewFanoutUnmarshaller,
	redisstream.NewGroupSubscribers,
	wire.Bind(new(messaging.SubscriberFactory), new(*redisstream.GroupSubscribers)),
	redisstream.NewDeadLetterPublisher,
	wire.Bind(new(message.Publisher), new(*wredis.Publisher)),
	redisstream.NewPresence,
	wire.Bind(new(websocket.PresenceRecorder), new(*redisstream.Presence)),
	redisstream.NewOfflineCounter,
	redisstream.NewFanoutTrimmer,
	NewDeclaredGroups,
	redisstream.NewClient,
	redisstream.NewDualStreamPublisher,
	wire.Bind(new(outbox.Publisher), new(*redisstream.DualStreamPublisher)),
	NewMembershipNotifier,
	outbox.NewRelay,
	// the relay shard p's leader reads fan-out partition p for the consumer groups
	wire.Bind(new(redisstream.PartitionOwner), new(*outbox.Relay)),
	outbox.NewFastPath,
	wire.Bind(new(outbox.NextPublisher), new(*redisstream.DualStreamPublisher)),
	wire.Bind(new(postgres.OutboxSignal), new(*outbox.FastPath)),
	redisstream.NewStreamInspector,
	postgres.NewOutboxInspector,
)

var portSet = wire.NewSet(
	delivery.NewHub,
	NewMessagingKeys,
	NewLiveEnabled,
	NewFanoutEnabled,
	messaging.NewFanoutListener,
	messaging.NewLiveListener,
	messaging.NewRouter,
	NewWebSocketOptions,
	websocket.NewHandler,
	wire.Bind(new(messaging.Revoker), new(*websocket.Handler)),
	NewPublicRoutes,
	demo.New,
	NewDemoEnabled,
	wire.Struct(new(Background), "*"),
	auth.NewAuthenticator,
	ratelimit.NewPerUser,
	NewSharedSendRate,
	NewReadinessChecks,
	nhttp.NewEcho,
	nhttp.NewServer,
)

var adminSet = wire.NewSet(
	admin.NewRegistry,
	wire.Bind(new(prometheus.Registerer), new(*prometheus.Registry)),
	admin.NewMetrics,
	wire.Bind(new(monitoring.Observer), new(*admin.Metrics)),
	NewCounterSource,
	NewInspector,
	NewAdminInstanceID,
	admin.New,
)

// InitializeServer builds one Nova instance from its configuration.
func InitializeServer(ctx context.Context, cfg Config, log *slog.Logger) (*Server, func(), error) {
	wire.Build(configSet, adapterSet, NewApplication, portSet, adminSet, NewServer)
	return nil, nil, nil
}

// InitializeMigrator builds only what `nova migrate` needs: the pool and the migrator (no
// Redis, no JWT secret, none of the serving graph).
func InitializeMigrator(ctx context.Context, dsn postgres.DSN) (*postgres.Migrator, func(), error) {
	wire.Build(postgres.NewPool, postgres.NewMigrator)
	return nil, nil, nil
}
