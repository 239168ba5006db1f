package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/ctxsleep"
	"github.com/nova-chat/nova/internal/outagelog"
)

// LiveStats are the live channels' running totals (read them with Snapshot).
type LiveStats struct {
	Messages, Malformed, Confirmations, Reopened, Redirected atomic.Int64
}

// LiveSnapshot is a read-only copy of the live channels' totals.
type LiveSnapshot struct {
	Following, Messages, Malformed, Confirmations, Reopened, Redirected int64
}

// subscribeChunk bounds the channels named in one SSUBSCRIBE, so a burst of first
// subscribers goes out in a few commands and no command grows without bound.
const subscribeChunk = 512

// LiveChannels keeps this instance subscribed to the live channels of exactly the conversations
// it has subscribers for (DESIGN.md decision 6), the way Centrifugo's Redis broker does: one
// Pub/Sub connection per instance, channels added when a conversation's first local subscriber
// arrives and removed when its last leaves, in batches by one goroutine. Pub/Sub may drop a
// message; the hub checks every one by seq and the listener re-checks the streams, so the
// channel only has to be fast, not reliable.
type LiveChannels struct {
	client     redis.UniversalClient
	partitions FanoutPartitions
	log        *slog.Logger
	stats      LiveStats
	down       *outagelog.Log // a live connection that cannot read (Redis away), logged once per outage

	mu   sync.Mutex
	want map[conversation.ID]struct{}
	// connections to open again: Redis dropped channels of them (0), or a node redirected their
	// subscription (how many of the partition's connections in a row were, this one included)
	moved map[*liveConn]int
	kick  chan struct{}
}

func NewLiveChannels(client redis.UniversalClient, partitions FanoutPartitions, log *slog.Logger) *LiveChannels {
	if client == nil || log == nil {
		panic("redisstream.NewLiveChannels: nil dependency")
	}
	log = log.With("component", "live-channels")
	return &LiveChannels{client: client, partitions: partitions, log: log,
		down: outagelog.New(log, "live channels cannot read Redis; reconnecting (missed messages are found in the streams after)",
			"live channels read Redis again"),
		want: map[conversation.ID]struct{}{}, moved: map[*liveConn]int{}, kick: make(chan struct{}, 1)}
}

var _ delivery.Interest = (*LiveChannels)(nil)

// Follow asks for conv's live channel (the hub calls it under its lock: it only records the wish).
func (l *LiveChannels) Follow(conv conversation.ID) { l.set(conv, true) }

// Unfollow gives conv's live channel up.
func (l *LiveChannels) Unfollow(conv conversation.ID) { l.set(conv, false) }

func (l *LiveChannels) set(conv conversation.ID, on bool) {
	l.mu.Lock()
	if on {
		l.want[conv] = struct{}{}
	} else {
		delete(l.want, conv)
	}
	l.mu.Unlock()
	l.wake()
}

// wake makes the reconcile loop look at what is wanted (and what moved).
func (l *LiveChannels) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Snapshot returns the running totals.
func (l *LiveChannels) Snapshot() LiveSnapshot {
	l.mu.Lock()
	following := int64(len(l.want))
	l.mu.Unlock()
	return LiveSnapshot{Following: following, Messages: l.stats.Messages.Load(), Malformed: l.stats.Malformed.Load(),
		Confirmations: l.stats.Confirmations.Load(), Reopened: l.stats.Reopened.Load(),
		Redirected: l.stats.Redirected.Load()}
}

