// Package outbox relays committed outbox rows from Postgres to Redis.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/ctxsleep"
)

const (
	notifyChannel = "nova_outbox"
	// leaderLockKey is the advisory lock of relay shard 0 (with one shard, the leader's lock).
	leaderLockKey = 0x6e6f7661 // "nova"
	batchSize     = 500
	// pollInterval is only the safety net; the fast path wakes the relay when it leaves it work.
	pollInterval = 500 * time.Millisecond
	// rebalanceInterval is how often a relay session looks at how many instances share the
	// shards, takes or lets go of shards, and checks for rows a stalled leader left.
	rebalanceInterval = 2 * time.Second
	maxBackoff        = 5 * time.Second
	// opTimeout bounds each statement of the relay's sessions and each batch it relays. On a
	// direct path that died without a reset the kernel drops the connection first (the dialer's
	// keep-alive and TCP_USER_TIMEOUT, postgres.NewPool); behind something that stays up and
	// answers TCP (a connection pooler, a proxy) it never does, and the relay would hang in its
	// statement, still believing it leads. A timed-out statement breaks its connection (pgx
	// closes it), so the relay opens new sessions; Postgres drops the old ones, and their shard
	// locks, after the keep-alive settings of session().
	opTimeout = 10 * time.Second
)

// Publisher is where relayed entries go (the Redis dual streams).
type Publisher interface {
	Publish(ctx context.Context, byConversation [][]redisstream.Entry) (redisstream.PublishResult, error)
}

// Stats are the relay's running totals (exported as metrics).
type Stats struct {
	Relayed, Duplicates, MovedAside, Errors int64
	// TakenOver counts the times this instance relayed while another one held the lead (stalled)
	TakenOver int64
}

// relayCounts are the live totals behind Stats; only the relay adds to them.
type relayCounts struct{ Relayed, Duplicates, MovedAside, Errors, TakenOver atomic.Int64 }

// Relay moves outbox rows to Redis in batches: whatever the publish-after-commit fast path
// left (a seq gap between instances, an error, a crash before it ran). Every instance runs one;
// the rows are split into shards by conversation (see shards.go), and a Postgres advisory lock
// per shard lets one relay at a time publish that shard's rows. Rows are read in id order, which
// within a conversation is seq order (a conversation's appends are serialised by its row lock),
// and deleted only once Redis holds them, so no row is ever skipped: there is no "id > last"
// cursor that a late commit could fall behind.
type Relay struct {
	pool   *pgxpool.Pool
	pub    Publisher
	log    *slog.Logger
	counts relayCounts
	shards int // relay shards: one per fan-out partition
	// held is the shards this instance leads (sorted; nil: none)
	held   atomic.Pointer[[]int]
	wake   chan struct{}
	remote chan struct{}
	// seenUpTo is the highest outbox id a poll found; a poll that finds only rows above it
	// leaves them to the fast path, which is publishing them right now (see pollOnce).
	seenUpTo int64
	polledAt time.Time // when seenUpTo was taken
	// retry is the wait after the next failed batch; it grows while batches fail, across the
	// leader's 2 s rounds, and starts over after a batch that succeeds
	retry time.Duration
}

// NewRelay returns the relay of an outbox split into one shard per fan-out partition.
func NewRelay(pool *pgxpool.Pool, pub Publisher, partitions redisstream.FanoutPartitions, log *slog.Logger) *Relay {
	if pool == nil || pub == nil || log == nil {
		panic("outbox.NewRelay: nil dependency")
	}
	return &Relay{pool: pool, pub: pub, log: log.With("component", "outbox-relay"), shards: partitions.Count(),
		wake: make(chan struct{}, 1), remote: make(chan struct{}, 1)}
}

