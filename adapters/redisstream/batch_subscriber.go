package redisstream

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/internal/ctxsleep"
)

// batchSubscriber is a Watermill subscriber for one consumer group; each stream it is subscribed
// to (every partition of the fan-out stream) has its own loops. It replaces
// watermill-redisstream's subscriber, which reads one entry per XREADGROUP and acks each with
// its own XACK (three round trips per entry, the largest cost of an instance that only takes
// its share of a group's work; see ARCHITECTURE.md). This one reads up to BatchSize entries
// per XREADGROUP, hands them to the router together, and acks what was handled with one XACK.
//
// Order: entries of one ordering key (the conversation, OrderKey) go to the router one at a
// time, in stream order, each after the previous one was acked; different keys run side by
// side (Watermill's router handles each message in its own goroutine). Entries without a key
// share one: a stream without keys is consumed strictly in order, as before.
//
// The rest mirrors the library: entries pending longer than ClaimIdle are claimed from their
// (presumed dead) consumer every ClaimInterval, a nacked message is handed over again after
// NackResendSleep, consumers idle past ConsumerTimeout with nothing pending are removed, and a
// lost group (NOGROUP: Redis came back empty) is created again. In addition, entries this
// consumer held when it stopped are handled again at once on start (XREADGROUP from "0").
type batchSubscriber struct {
	client   redis.UniversalClient
	group    string
	consumer string
	cfg      GroupConfig
	decode   wredis.Unmarshaller
	// owns says whether this instance reads a stream's new entries (nil: every stream); a
	// stream it does not own it reads only while the group stalls or falls behind on it
	// (needsHelp)
	owns func(stream string) bool
	// redrive re-publishes pending entries trimmed from a stream from Postgres, and decides about
	// an entry pending past ClaimIdle (shouldClaim: redrive it if it was trimmed)
	redrive redriver
	claims  *atomic.Int64
	helped  *atomic.Int64 // new entries read from streams this consumer does not own
	log     *slog.Logger

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// OrderKey is the metadata key whose value orders a group's messages: entries with the same
// value are handled one after the other, in stream order.
const OrderKey = "conversation_id"

var _ message.Subscriber = (*batchSubscriber)(nil)

func (s *batchSubscriber) Subscribe(ctx context.Context, stream string) (<-chan *message.Message, error) {
	select {
	case <-s.closing:
		return nil, errors.New("subscriber closed")
	default:
	}
	if err := ensureGroup(ctx, s.client, stream, s.group); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *message.Message)
	// the claim loop starts once the read loop went through this consumer's own pending entries,
	// so the two never redrive the same trimmed entry at once
	ownRead := make(chan struct{})
	var loops sync.WaitGroup
	for _, loop := range []func(){
		func() { s.read(ctx, stream, out, ownRead) },
		func() { s.claim(ctx, stream, out, ownRead) },
		func() { s.removeIdleConsumers(ctx, stream) },
	} {
		loops.Add(1)
		go func() {
			defer loops.Done()
			loop()
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.closing:
		case <-ctx.Done():
		}
		cancel()
		loops.Wait()
		close(out)
	}()
	return out, nil
}

// Close stops every loop (messages not yet acked stay pending, to be handled again) and closes
// the client.
func (s *batchSubscriber) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		s.wg.Wait()
		err = s.client.Close()
	})
	return err
}

