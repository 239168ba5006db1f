package nova

import (
	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/ports/admin"
	"github.com/nova-chat/nova/ports/websocket"
)

// NewCounterSource reads the running totals of the relay, hub, listeners, router and WebSocket
// port for the admin port (at scrape time; the components only bump atomics).
func NewCounterSource(bg Background, ws *websocket.Handler, groups *redisstream.GroupSubscribers) admin.CounterSource {
	return func() admin.Counters {
		r, h, f, ro := &bg.Relay.Stats, &bg.Hub.Stats, &bg.Fanout.Stats, bg.Router.Stats
		live := bg.Channels.Snapshot()
		return admin.Counters{
			// both paths write the streams
			Relayed:         r.Relayed.Load() + bg.FastPath.Stats.Published.Load(),
			RelayDuplicates: r.Duplicates.Load(), RelayMovedAside: r.MovedAside.Load(),
			RelayErrors: r.Errors.Load(), RelayLeader: bg.Relay.IsLeader(), RelayTakeovers: r.TakenOver.Load(),
			Delivered: h.Delivered.Load(), DuplicatesDropped: h.DuplicatesDropped.Load(), GapsFilled: h.GapsFilled.Load(),
			RecoveredFromRedis: h.FromRedis.Load(), RecoveredFromPostgres: h.FromPostgres.Load(),
			Subscriptions: h.Subscriptions.Load(),
			Connections:   ws.Stats.Connections.Load(), SlowCutoffs: ws.Stats.SlowCutoffs.Load(),
			FanoutEntries: f.Entries.Load(), FanoutMalformed: f.Malformed.Load(), FanoutOutages: f.Outages.Load(),
			LiveFollowing: live.Following, LiveMessages: live.Messages, LiveMalformed: live.Malformed,
			ConsumerHandled: ro.Handled.Load(), DeadLettered: ro.DeadLettered.Load(), ConsumerMalformed: ro.Malformed.Load(),
			Claims:             groups.Claims(),
			TrimmedRepublished: groups.Redrive.Republished.Load(), TrimmedUnrecoverable: groups.Redrive.Unrecoverable.Load(),
			FastPathDeferred: bg.FastPath.Stats.Deferred.Load() + bg.FastPath.Stats.Dropped.Load(),
		}
	}
}

// NewInspector gathers stream, consumer-group and outbox state for /metrics, /admin and
// `nova streams` (the same code for all three).
func NewInspector(streams *redisstream.StreamInspector, outbox *postgres.OutboxInspector) *monitoring.Inspector {
	return monitoring.NewInspector(streams, outbox, monitoring.InspectorOptions{})
}

func NewAdminInstanceID(cfg Config) admin.InstanceID { return admin.InstanceID(cfg.InstanceID) }