// Notify wakes the relay because committed rows wait for it: directly when this instance leads
// every shard, else through a coalesced NOTIFY sent outside any writer's transaction (NOTIFY
// inside it would serialise commits), which every leader hears.
func (r *Relay) Notify() {
	if len(r.led()) == r.shards {
		poke(r.wake)
		return
	}
	poke(r.remote)
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Leading reports how many of how many shards this instance's relay leads now.
func (r *Relay) Leading() (led, total int) { return len(r.led()), r.shards }

// LeadsShard reports whether this instance leads the given shard now. Shard p's leader also
// reads fan-out partition p for Nova's consumer groups (redisstream.PartitionOwner), and shard
// 0's trims the fan-out streams: one instance does each.
func (r *Relay) LeadsShard(shard int) bool {
	_, found := slices.BinarySearch(r.led(), shard)
	return found
}

// LeadsFirstShard reports whether this instance leads shard 0 (see LeadsShard).
func (r *Relay) LeadsFirstShard() bool { return r.LeadsShard(0) }

func (r *Relay) led() []int {
	if p := r.held.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *Relay) setLed(shards []int) {
	held := slices.Clone(shards)
	r.held.Store(&held)
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	go r.forwardNotifications(ctx)
	const firstBackoff = 100 * time.Millisecond
	backoff := firstBackoff
	for ctx.Err() == nil {
		started := time.Now()
		err := r.lead(ctx)
		if ctx.Err() != nil {
			break
		}
		if time.Since(started) > maxBackoff { // it ran well before failing: a new outage
			backoff = firstBackoff
		}
		r.log.Warn("relay lost its Postgres session; retrying", "error", err, "retry_in", backoff)
		_ = ctxsleep.Sleep(ctx, backoff)
		backoff = min(backoff*2, maxBackoff)
	}
	return nil
}

func (r *Relay) forwardNotifications(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.remote:
			if _, err := r.pool.Exec(ctx, `SELECT pg_notify($1, '')`, notifyChannel); err != nil && ctx.Err() == nil {
				r.log.Debug("outbox notify failed; the leader's poll will pick the rows up", "error", err)
			}
		}
	}
}

// lead holds one session: it joins the relay's members and, every rebalanceInterval, takes or
// lets go of shards; while it leads some, it LISTENs on a second session and relays them, until
// a session breaks or ctx ends. While it does not lead every shard it also relays in the place
// of a leader that stalls.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.session(ctx, "nova-relay")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	s := newShardSession(conn, r.shards)
	if err := bounded(ctx, s.join); err != nil {
		return err
	}
	defer r.setLed(nil)
	defer func() {
		// a stopping leader relays what is left in its shards while it still holds their locks
		// (they go with the session, closed after this), so that what the last requests
		// committed reaches Redis before the process exits
		if ctx.Err() != nil && len(s.held) > 0 {
			r.drain(ctx, s.held)
		}
	}()
	var l *listener
	defer func() { l.stop() }()
	busy := false // the last round left in the middle of a backlog
	for {
		var changed bool
		if err := bounded(ctx, func(ctx context.Context) (err error) { changed, err = s.rebalance(ctx); return err }); err != nil {
			return err
		}
		if changed {
			r.setLed(s.held)
			r.log.Info("relay leads outbox shards", "shards", s.held, "of", r.shards)
		}
		if len(s.held) < r.shards {
			r.relayIfLeaderStalls(ctx, othersThan(s.held, r.shards))
		}
		if len(s.held) == 0 {
			// LISTEN only while leading: a session that listens queues every notification for a reader
			l.stop()
			l = nil
			if err := ctxsleep.Sleep(ctx, time.Second); err != nil {
				return err
			}
			continue
		}
		if l == nil {
			if l, err = r.listen(ctx); err != nil {
				return err
			}
		}
		if busy, err = r.relayWhileLeading(ctx, s.held, l.lost, changed || busy); err != nil {
			return err
		}
	}
}

// bounded runs op with a context that ends after opTimeout (or with ctx).
func bounded(ctx context.Context, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return op(ctx)
}

// session opens a dedicated session (the shard locks', the listener's). A leader whose host
// vanished without a reset must lose its session, and with it its locks, in seconds rather than
// after the kernel's TCP timeout.
func (r *Relay) session(ctx context.Context, name string) (*pgx.Conn, error) {
	cfg := r.pool.Config().ConnConfig.Copy()
	for k, v := range map[string]string{"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2",
		"tcp_keepalives_count": "3", "tcp_user_timeout": "10000", "application_name": name} {
		cfg.RuntimeParams[k] = v
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// listener is the session that LISTENs while this instance leads shards; each notification
// wakes the relay, and lost receives the error that ended the session.
type listener struct {
	conn   *pgx.Conn
	cancel context.CancelFunc
	lost   chan error
	done   chan struct{}
}

func (r *Relay) listen(ctx context.Context) (*listener, error) {
	conn, err := r.session(ctx, "nova-relay-listener")
	if err != nil {
		return nil, err
	}
	if err := bounded(ctx, func(ctx context.Context) error { _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); return err }); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	listenCtx, cancel := context.WithCancel(ctx)
	l := &listener{conn: conn, cancel: cancel, lost: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			if _, err := conn.WaitForNotification(listenCtx); err != nil {
				l.lost <- err
				return
			}
			poke(r.wake)
		}
	}()
	return l, nil
}