// Run holds the Pub/Sub connections until ctx ends, handing each live message to onMessage and
// each confirmation that a channel is subscribed to onSubscribed: at first (again false) and
// again after every reconnect (go-redis re-subscribes by itself; again true), after which
// anything published before the confirmation must be looked for: in the stream, and after a
// reconnect also in Postgres, since the Redis that comes back may have lost the stream's newest
// entries with the Pub/Sub messages (a restart, a failover). There is one connection, or on Redis Cluster
// with partitions one per partition (each holds the channels of one hash slot; see
// FanoutPartitions.LiveChannel).
func (l *LiveChannels) Run(ctx context.Context, onMessage func(conversation.ID, delivery.Item), onSubscribed func(conv conversation.ID, again bool),
	onRemoved func(conversation.ID, conversation.UserID)) error {
	sharded, err := l.detectSharded(ctx)
	if err != nil {
		return nil // ctx ended while Redis was unreachable
	}
	conns := 1
	if _, cluster := l.client.(*redis.ClusterClient); cluster && l.partitions.Split() {
		conns = l.partitions.Count()
	}
	l.log.Info("live channels ready", "sharded_pubsub", sharded, "connections", conns)
	var receivers sync.WaitGroup
	lcs := make([]*liveConn, conns)
	// a connection is opened with its first channels: a cluster client connects a Pub/Sub to
	// the node of its first channel's slot, and one opened empty goes to a random node
	open := func(i int, channels []string, reopened bool, redirects int) *liveConn {
		var ps *redis.PubSub
		if sharded {
			ps = l.client.SSubscribe(ctx, channels...)
		} else {
			ps = l.client.Subscribe(ctx, channels...)
		}
		cctx, stop := context.WithCancel(ctx)
		lc := &liveConn{i: i, ps: ps, stop: stop, dropping: map[string]int{}, redirects: redirects}
		heard := new(atomic.Int64) // when ps last delivered anything (UnixNano)
		heard.Store(time.Now().UnixNano())
		receivers.Add(2)
		go func() {
			defer receivers.Done()
			l.receive(cctx, lc, reopened, heard, onMessage, onSubscribed, onRemoved)
		}()
		go func() { defer receivers.Done(); l.keepAlive(cctx, lc, heard) }()
		return lc
	}
	l.reconcile(ctx, lcs, sharded, open)
	for _, lc := range lcs {
		if lc != nil {
			lc.close()
		}
	}
	receivers.Wait()
	return nil
}

// liveConn is one Pub/Sub connection and the way to stop its goroutines.
type liveConn struct {
	i    int // its index: the partition it serves on a cluster
	ps   *redis.PubSub
	stop context.CancelFunc
	// dropping counts, per channel, the unsubscribes sent on this connection whose confirmation
	// is not yet heard (guarded by LiveChannels.mu): a confirmation beyond them is Redis's own
	// (the channel's slot moved to another node, or its master was demoted)
	dropping map[string]int
	// redirects is how many connections of its partition in a row, just before this one, were
	// opened again because a node redirected their subscription (set when it is opened)
	redirects int
}

func (lc *liveConn) close() {
	lc.stop()
	_ = lc.ps.Close()
}

// reopenSettle is how long a connection Redis dropped channels of waits, after go-redis was
// asked to reload the slot map, before it is opened again (a reload takes a round trip).
const reopenSettle = 200 * time.Millisecond

// redirectBackoff is how long a connection whose subscription a node redirected waits before it
// is opened again, after n such connections of its partition in a row: at once the first time,
// then 200 ms doubling up to 5 s, so that a slot map go-redis is still reloading (in the
// background) is not met again a few times a second.
func redirectBackoff(n int) time.Duration {
	const most = 5 * time.Second
	switch {
	case n <= 0:
		return 0
	case n > 6: // (and no shift that overflows after a long run)
		return most
	}
	return min(reopenSettle<<(n-1), most)
}

// liveHealthEvery is how long a live connection may stay silent before it is pinged, so a
// dead one is noticed and opened again (go-redis's own Channel checks every 3 s too).
const liveHealthEvery = 3 * time.Second

// liveDeadAfter is how long a live connection may stay silent, the answer to its pings
// included, before it is taken for dead and opened again. A connection whose network path died
// (half-open: no FIN, no reset) takes the pings without an error and never answers, and
// go-redis sets no read deadline on a Pub/Sub connection, so without this it would wait for
// TCP keep-alive (minutes, and never behind a proxy that stays up). A live connection hears at
// least a pong every 3-6 s (keepAlive); this leaves 4 s for the pong to come.
const liveDeadAfter = 3*liveHealthEvery + time.Second

