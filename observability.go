package nova

import (
	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/ports/admin"
	"github.com/nova-chat/nova/ports/messaging"
	"github.com/nova-chat/nova/ports/websocket"
)

// NewCounterSource reads the running totals of the relay, hub, listeners, router and WebSocket
// port for the admin port, at scrape time, through the read-only snapshot each one returns.
func NewCounterSource(bg Background, ws *websocket.Handler, groups *redisstream.GroupSubscribers,
	conversations *postgres.ConversationRepository) admin.CounterSource {
	return snapshots{sends: conversations.GroupCommitStats, batches: conversations.PostBatchStats, relay: bg.Relay.Stats, fastPath: bg.FastPath.Stats, fanout: bg.Fanout.Stats, router: bg.Router.Stats,
		hub: bg.Hub.Stats, ws: ws.Stats, redrive: groups.RedriveStats, live: bg.Channels.Snapshot, claims: groups.Claims, helped: groups.Helped,
		leading: bg.Relay.Leading}.counters
}

// snapshots are where each component's totals come from.
type snapshots struct {
	sends    func() postgres.GroupCommitStats
	batches  func() postgres.PostBatchStats
	relay    func() outbox.Stats
	fastPath func() outbox.FastPathStats
	fanout   func() messaging.FanoutStats
	router   func() messaging.RouterStats
	hub      func() delivery.Stats
	ws       func() websocket.Stats
	redrive  func() redisstream.RedriveStats
	live     func() redisstream.LiveSnapshot
	claims   func() map[string]int64
	helped   func() map[string]int64
	leading  func() (led, total int)
}

func (s snapshots) counters() admin.Counters {
	r, fp, f, ro, h, ws, rd, live := s.relay(), s.fastPath(), s.fanout(), s.router(), s.hub(), s.ws(), s.redrive(), s.live()
	sends, batches := s.sends(), s.batches()
	led, shards := s.leading()
	return admin.Counters{
		Relayed:         r.Relayed + fp.Published, // both paths write the streams
		RelayDuplicates: r.Duplicates + fp.Duplicates, RelayMovedAside: r.MovedAside, RelayErrors: r.Errors,
		RelayLeader: led > 0, RelayShards: int64(led), RelayShardsTotal: int64(shards), RelayTakeovers: r.TakenOver,
		Delivered: h.Delivered, DuplicatesDropped: h.DuplicatesDropped, GapsFilled: h.GapsFilled,
		RecoveredFromRedis: h.FromRedis, RecoveredFromPostgres: h.FromPostgres, Subscriptions: h.Subscriptions,
		Connections: ws.Connections, SlowCutoffs: ws.SlowCutoffs,
		FanoutEntries: f.Entries, FanoutMalformed: f.Malformed, FanoutOutages: f.Outages,
		LiveFollowing: live.Following, LiveMessages: live.Messages, LiveMalformed: live.Malformed, LiveReopened: live.Reopened,
		LiveRedirected:  live.Redirected,
		ConsumerHandled: ro.Handled, DeadLettered: ro.DeadLettered, ConsumerMalformed: ro.Malformed,
		Claims: s.claims(), Helped: s.helped(),
		TrimmedRepublished: rd.Republished, TrimmedUnrecoverable: rd.Unrecoverable,
		FastPathDeferred: fp.Deferred + fp.Dropped,
		SendGroups:       sends.Groups, SendGroupWrites: sends.Writes, SendGroupsFailed: sends.Failed,
		SendBatches: batches.Batches, SendBatchPosts: batches.Posts, SendBatchesFailed: batches.Failed,
		SendTransactions: batches.Transactions, SendTransactionMicros: batches.TransactionMicros,
	}
}

// NewInspector gathers stream, consumer-group and outbox state for /metrics, /admin and
// `nova streams` (the same code for all three).
func NewInspector(streams *redisstream.StreamInspector, outbox *postgres.OutboxInspector) *monitoring.Inspector {
	return monitoring.NewInspector(streams, outbox, monitoring.InspectorOptions{})
}

func NewAdminInstanceID(cfg Config) admin.InstanceID { return admin.InstanceID(cfg.InstanceID) }