// read hands over this consumer's own pending entries first, page by page, then new ones,
// batch by batch, and closes ownRead between the two (or when it stops). An own entry it could
// not hand over (trimmed, and its redrive failed) stays pending for the claim loop. After a
// batch smaller than BatchSize it waits BatchWait, so entries arriving at a moderate rate are
// read and acked together instead of one round trip each. New entries of a stream this
// instance does not own (owns) it reads only while the group stalls or falls behind on it.
func (s *batchSubscriber) read(ctx context.Context, stream string, out chan<- *message.Message, ownRead chan<- struct{}) {
	ownDone := sync.OnceFunc(func() { close(ownRead) })
	defer ownDone()
	own, from := true, "0" // own pending entries (held when this consumer stopped), after from
	var watch stallWatch
	for ctx.Err() == nil {
		foreign := !own && s.owns != nil && !s.owns(stream) // read only to help its owner
		if foreign && !s.needsHelp(ctx, stream, &watch) {
			ctxsleep.Sleep(ctx, notOwnedPause)
			continue
		}
		res, err := s.client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: s.group, Consumer: s.consumer,
			Streams: []string{stream, from}, Count: int64(s.cfg.BatchSize), Block: s.cfg.BlockTime}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			recreateGroupIfLost(ctx, s.client, stream, s.group, err, s.log)
			s.log.Warn("reading the consumer group failed; retrying", "error", err)
			ctxsleep.Sleep(ctx, 500*time.Millisecond)
			continue
		}
		var entries []redis.XMessage
		if len(res) == 1 {
			entries = res[0].Messages
		}
		if own {
			if len(entries) == 0 {
				own, from = false, ">"
				ownDone()
				continue
			}
			from = entries[len(entries)-1].ID // the next page: the pending entries after these
		}
		if len(entries) > 0 {
			watch.ours = entries[len(entries)-1].ID
		}
		if foreign {
			s.helped.Add(int64(len(entries)))
		}
		s.handle(ctx, stream, entries, out)
		if len(entries) < s.cfg.BatchSize {
			ctxsleep.Sleep(ctx, s.cfg.BatchWait)
		}
	}
}

// handle gives entries to the router (one key's entries one at a time, keys side by side) and
// acks the handled ones with one XACK. It returns when each was acked or the subscriber stops.
func (s *batchSubscriber) handle(ctx context.Context, stream string, entries []redis.XMessage, out chan<- *message.Message) {
	byKey := map[string][]*message.Message{}
	var keys []string
	ids := map[*message.Message]string{}
	for _, e := range entries {
		if e.Values == nil {
			continue // pending, but trimmed from the stream: re-published below
		}
		msg, err := s.decode.Unmarshal(e.Values)
		if err != nil {
			s.log.Error("cannot read a consumer-group entry; left pending", "entry_id", e.ID, "error", err)
			continue
		}
		k := msg.Metadata.Get(OrderKey)
		if _, seen := byKey[k]; !seen {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], msg)
		ids[msg] = e.ID
	}
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for _, e := range entries {
		if e.Values == nil {
			// This consumer's own entry (read at start), trimmed before it was acked: its
			// message is published again from Postgres, as the claim loop does for a dead
			// consumer's; if that fails it stays pending, and the claim loop tries again once it
			// has been idle ClaimIdle.
			if err := s.redrive.redrive(ctx, stream, s.group, e.ID); err != nil && ctx.Err() == nil {
				s.log.Error("a pending fan-out entry was trimmed before it was acknowledged and could not be re-published",
					"entry_id", e.ID, "error", err)
			}
		}
	}
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, msg := range byKey[k] {
				if !s.deliver(ctx, msg, out) {
					return
				}
				mu.Lock()
				acked = append(acked, ids[msg])
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.ack(ctx, stream, acked)
}

// deliver hands msg to the router until it is acked (true) or the subscriber stops (false).
func (s *batchSubscriber) deliver(ctx context.Context, msg *message.Message, out chan<- *message.Message) bool {
	for {
		msgCtx, cancel := context.WithCancel(ctx)
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case <-ctx.Done():
			cancel()
			return false
		}
		select {
		case <-msg.Acked():
			cancel()
			return true
		case <-msg.Nacked():
			cancel()
			msg = msg.Copy()
			ctxsleep.Sleep(ctx, s.cfg.NackResendSleep)
		case <-ctx.Done():
			cancel()
			return false
		}
	}
}