// receive hands what one connection hears to the callbacks until ctx ends. It reads the
// connection itself rather than through go-redis's Channel, which forwards every message from a
// goroutine of its own and wakes its health-check goroutine for each one: three goroutines woken
// per live message where this wakes one (measured in ARCHITECTURE.md). The callbacks never block
// (the hub only queues), so reading is not held up.
// A connection opened again (reopened) because Redis dropped its channels counts its first
// confirmations as re-subscriptions too: a demoted master's replica may lack its newest entries.
func (l *LiveChannels) receive(ctx context.Context, lc *liveConn, reopened bool, heard *atomic.Int64,
	onMessage func(conversation.ID, delivery.Item), onSubscribed func(conv conversation.ID, again bool),
	onRemoved func(conversation.ID, conversation.UserID)) {
	failures := 0
	redirects := lc.redirects // until a channel is confirmed on this connection
	askedReopen := false
	// the channels this connection confirmed and did not give up since: a confirmation of one of
	// them is a re-subscription after go-redis opened the connection again (also when a failed
	// ping made it do so, which no read here sees fail); so is any confirmation soon after a
	// failed read (a channel whose subscription was on its way then)
	confirmed := map[string]struct{}{}
	var failedAt time.Time
	if reopened {
		failedAt = time.Now()
	}
	// each read has a deadline (liveDeadAfter): go-redis drops a connection whose read timed out
	// and dials again on the next Receive, which subscribes it to the channels again
	deadline := renewingDeadline{parent: ctx, d: liveDeadAfter}
	defer deadline.stop()
	for {
		m, err := lc.ps.Receive(deadline.next())
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			if redirected(err) {
				// a subscription sent to a node that does not serve its slot (opened on a slot
				// map that was out of date): go-redis keeps the connection, so it is opened
				// again, once (a chunk of channels is redirected per SSUBSCRIBE)
				if !askedReopen {
					askedReopen = true
					after := redirectBackoff(redirects)
					l.log.Debug("live subscription redirected; opening the connection again", "connection", lc.i, "after", after, "error", err)
					l.reopenRedirected(lc, redirects+1, after)
				}
				continue
			}
			l.forgetUnsubscribes(lc) // go-redis dials again: their confirmations will not come
			l.down.Failed(err)
			failedAt = time.Now()
			// go-redis opens the connection again (and re-subscribes) on the next Receive; a
			// Redis that stays away is asked at most ten times a second, as go-redis's Channel does
			if failures++; failures > 1 && ctxsleep.Sleep(ctx, 100*time.Millisecond) != nil {
				return
			}
			continue
		}
		failures = 0
		l.down.OK()
		heard.Store(time.Now().UnixNano())
		switch m := m.(type) {
		case *redis.Message:
			conv := conversation.ID(ConversationOfLive(m.Channel))
			if user, ok := DecodeRemoved([]byte(m.Payload)); ok {
				onRemoved(conv, conversation.UserID(user))
				continue
			}
			l.stats.Messages.Add(1)
			it, err := DecodeLive([]byte(m.Payload))
			if err != nil {
				l.stats.Malformed.Add(1)
				continue
			}
			onMessage(conv, it)
		case *redis.Subscription:
			switch m.Kind {
			case "ssubscribe", "subscribe":
				l.stats.Confirmations.Add(1)
				redirects = 0
				_, again := confirmed[m.Channel]
				again = again || (!failedAt.IsZero() && time.Since(failedAt) < liveDeadAfter)
				confirmed[m.Channel] = struct{}{}
				onSubscribed(conversation.ID(ConversationOfLive(m.Channel)), again)
			case "sunsubscribe", "unsubscribe":
				delete(confirmed, m.Channel)
				if l.droppedByRedis(lc, m.Channel) {
					l.reopen(lc, 0)
				}
			}
		}
	}
}

// droppedByRedis tells an unsubscribe this instance asked for (its confirmation) from one Redis
// made of its own, for a channel still wanted: its slot moved to another node, or its master was
// demoted to a replica (sharded Pub/Sub). The connection then hears nothing more of it.
func (l *LiveChannels) droppedByRedis(lc *liveConn, channel string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := lc.dropping[channel]; n > 0 {
		if n == 1 {
			delete(lc.dropping, channel)
		} else {
			lc.dropping[channel] = n - 1
		}
		return false
	}
	_, wanted := l.want[conversation.ID(ConversationOfLive(channel))]
	return wanted
}

// redirected reports a MOVED or ASK reply: the node does not serve the channel's slot.
func redirected(err error) bool {
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask
}

