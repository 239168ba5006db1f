package admin

import (
	"context"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nova-chat/nova/application/monitoring"
)

// Counters are the running totals of the instance's components, read at scrape time from
// their Stats (atomics), so counting costs the hot paths nothing more.
type Counters struct {
	Relayed, RelayDuplicates, RelayMovedAside, RelayErrors   int64
	RelayTakeovers                                           int64
	RelayLeader                                              bool  // leads at least one relay shard
	RelayShards                                              int64 // relay shards this instance leads
	RelayShardsTotal                                         int64 // relay shards in all (the fan-out partitions)
	Delivered, DuplicatesDropped, GapsFilled                 int64
	RecoveredFromRedis, RecoveredFromPostgres                int64
	Subscriptions, Connections, SlowCutoffs                  int64
	FanoutEntries, FanoutMalformed, FanoutOutages            int64
	LiveFollowing, LiveMessages, LiveMalformed, LiveReopened int64
	LiveRedirected                                           int64
	ConsumerHandled, DeadLettered, ConsumerMalformed         int64
	Claims                                                   map[string]int64 // by consumer group
	Helped                                                   map[string]int64 // by consumer group
	TrimmedRepublished, TrimmedUnrecoverable                 int64
	FastPathDeferred                                         int64
	SendGroups, SendGroupWrites, SendGroupsFailed            int64
	SendBatches, SendBatchPosts, SendBatchesFailed           int64
	SendTransactions, SendTransactionMicros                  int64
}