// notOwnedPause is how often the read loop of a stream this instance does not own looks again;
// at least every minStallCheck it asks Redis whether the group makes progress on it.
const (
	notOwnedPause = 250 * time.Millisecond
	minStallCheck = 2 * time.Second
)

// stallWatch is what a read loop remembers of the group on a stream it does not own.
type stallWatch struct {
	at            time.Time // last check
	lastDelivered string    // the group's last delivered id then
	top           string    // the stream's newest id then
	ours          string    // the last id this consumer read itself
	stalled       bool      // the group stood still at the last check (look)
	behind        bool      // the group's lag was HelpAfter entries or more at the last check
}

// needsHelp reports whether this consumer should read a stream it does not own: the group
// stalls on it or falls behind on it, as seen at the last check (look), at most one stallCheck
// ago.
func (s *batchSubscriber) needsHelp(ctx context.Context, stream string, w *stallWatch) bool {
	if time.Since(w.at) >= s.stallCheck() {
		s.look(ctx, stream, w)
	}
	return w.stalled || w.behind
}

// look checks the group on stream and records it in w:
//   - stalled: the group makes no progress although entries wait for it. Its last delivered id
//     stayed where it was (or moved only by this consumer's own reads) over a whole stallCheck
//     while an entry that was already there at the previous check is still not delivered. The
//     owner is then frozen, or its session is lost and the partition not yet taken over;
//     reading in its place is safe (a group hands each entry to one consumer), and this
//     consumer keeps reading until someone else moves the group again.
//   - behind: the group's lag (entries not yet delivered to any of its consumers, from XINFO
//     GROUPS, Redis 7) is at least HelpAfter. The owner cannot keep up, and the group's work is
//     shared until the lag is back under that.
//
// When Redis cannot tell, it counts as stalled: the read recreates a lost group, or retries.
func (s *batchSubscriber) look(ctx context.Context, stream string, w *stallWatch) {
	pipe := s.client.Pipeline()
	groups := pipe.XInfoGroups(ctx, stream)
	top := pipe.XRevRangeN(ctx, stream, "+", "-", 1)
	if _, err := pipe.Exec(ctx); err != nil {
		w.stalled, w.behind, w.at = true, false, time.Now()
		return
	}
	delivered, lag := "", int64(-1)
	for _, g := range groups.Val() {
		if g.Name == s.group {
			// Lag is -1 when Redis cannot tell, and 0 before Redis 7.0, which does not report it
			delivered, lag = g.LastDeliveredID, g.Lag
		}
	}
	waited := w.top != "" && (delivered == "" || lessID(delivered, w.top)) // was there a check ago
	// this consumer's own reads say nothing of the owner while it reads in the owner's place
	// (stalled), but they are the group's progress while it only helps (behind): else a helper
	// that happened to read last at a check would take the owner for stalled and read for good
	moved := w.at.IsZero() || delivered != w.lastDelivered && (delivered != w.ours || w.behind)
	w.stalled = !moved && (waited || w.stalled)
	w.behind = s.cfg.HelpAfter > 0 && lag >= int64(s.cfg.HelpAfter)
	w.lastDelivered, w.at, w.top = delivered, time.Now(), ""
	if len(top.Val()) == 1 {
		w.top = top.Val()[0].ID
	}
}

// stallCheck is how long the group must stand still on a stream before another consumer reads
// in its owner's place: longer than an owner that is alive takes between two reads (a blocking
// read, then the batch wait), twice over.
func (s *batchSubscriber) stallCheck() time.Duration {
	return max(minStallCheck, 2*(s.cfg.BlockTime+s.cfg.BatchWait)+time.Second)
}

// ack acknowledges ids in one XACK, retrying while Redis is away; if the subscriber stops
// first they stay pending and are handled again (every handler is idempotent by event id).
func (s *batchSubscriber) ack(ctx context.Context, stream string, ids []string) {
	for len(ids) > 0 && ctx.Err() == nil {
		err := s.client.XAck(ctx, stream, s.group, ids...).Err()
		if err == nil {
			return
		}
		s.log.Warn("acknowledging consumer-group entries failed; retrying", "entries", len(ids), "error", err)
		ctxsleep.Sleep(ctx, 100*time.Millisecond)
	}
}