// reopen asks the reconcile loop to open lc's connection again (once: a later request for a
// connection already replaced is ignored), because Redis dropped channels of it (redirects 0)
// or after the redirects-th redirected connection of its partition in a row.
func (l *LiveChannels) reopen(lc *liveConn, redirects int) {
	l.mu.Lock()
	if n, asked := l.moved[lc]; !asked || n != 0 { // Redis dropping channels is what is logged and counted
		l.moved[lc] = redirects
	}
	l.mu.Unlock()
	l.wake()
}

// reopenRedirected asks for lc to be opened again after a node redirected its subscription, once
// after has passed.
func (l *LiveChannels) reopenRedirected(lc *liveConn, redirects int, after time.Duration) {
	if after <= 0 {
		l.reopen(lc, redirects)
		return
	}
	time.AfterFunc(after, func() { l.reopen(lc, redirects) })
}

// forgetUnsubscribes forgets lc's unsubscribes still awaiting confirmation: go-redis opened its
// connection again (a failed read or ping), and the new one was never subscribed to them.
func (l *LiveChannels) forgetUnsubscribes(lc *liveConn) {
	l.mu.Lock()
	clear(lc.dropping)
	l.mu.Unlock()
}

// renewingDeadline gives contexts that end d after they were made, a new one when the last is
// over a second old: a deadline per read without a timer per read.
type renewingDeadline struct {
	parent context.Context
	d      time.Duration
	ctx    context.Context
	cancel context.CancelFunc
	made   time.Time
}

func (r *renewingDeadline) next() context.Context {
	if now := time.Now(); now.Sub(r.made) > time.Second {
		r.stop()
		r.ctx, r.cancel = context.WithTimeout(r.parent, r.d)
		r.made = now
	}
	return r.ctx
}

func (r *renewingDeadline) stop() {
	if r.cancel != nil {
		r.cancel()
	}
}