// CounterSource reads the Counters (the root package builds it from the components' Stats).
type CounterSource func() Counters

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dInstance    = desc("nova_instance_info", "Always 1; names this instance (NOVA_INSTANCE_ID, its consumer name in every group).", "instance_id")
	dRelayed     = desc("nova_messages_relayed_total", "Messages this instance wrote to Redis (conversation stream and fan-out stream): its fast path's, after its own commits, and its relay's, for the shards it leads.")
	dRelayDup    = desc("nova_outbox_relay_duplicates_total", "Outbox rows this instance's relay or fast path found already in Redis (re-sent after a crash or a lost delete, published by the other path first, or run again after Redis lost its scripts; harmless).")
	dMovedAside  = desc("nova_outbox_moved_aside_total", "Outbox rows the relay could not decode and moved to outbox_dead.")
	dRelayErrors = desc("nova_outbox_relay_errors_total", "Relay batches that failed (Redis or Postgres unavailable) and were retried.")
	dTakeovers   = desc("nova_outbox_relay_takeovers_total", "Times this instance relayed outbox rows that waited past the bound while another instance held the lead (a frozen or paused leader).")
	dLeader      = desc("nova_outbox_relay_leader", "1 while this instance's relay leads at least one outbox shard and publishes its rows.")
	dShards      = desc("nova_outbox_relay_shards", "Outbox relay shards this instance leads (one shard per fan-out partition; the shards spread over the instances).")
	dShardsTotal = desc("nova_outbox_relay_shards_total", "Outbox relay shards in all (NOVA_FANOUT_PARTITIONS); the sum of nova_outbox_relay_shards over the instances should equal it.")
	dDelivered   = desc("nova_messages_delivered_total", "Message frames queued to subscribed WebSockets on this instance (live and backlog).")
	dDupDropped  = desc("nova_delivery_duplicates_dropped_total", "Live messages a subscription already had (it caught up from the stream first), dropped by seq.")
	dGaps        = desc("nova_delivery_gaps_filled_total", "Times a subscription fetched missing messages first: a live message skipped a seq, or the stream re-check found it behind.")
	dRecovered   = desc("nova_recovered_messages_total", "Messages served to catching-up subscriptions (reconnects, gaps), by where they were read from: redis (conversation stream) or postgres (trimmed or lost in Redis).", "source")
	dSubs        = desc("nova_subscriptions", "Conversation subscriptions open on this instance's WebSockets.")
	dConns       = desc("nova_websocket_connections", "WebSocket connections open on this instance.")
	dCutoffs     = desc("nova_websocket_slow_cutoffs_total", "WebSocket clients cut off (close 1008) because 1 MiB was queued for them.")
	dFanEntries  = desc("nova_fanout_entries_read_total", "Fan-out stream entries this instance's fan-out live listener read (NOVA_LIVE_FEED=fanout only).")
	dFanBad      = desc("nova_fanout_malformed_total", "Fan-out entries the fan-out live listener skipped as malformed (NOVA_LIVE_FEED=fanout only).")
	dFanOutages  = desc("nova_fanout_outages_total", "Times the fan-out live listener lost the fan-out stream (NOVA_LIVE_FEED=fanout only).")
	dLiveFollow  = desc("nova_live_channels", "Conversations this instance follows on their live channel (those with a local subscriber).")
	dLiveMsgs    = desc("nova_live_messages_received_total", "Messages this instance heard on live channels: proportional to its own subscribers' conversations, not to all traffic.")
	dLiveBad     = desc("nova_live_malformed_total", "Live channel payloads that were not \"<seq> <ms> <json>\" (skipped; the stream re-check delivers the message).")
	dLiveReopen  = desc("nova_live_connections_reopened_total", "Live connections opened again because Redis dropped channels this instance follows (a slot moved, or its master was demoted).")
	dLiveRedir   = desc("nova_live_connections_redirected_total", "Live connections opened again because a node answered their subscription with MOVED or ASK (opened on a slot map out of date).")
	dHandled     = desc("nova_consumer_handled_total", "Fan-out messages this instance's consumer-group handlers processed and acknowledged.")
	dDeadLetter  = desc("nova_dead_lettered_total", "Fan-out messages this instance moved to the dead-letter stream (malformed, not a stored message, or the handler panicked on every attempt).")
	dConsBad     = desc("nova_consumer_malformed_total", "Malformed fan-out entries the consumer groups of this instance rejected (also counted in nova_dead_lettered_total).")
	dSendGroups  = desc("nova_send_groups_total", "Group transactions of the locked send path that committed (writes of one conversation from several instances go the locked way; those that wait at once go in one transaction).")
	dGroupWrites = desc("nova_send_group_writes_total", "Writes committed in those group transactions; divided by nova_send_groups_total, the mean group.")
	dBatches     = desc("nova_send_batches_total", "Batches of one-statement sends (the usual way of a send) that committed: sends of different conversations that waited for Postgres at the same moment, one transaction.")
	dBatchPosts  = desc("nova_send_batch_posts_total", "Sends committed in those batches; divided by nova_send_batches_total, the mean batch.")
	dSendTxs     = desc("nova_send_transactions_total", "Transactions of one-statement sends (a send alone or a batch) this instance sent to Postgres, committed or not.")
	dSendTxTime  = desc("nova_send_transaction_seconds_total", "Time those transactions took, from being sent to Postgres's answer (commit included); divided by nova_send_transactions_total, a transaction's mean round trip.")
	dBatchFailed = desc("nova_send_batches_failed_total", "Batches that failed as a whole (a repeated send in the batch, Postgres unavailable); their sends were made one by one.")
	dGroupFailed = desc("nova_send_groups_failed_total", "Group transactions that failed as a whole (a repeated send in the group, a row locked elsewhere past 500 ms, Postgres unavailable); their writes were made one by one.")
	dFastDefer   = desc("nova_fast_path_deferred_total", "Messages the publish-after-commit fast path left to the outbox relay (a seq gap between instances, a Redis error or a full queue); they reach Redis a little later.")
	dTrimmed     = desc("nova_fanout_trimmed_unacked_total", "Pending fan-out entries found trimmed away before their group acked them: republished from Postgres, or unrecoverable (should stay 0).", "outcome")
	dClaims      = desc("nova_consumer_group_claims_total", "Pending entries this instance took over (XCLAIM) after they sat idle NOVA_CLAIM_IDLE, usually from a dead consumer.", "group")
	dHelped      = desc("nova_consumer_group_helped_total", "New entries this instance read from fan-out partitions it does not own, while their owner stalled or was NOVA_GROUP_HELP_AFTER entries behind.", "group")

	dRedisUp     = desc("nova_redis_up", "1 when this instance could inspect Redis at the last scrape, else 0.")
	dPostgresUp  = desc("nova_postgres_up", "1 when this instance could read the outbox in Postgres at the last scrape, else 0.")
	dInspectTook = desc("nova_inspection_duration_seconds", "How long the last inspection of Redis and Postgres took (served from a cache for about 2 s).")
	dLength      = desc("nova_stream_length", "Entries in the stream (XLEN). Cluster-wide: every instance reports the same value.", "stream", "kind")
	dFirstID     = desc("nova_stream_first_entry_id", "First part of the stream's first entry id: Unix ms for the fan-out and dead-letter streams, the seq for a conversation stream.", "stream", "kind")
	dLastID      = desc("nova_stream_last_entry_id", "First part of the stream's last entry id: Unix ms for the fan-out and dead-letter streams, the seq for a conversation stream.", "stream", "kind")
	dGroupPend   = desc("nova_consumer_group_pending", "Entries delivered to a consumer of the group and not yet acknowledged (XPENDING).", "stream", "group")
	dGroupLag    = desc("nova_consumer_group_lag", "Entries in the stream not yet delivered to the group (XINFO GROUPS lag); absent when Redis cannot tell.", "stream", "group")
	dGroupIdle   = desc("nova_consumer_group_oldest_pending_idle_seconds", "How long the group's oldest pending entry has waited since it was last delivered (0 when nothing is pending).", "stream", "group")
	dGroupCons   = desc("nova_consumer_group_consumers", "Consumers (instances) registered in the group.", "stream", "group")
	dConsPend    = desc("nova_consumer_pending", "Entries pending for one consumer of a group.", "stream", "group", "consumer")
	dConsIdle    = desc("nova_consumer_idle_seconds", "Time since one consumer of a group last read or claimed.", "stream", "group", "consumer")
	dOutbox      = desc("nova_outbox_backlog_rows", "Outbox rows committed in Postgres and not yet relayed to Redis.")
	dOutboxAge   = desc("nova_outbox_oldest_age_seconds", "Age of the oldest unrelayed outbox row (0 when the outbox is empty).")
	dOutboxDead  = desc("nova_outbox_dead_rows", "Rows in outbox_dead (undecodable outbox rows set aside for an operator).")
)