// stop ends the listener's session (nil: nothing to stop).
func (l *listener) stop() {
	if l == nil {
		return
	}
	l.cancel()
	<-l.done
	_ = l.conn.Close(context.Background())
}

// relayWhileLeading relays the given shards on every notification, and on the timer as a safety
// net, for rebalanceInterval (then it returns, busy if it left in the middle of a backlog),
// until ctx ends or the listening session is lost (lost receives its error). With relayFirst
// (shards new to it, or a backlog left) its first pass relays whatever it finds; otherwise it
// starts with the poll, which leaves the rows the fast paths are publishing right now to them
// (relaying those too would only race them with duplicates).
func (r *Relay) relayWhileLeading(ctx context.Context, shards []int, lost <-chan error, relayFirst bool) (bool, error) {
	const firstRetry = 50 * time.Millisecond
	woken := relayFirst
	rebalance := time.After(rebalanceInterval)
	for {
		var n int
		var err error
		if woken {
			n, err = r.relayShards(ctx, shards)
		} else {
			n, err = r.pollOnce(ctx, shards)
		}
		wait := pollInterval
		switch {
		case err != nil:
			r.counts.Errors.Add(1)
			wait = max(r.retry, firstRetry)
			r.retry = min(wait*2, maxBackoff)
			r.log.Warn("relay batch failed; will retry", "error", err, "retry_in", wait)
		case n == batchSize:
			r.retry = 0
			select {
			case <-rebalance: // a long backlog still lets the shards be rebalanced
				return true, nil
			default:
				continue // more rows are waiting
			}
		default:
			r.retry = 0
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-lost:
			if ctx.Err() != nil { // the listener ended because we are stopping
				return false, ctx.Err()
			}
			return false, fmt.Errorf("listen session: %w", err)
		case <-rebalance:
			return false, nil
		case <-r.wake:
			woken = true
		case <-time.After(wait):
			woken = err != nil
		}
	}
}

// pollOnce is the safety-net pass of the timer: it relays only when some row has waited since
// the previous poll. Rows that all appeared since then are being published and deleted by the
// fast paths that committed them (deletes are batched), and relaying them too would only write
// duplicates for Redis to refuse. A fast path that defers or fails wakes the relay instead.
func (r *Relay) pollOnce(ctx context.Context, shards []int) (int, error) {
	if time.Since(r.polledAt) < pollInterval {
		return 0, nil // too soon: rows seen then may still be on their fast paths
	}
	var oldest, newest int64
	where, args := shardFilter("o", shards, r.shards, 1)
	if err := bounded(ctx, func(ctx context.Context) error {
		return r.pool.QueryRow(ctx, `SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM outbox o`+where, args...).Scan(&oldest, &newest)
	}); err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	waited := oldest != 0 && oldest <= r.seenUpTo
	r.seenUpTo, r.polledAt = newest, time.Now()
	if !waited {
		return 0, nil
	}
	return r.relayShards(ctx, shards)
}

// leaderStallBound is how long an outbox row may wait before an instance that does not lead
// relays it itself: a leader that is paused (SIGSTOP, a frozen VM) keeps its lock and its
// session, and relays running side by side are safe (each conversation's rows go out in seq
// order, and Redis refuses what was written already). A healthy leader publishes a row within
// milliseconds, so the bound only has to outlast a busy backlog round. Live delivery after a
// frozen leader comes back through the takeover: at 5 s it came 5 s or more after the fault
// whenever the first stuck row was committed late (a client's request to the frozen instance
// times out first), so the bound is 3 s.
const leaderStallBound = 3 * time.Second