// keepAlive looks at ps every liveHealthEvery, until ctx ends, and pings it when nothing was
// heard on it since the last look but one (so after 3 to 6 s of silence). A ping that cannot be
// written, or that is never answered (receive's read deadline), makes go-redis open the
// connection again and re-subscribe, and the confirmations that follow make the listener look
// for what was missed.
func (l *LiveChannels) keepAlive(ctx context.Context, lc *liveConn, heard *atomic.Int64) {
	for ctxsleep.Sleep(ctx, liveHealthEvery) == nil {
		if time.Since(time.Unix(0, heard.Load())) < liveHealthEvery {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := lc.ps.Ping(pctx); err != nil && ctx.Err() == nil {
			l.forgetUnsubscribes(lc)
			l.log.Debug("live connection ping failed; go-redis opens it again", "error", err)
		}
		cancel()
	}
}

// reconcile brings the connections' channels to what the hub wants, in batches, whenever the
// wish changes, until ctx ends; with several connections, each conversation's channel goes to
// its partition's. A failed command needs no retry here: go-redis keeps the channel set it was
// given and re-subscribes it on its next connection. A connection that Redis dropped channels
// of (a slot moved, a master demoted) is closed and opened again, on a reloaded slot map.
func (l *LiveChannels) reconcile(ctx context.Context, lcs []*liveConn, sharded bool, open func(i int, first []string, reopened bool, redirects int) *liveConn) {
	have := map[conversation.ID]struct{}{}
	// which connection a conversation's channel goes to, and the channel's name
	route := func(conv conversation.ID) (int, string) {
		p := l.partitions.Of(string(conv))
		return min(p, len(lcs)-1), l.partitions.liveChannelIn(p, string(conv))
	}
	for {
		add, drop := make([][]string, len(lcs)), make([][]string, len(lcs))
		reopen := make([]bool, len(lcs))
		redirects := make([]int, len(lcs))
		var closing []*liveConn
		l.mu.Lock()
		for lc, n := range l.moved {
			i := lc.i
			if lcs[i] != lc {
				continue // opened again already
			}
			closing = append(closing, lc)
			lcs[i], reopen[i], redirects[i] = nil, true, n
			if n == 0 {
				l.stats.Reopened.Add(1)
			} else {
				l.stats.Redirected.Add(1)
			}
			for conv := range have {
				if j, ch := route(conv); j == i {
					if _, ok := l.want[conv]; ok {
						add[i] = append(add[i], ch)
					} else {
						delete(have, conv) // given up meanwhile: nothing to unsubscribe
					}
				}
			}
		}
		clear(l.moved)
		for conv := range l.want {
			if _, ok := have[conv]; !ok {
				i, ch := route(conv)
				add[i] = append(add[i], ch)
				have[conv] = struct{}{}
			}
		}
		for conv := range have {
			if _, ok := l.want[conv]; !ok {
				delete(have, conv)
				if i, ch := route(conv); lcs[i] != nil { // (it is: have holds channels of open connections)
					drop[i] = append(drop[i], ch)
					lcs[i].dropping[ch]++
				}
			}
		}
		l.mu.Unlock()
		for _, lc := range closing {
			if redirects[lc.i] == 0 { // (a redirect was logged when it came)
				l.log.Warn("Redis dropped live channels this instance follows (a slot moved, or its master was demoted); opening the connection again",
					"connection", lc.i)
			}
			lc.close()
		}
		if c, ok := l.client.(*redis.ClusterClient); ok && len(closing) > 0 {
			// so that they go to the slot's master now: go-redis reloads the slot map in the
			// background; a connection that still lands on a node that does not serve its slot
			// is redirected and opened again (receive), one that lands on the demoted master
			// hears the new master's messages once the cluster counts it as a replica
			c.ReloadState(ctx)
			_ = ctxsleep.Sleep(ctx, reopenSettle)
		}
		for i := range lcs {
			if lcs[i] == nil && len(add[i]) > 0 {
				first := add[i][:min(len(add[i]), subscribeChunk)]
				lcs[i] = open(i, first, reopen[i], redirects[i])
				add[i] = add[i][len(first):]
			}
			if lcs[i] != nil {
				l.apply(ctx, lcs[i], sharded, add[i], drop[i])
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		}
	}
}

// apply subscribes one connection to add and unsubscribes it from drop, in chunks.
func (l *LiveChannels) apply(ctx context.Context, lc *liveConn, sharded bool, add, drop []string) {
	sub, unsub := lc.ps.Subscribe, lc.ps.Unsubscribe
	if sharded {
		sub, unsub = lc.ps.SSubscribe, lc.ps.SUnsubscribe
	}
	// a command that cannot be written makes go-redis dial the connection again there and then,
	// so no confirmation of an unsubscribe sent on the old one comes: their counts are forgotten
	for chunk := range slices.Chunk(add, subscribeChunk) {
		if err := sub(ctx, chunk...); err != nil {
			l.forgetUnsubscribes(lc)
			if ctx.Err() == nil {
				l.log.Warn("live subscribe failed; go-redis re-subscribes on reconnect", "channels", len(chunk), "error", err)
			}
		}
	}
	for chunk := range slices.Chunk(drop, subscribeChunk) {
		if err := unsub(ctx, chunk...); err != nil {
			l.forgetUnsubscribes(lc)
			if ctx.Err() == nil {
				l.log.Debug("live unsubscribe failed (the connection is gone, and with it the subscription)", "error", err)
			}
		}
	}
}

// detectSharded asks Redis whether it has sharded Pub/Sub (7.0 and later), retrying until it
// answers or ctx ends.
func (l *LiveChannels) detectSharded(ctx context.Context) (bool, error) {
	backoff := 100 * time.Millisecond
	for {
		ok, err := HasShardedPubSub(ctx, l.client)
		if err == nil {
			return ok, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		l.log.Warn("cannot ask Redis for its version; retrying", "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// HasShardedPubSub reports whether the server is Redis 7 or later (SPUBLISH and SSUBSCRIBE).
func HasShardedPubSub(ctx context.Context, client redis.UniversalClient) (bool, error) {
	major, err := redisMajorVersion(ctx, client)
	return major >= 7, err
}

// redisMajorVersion is the server's major version (INFO server).
func redisMajorVersion(ctx context.Context, client redis.UniversalClient) (int, error) {
	info, err := client.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	return majorVersion(info)
}

// majorVersion reads the major version off INFO server's redis_version line.
func majorVersion(info string) (int, error) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			major, _, _ := strings.Cut(v, ".")
			n, err := strconv.Atoi(major)
			if err != nil {
				return 0, fmt.Errorf("redis_version %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("INFO server has no redis_version")
}