// claim takes over entries pending longer than ClaimIdle (their consumer died or hangs), at
// start and every ClaimInterval. Its own consumer's entries it leaves to the read loop, which
// handles them now or from "0" at its next start (claiming them too would hand the same entry
// to the router twice at once); it only redrives them when they were trimmed (shouldClaim). It
// pages through the pending list, so entries it leaves there (its own, or trimmed ones it
// could not redrive yet) are not listed again until the next round.
func (s *batchSubscriber) claim(ctx context.Context, stream string, out chan<- *message.Message, ownRead <-chan struct{}) {
	const page = 100
	select {
	case <-ownRead:
	case <-ctx.Done():
		return
	}
	t := time.NewTicker(s.cfg.ClaimInterval)
	defer t.Stop()
	for {
		for start := "-"; ctx.Err() == nil; {
			pending, err := s.client.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: s.group,
				Idle: s.cfg.ClaimIdle, Start: start, End: "+", Count: page}).Result()
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, redis.Nil) {
					s.log.Warn("listing pending consumer-group entries failed", "error", err)
				}
				break
			}
			var ids []string
			for _, xp := range pending {
				if s.redrive.shouldClaim(ctx, stream, s.group, xp) && xp.Consumer != s.consumer {
					ids = append(ids, xp.ID)
				}
			}
			if len(ids) > 0 {
				// MinIdle makes sure two survivors never take the same entry
				claimed, err := s.client.XClaim(ctx, &redis.XClaimArgs{Stream: stream, Group: s.group,
					Consumer: s.consumer, MinIdle: s.cfg.ClaimIdle, Messages: ids}).Result()
				if err != nil && !errors.Is(err, redis.Nil) {
					s.log.Warn("claiming pending consumer-group entries failed", "error", err)
					break
				}
				s.claims.Add(int64(len(claimed)))
				s.handle(ctx, stream, claimed, out)
			}
			if len(pending) < page {
				break
			}
			start = "(" + pending[len(pending)-1].ID
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// removeIdleConsumers drops consumers of the group idle past ConsumerTimeout with nothing
// pending (instances gone for good), so the group's consumer list does not grow forever.
func (s *batchSubscriber) removeIdleConsumers(ctx context.Context, stream string) {
	t := time.NewTicker(max(s.cfg.ConsumerTimeout/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		consumers, err := s.client.XInfoConsumers(ctx, stream, s.group).Result()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("listing the group's consumers failed; retrying next round", "error", err)
			}
			continue
		}
		for _, c := range consumers {
			if c.Name != s.consumer && c.Pending == 0 && c.Idle >= s.cfg.ConsumerTimeout {
				if _, err := removeConsumerIfIdle(ctx, s.client, stream, s.group, c.Name, s.cfg.ConsumerTimeout); err != nil && ctx.Err() == nil {
					s.log.Warn("removing an idle consumer failed; retrying next round", "consumer", c.Name, "error", err)
				}
			}
		}
	}
}

//go:embed remove_idle_consumer.lua
var removeIdleConsumerLua string

var removeIdleConsumer = redis.NewScript(removeIdleConsumerLua)

// removeConsumerIfIdle removes consumer from group if it still has nothing pending and has been
// idle for at least idle, as one script (remove_idle_consumer.lua): the listing that named it
// may be out of date by the time it is removed, and removing a consumer drops its pending
// entries. It reports whether it removed it.
func removeConsumerIfIdle(ctx context.Context, client redis.UniversalClient, stream, group, consumer string, idle time.Duration) (bool, error) {
	n, err := removeIdleConsumer.Run(ctx, client, []string{stream}, group, consumer, idle.Milliseconds()).Int()
	return n == 1, err
}