// relayIfLeaderStalls relays those of the given shards (led by other instances) whose oldest
// row has waited past the bound: only those, so one frozen leader does not make every instance
// relay every shard. Each shard's oldest row is found by walking the outbox's id index; how long
// it waited is read off the database's clock alone (queued_at), whatever the instances' clocks say.
func (r *Relay) relayIfLeaderStalls(ctx context.Context, shards []int) {
	var stalled []int
	err := bounded(ctx, func(ctx context.Context) error {
		rows, err := r.pool.Query(ctx, `SELECT s FROM unnest($1::int[]) s WHERE EXISTS (
			SELECT 1 FROM (SELECT queued_at FROM outbox o WHERE `+shardOf("o", 2)+` = s ORDER BY id LIMIT 1) oldest
			WHERE oldest.queued_at < now() - make_interval(secs => $3))`, shards, r.shards, leaderStallBound.Seconds())
		if err == nil {
			stalled, err = pgx.CollectRows(rows, pgx.RowTo[int])
		}
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("cannot see whether a leader stalls; looking again soon", "error", err)
		}
		return
	}
	if len(stalled) == 0 {
		return
	}
	r.counts.TakenOver.Add(1)
	r.log.Warn("outbox rows wait past the bound while another instance leads them; relaying them from here",
		"bound", leaderStallBound, "shards", stalled)
	// for one round at most: this instance's own shards and the rebalance wait meanwhile (the
	// next round looks again)
	for end := time.Now().Add(rebalanceInterval); ctx.Err() == nil && time.Now().Before(end); {
		n, err := r.relayShards(ctx, stalled)
		if err != nil || n < batchSize {
			return
		}
	}
}

// othersThan lists the shards of total not in held (sorted).
func othersThan(held []int, total int) []int {
	others := make([]int, 0, total-len(held))
	for shard := range total {
		if !slices.Contains(held, shard) {
			others = append(others, shard)
		}
	}
	return others
}

// drainTimeout bounds the last relay pass of a stopping leader (within the shutdown grace).
const drainTimeout = 5 * time.Second

// drain relays what is still in its shards of the outbox, within drainTimeout.
func (r *Relay) drain(stopped context.Context, shards []int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(stopped), drainTimeout)
	defer cancel()
	for ctx.Err() == nil {
		n, err := r.relayShards(ctx, shards)
		if err != nil {
			r.log.Warn("outbox not fully drained at shutdown; the next leader relays the rest", "error", err)
			return
		}
		if n == 0 {
			return
		}
	}
}

// RelayOnce moves one batch of any shard and returns how many rows it read.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) { return r.relayShards(ctx, nil) }

// relayShards moves one batch of the given shards (nil: all), within opTimeout, and returns how
// many rows it read. A batch cut short is relayed again: Redis refuses what it already holds.
func (r *Relay) relayShards(ctx context.Context, shards []int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	batch, err := r.fetch(ctx, shards)
	if err != nil || len(batch.rows) == 0 {
		return 0, err
	}
	if len(batch.undecodable) > 0 {
		if err := r.moveAside(ctx, batch.undecodable); err != nil {
			return 0, err
		}
	}
	res, pubErr := r.pub.Publish(ctx, batch.byConversation)
	if len(res.Done) > 0 {
		if err := r.markDone(ctx, res.Done); err != nil {
			return 0, errors.Join(pubErr, err)
		}
	}
	r.counts.Relayed.Add(int64(res.Added))
	r.counts.Duplicates.Add(int64(res.Duplicates))
	if res.Behind > 0 {
		r.log.Warn("conversation streams had lost messages they were past; their fan-out entries were written again (catch-up reads them from Postgres)",
			"messages", res.Behind)
	}
	if res.FanoutRepaired > 0 {
		// also normal: two instances' fast paths racing on one partition defer one fan-out half
		r.log.Debug("fan-out entries written late for messages their conversation stream already held",
			"messages", res.FanoutRepaired)
	}
	if len(res.Done) > 0 && r.log.Enabled(ctx, slog.LevelDebug) {
		r.logPublished(ctx, batch.byConversation, res)
	}
	return len(batch.rows), pubErr
}

// logPublished writes one debug line per conversation of a relayed batch, naming its last
// message (conversation_id, message_id, seq) and how many it carried.
func (r *Relay) logPublished(ctx context.Context, byConversation [][]redisstream.Entry, res redisstream.PublishResult) {
	done := make(map[int64]bool, len(res.Done))
	for _, id := range res.Done {
		done[id] = true
	}
	for _, entries := range byConversation {
		var first, last *redisstream.Entry
		n := 0
		for i := range entries {
			if done[entries[i].OutboxID] {
				if first == nil {
					first = &entries[i]
				}
				last, n = &entries[i], n+1
			}
		}
		if last != nil {
			r.log.DebugContext(ctx, "published to stream", "conversation_id", last.ConversationID,
				"message_id", last.MessageID, "seq", last.Seq, "from_seq", first.Seq, "messages", n)
		}
	}
	r.log.DebugContext(ctx, "outbox batch relayed", "messages", res.Added, "duplicates", res.Duplicates)
}