// collector turns Counters and inspection Snapshots into metrics at scrape time.
type collector struct {
	ctx       context.Context
	instance  string
	counters  CounterSource
	inspector *monitoring.Inspector
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dInstance, dRelayed, dRelayDup, dMovedAside, dRelayErrors, dTakeovers, dLeader, dShards, dShardsTotal, dDelivered,
		dDupDropped, dGaps, dRecovered, dSubs, dConns, dCutoffs, dFanEntries, dFanBad, dFanOutages, dLiveFollow, dLiveMsgs, dLiveBad, dLiveReopen, dLiveRedir, dHandled, dDeadLetter,
		dConsBad, dTrimmed, dFastDefer, dSendGroups, dGroupWrites, dGroupFailed, dBatches, dBatchPosts, dBatchFailed, dSendTxs, dSendTxTime, dClaims, dHelped, dRedisUp, dPostgresUp, dInspectTook, dLength, dFirstID, dLastID, dGroupPend, dGroupLag,
		dGroupIdle, dGroupCons, dConsPend, dConsIdle, dOutbox, dOutboxAge, dOutboxDead} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(dInstance, 1, c.instance)

	n := c.counters()
	counter(dRelayed, n.Relayed)
	counter(dRelayDup, n.RelayDuplicates)
	counter(dMovedAside, n.RelayMovedAside)
	counter(dRelayErrors, n.RelayErrors)
	counter(dTakeovers, n.RelayTakeovers)
	gauge(dLeader, b2f(n.RelayLeader))
	gauge(dShards, float64(n.RelayShards))
	gauge(dShardsTotal, float64(n.RelayShardsTotal))
	counter(dDelivered, n.Delivered)
	counter(dDupDropped, n.DuplicatesDropped)
	counter(dGaps, n.GapsFilled)
	counter(dRecovered, n.RecoveredFromRedis, "redis")
	counter(dRecovered, n.RecoveredFromPostgres, "postgres")
	gauge(dSubs, float64(n.Subscriptions))
	gauge(dConns, float64(n.Connections))
	counter(dCutoffs, n.SlowCutoffs)
	counter(dFanEntries, n.FanoutEntries)
	counter(dFanBad, n.FanoutMalformed)
	counter(dFanOutages, n.FanoutOutages)
	gauge(dLiveFollow, float64(n.LiveFollowing))
	counter(dLiveMsgs, n.LiveMessages)
	counter(dLiveBad, n.LiveMalformed)
	counter(dLiveReopen, n.LiveReopened)
	counter(dLiveRedir, n.LiveRedirected)
	counter(dHandled, n.ConsumerHandled)
	counter(dDeadLetter, n.DeadLettered)
	counter(dConsBad, n.ConsumerMalformed)
	for g, v := range n.Claims {
		counter(dClaims, v, g)
	}
	for g, v := range n.Helped {
		counter(dHelped, v, g)
	}
	counter(dTrimmed, n.TrimmedRepublished, "republished")
	counter(dTrimmed, n.TrimmedUnrecoverable, "unrecoverable")
	counter(dFastDefer, n.FastPathDeferred)
	counter(dSendGroups, n.SendGroups)
	counter(dGroupWrites, n.SendGroupWrites)
	counter(dGroupFailed, n.SendGroupsFailed)
	counter(dBatches, n.SendBatches)
	counter(dBatchPosts, n.SendBatchPosts)
	counter(dBatchFailed, n.SendBatchesFailed)
	counter(dSendTxs, n.SendTransactions)
	ch <- prometheus.MustNewConstMetric(dSendTxTime, prometheus.CounterValue, float64(n.SendTransactionMicros)/1e6)

	s := c.inspector.Snapshot(c.ctx)
	gauge(dRedisUp, b2f(s.RedisUp))
	gauge(dPostgresUp, b2f(s.PostgresUp))
	gauge(dInspectTook, s.Took.Seconds())
	for _, st := range s.Streams {
		if !st.Exists {
			gauge(dLength, 0, st.Key, string(st.Kind))
			continue
		}
		gauge(dLength, float64(st.Length), st.Key, string(st.Kind))
		if v, ok := idMajor(st.FirstID); ok {
			gauge(dFirstID, v, st.Key, string(st.Kind))
		}
		if v, ok := idMajor(st.LastID); ok {
			gauge(dLastID, v, st.Key, string(st.Kind))
		}
		for _, g := range st.Groups {
			gauge(dGroupPend, float64(g.Pending), st.Key, g.Name)
			if g.Lag >= 0 {
				gauge(dGroupLag, float64(g.Lag), st.Key, g.Name)
			}
			gauge(dGroupIdle, g.OldestPendingIdle.Seconds(), st.Key, g.Name)
			gauge(dGroupCons, float64(len(g.Consumers)), st.Key, g.Name)
			for _, cs := range g.Consumers {
				gauge(dConsPend, float64(cs.Pending), st.Key, g.Name, cs.Name)
				gauge(dConsIdle, cs.Idle.Seconds(), st.Key, g.Name, cs.Name)
			}
		}
	}
	if s.PostgresUp {
		gauge(dOutbox, float64(s.Outbox.Rows))
		gauge(dOutboxAge, s.Outbox.OldestAge.Seconds())
		gauge(dOutboxDead, float64(s.Outbox.DeadRows))
	}
}

// idMajor is the part of a stream id before the dash ("1732881600000-3" -> 1732881600000).
func idMajor(id string) (float64, bool) {
	major, _, _ := strings.Cut(id, "-")
	v, err := strconv.ParseUint(major, 10, 64)
	return float64(v), err == nil && id != ""
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