type outboxRow struct {
	redisstream.Entry
}

type batch struct {
	rows           []outboxRow
	byConversation [][]redisstream.Entry
	undecodable    []outboxRow
}

func (r *Relay) fetch(ctx context.Context, shards []int) (batch, error) {
	// the conversation's current participants travel with the entry (consumer groups count
	// offline recipients without reading Postgres); LEFT JOIN, so a row is never held back by it
	where, args := shardFilter("o", shards, r.shards, 2)
	rows, err := r.pool.Query(ctx, `SELECT o.id, o.conversation_id, o.seq, o.message_id, o.sender_id, o.created_at, o.payload,
			c.participants::text[]
		FROM outbox o LEFT JOIN conversations c ON c.id = o.conversation_id`+where+` ORDER BY o.id LIMIT $1`,
		append([]any{batchSize}, args...)...)
	if err != nil {
		return batch{}, fmt.Errorf("read outbox: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outboxRow, error) {
		var o outboxRow
		err := row.Scan(&o.OutboxID, &o.ConversationID, &o.Seq, &o.MessageID, &o.SenderID, &o.CreatedAt, &o.Payload, &o.Participants)
		return o, err
	})
	if err != nil {
		return batch{}, fmt.Errorf("read outbox: %w", err)
	}
	b := batch{rows: list}
	var valid []redisstream.Entry
	for _, o := range list {
		if !json.Valid(o.Payload) {
			b.undecodable = append(b.undecodable, o)
			continue
		}
		valid = append(valid, o.Entry)
	}
	b.byConversation = groupByConversation(valid)
	return b, nil
}

// groupByConversation splits entries by conversation, keeping their order within each (the
// publish script takes one conversation's entries at a time, in seq order).
func groupByConversation(entries []redisstream.Entry) [][]redisstream.Entry {
	index := map[string]int{}
	var byConversation [][]redisstream.Entry
	for _, e := range entries {
		i, ok := index[e.ConversationID]
		if !ok {
			i = len(byConversation)
			index[e.ConversationID] = i
			byConversation = append(byConversation, nil)
		}
		byConversation[i] = append(byConversation[i], e)
	}
	return byConversation
}

// markDone deletes relayed rows. It need not wait for the disk: a delete lost in a crash only
// makes the relay send those entries again, which Redis refuses as duplicates.
func (r *Relay) markDone(ctx context.Context, ids []int64) error {
	b := &pgx.Batch{} // one round trip: the whole transaction is pipelined
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit TO OFF")
	b.Queue("DELETE FROM outbox WHERE id = ANY($1)", ids)
	b.Queue("COMMIT")
	return postgres.SendTransaction(ctx, r.pool, b)
}

func (r *Relay) moveAside(ctx context.Context, rows []outboxRow) error {
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		for _, o := range rows {
			if _, err := tx.Exec(ctx, `INSERT INTO outbox_dead (id, conversation_id, seq, payload, reason)
				VALUES ($1, $2, $3, $4, 'payload is not valid JSON') ON CONFLICT (id) DO NOTHING`,
				o.OutboxID, o.ConversationID, o.Seq, o.Payload); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = $1`, o.OutboxID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("move undecodable outbox rows aside: %w", err)
	}
	for _, o := range rows {
		r.counts.MovedAside.Add(1)
		r.log.Error("outbox row could not be decoded; moved to outbox_dead",
			"outbox_id", o.OutboxID, "conversation_id", o.ConversationID, "seq", o.Seq)
	}
	return nil
}

// Stats returns the running totals at this moment (a copy: read-only for the caller).
func (r *Relay) Stats() Stats {
	c := &r.counts
	return Stats{Relayed: c.Relayed.Load(), Duplicates: c.Duplicates.Load(), MovedAside: c.MovedAside.Load(), Errors: c.Errors.Load(), TakenOver: c.TakenOver.Load()}
}
