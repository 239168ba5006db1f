package messaging

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/outagelog"
)

// LiveFeed is the Redis side of interest-based delivery: it carries the live messages of the
// conversations the hub follows and confirms each channel subscription (redisstream.LiveChannels).
type LiveFeed interface {
	Run(ctx context.Context, onMessage func(conversation.ID, delivery.Item), onSubscribed func(conv conversation.ID, again bool),
		onRemoved func(conversation.ID, conversation.UserID)) error
}

// Revoker ends a user's live subscriptions to a conversation they left (the WebSocket port).
type Revoker interface {
	// Revoke: user was removed from conv (a notice on its live channel).
	Revoke(conv conversation.ID, user conversation.UserID)
	// Reverify checks conv's local subscribers against its participants afresh: conv's channel
	// was only just confirmed, so a notice published before was not heard.
	Reverify(ctx context.Context, conv conversation.ID) error
}

// StreamTops reads the newest seq of conversation streams (redisstream.Backlog).
type StreamTops interface {
	Tops(ctx context.Context, convs []conversation.ID) (map[conversation.ID]int64, error)
}

// DurableTops reads the last committed seq of conversations (postgres.ReadModel): after a
// reconnect the streams may have lost their newest entries, so they are not asked.
type DurableTops interface {
	LastSeqs(ctx context.Context, convs []conversation.ID) (map[conversation.ID]int64, error)
}

// LiveRecheck is how often the conversations that had live traffic are compared with their
// streams (NOVA_LIVE_RECHECK); every followed conversation is compared every fullRecheckRounds.
type LiveRecheck time.Duration

// fullRecheckRounds: a quiet conversation can only have lost a message if its Pub/Sub
// connection dropped (then its re-subscription is confirmed and checked at once) or if its only
// message was lost, so quiet ones are compared less often and idle instances stay cheap.
const fullRecheckRounds = 12

// LiveListener feeds the hub from the live channels and makes up for what Pub/Sub may lose.
// A dropped message in the middle shows as a gap at the next one and the hub fills it; what
// nothing follows (the last message of a burst, or anything sent while the connection was down
// or before a channel's subscription took effect) is found by comparing each followed
// conversation with its stream's newest entry: when a subscription is confirmed and on a slow
// timer (conversations with recent traffic every round, all of them every fullRecheckRounds
// rounds). A re-subscription after a reconnect is compared with Postgres instead (one query per
// 1,000 conversations): the Redis that came back may have lost the stream's newest entries with
// their Pub/Sub messages, and the subscriptions behind catch up, from the stream and then from
// Postgres.
type LiveListener struct {
	feed    LiveFeed
	revoker Revoker
	tops    StreamTops
	durable DurableTops
	hub     *delivery.Hub
	every   time.Duration
	enabled bool
	log     *slog.Logger
	down    *outagelog.Log // comparisons that cannot read the newest seqs, logged once an outage
	unsure  *outagelog.Log // membership re-checks that cannot read the participants

	pending    *convQueue // confirmed subscriptions to compare with their streams now
	resync     *convQueue // re-subscriptions after a reconnect, to compare with Postgres now
	active     *convQueue // conversations with live traffic since the last round (no wake-up: the ticker takes it)
	unverified *convQueue // confirmed channels whose subscribers to re-check
}

// LiveEnabled is false when an A/B run delivers from the fan-out stream instead.
type LiveEnabled bool

func NewLiveListener(feed LiveFeed, revoker Revoker, tops StreamTops, durable DurableTops, hub *delivery.Hub, every LiveRecheck,
	enabled LiveEnabled, log *slog.Logger) *LiveListener {
	if feed == nil || revoker == nil || tops == nil || durable == nil || hub == nil || log == nil || every <= 0 {
		panic("messaging.NewLiveListener: nil dependency")
	}
	log = log.With("component", "live-listener")
	return &LiveListener{feed: feed, revoker: revoker, tops: tops, durable: durable, hub: hub, log: log,
		down: outagelog.New(log, "cannot read the conversations' newest seqs to re-check live delivery; retrying every second",
			"live delivery re-checks read the newest seqs again"), every: time.Duration(every), enabled: bool(enabled),
		pending: newConvQueue(), resync: newConvQueue(), active: newConvQueue(), unverified: newConvQueue(),
		unsure: outagelog.New(log, "cannot re-check the membership of newly followed conversations; the keep-alive rounds check it",
			"membership re-checks of newly followed conversations read Postgres again")}
}

// Run listens until ctx ends.
func (l *LiveListener) Run(ctx context.Context) error {
	if !l.enabled {
		return nil
	}
	var loops sync.WaitGroup
	loops.Go(func() { l.recheckLoop(ctx) })
	loops.Go(func() { l.verifyLoop(ctx) })
	err := l.feed.Run(ctx, l.deliver, l.confirmed, l.revoker.Revoke)
	loops.Wait()
	return err
}

// deliver offers a live message to the hub and notes the conversation as active.
func (l *LiveListener) deliver(conv conversation.ID, it delivery.Item) {
	l.active.add(conv)
	l.hub.Publish(conv, it)
}

// confirmed hears every confirmation of a channel: conv is queued for a comparison with its
// stream, or after a reconnect (again) for a catch-up, and for a membership re-check (a removal
// notice published before the confirmation was not heard).
func (l *LiveListener) confirmed(conv conversation.ID, again bool) {
	l.compareQueue(again).add(conv)
	l.compareQueue(again).wake()
	l.unverified.add(conv)
	l.unverified.wake()
	if again {
		// and with its stream at the next round too: a connection opened again (to a replica
		// the cluster does not count yet, to a Redis still loading) may miss what comes just after
		l.active.add(conv)
	}
}

// compareQueue is where conversations wait for a comparison: with their streams, or after a
// reconnect (again) with Postgres.
func (l *LiveListener) compareQueue(again bool) *convQueue {
	if again {
		return l.resync
	}
	return l.pending
}

func (l *LiveListener) recheckLoop(ctx context.Context) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for round := 1; ; {
		var convs, resync []conversation.ID
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			convs = l.active.take()
			if round%fullRecheckRounds == 0 {
				convs = l.hub.Following()
			}
			round++
		// either wake-up takes both queues; the other's, if set too, then finds them empty
		case <-l.pending.woken():
			convs, resync = l.queued()
		case <-l.resync.woken():
			convs, resync = l.queued()
		}
		l.compare(ctx, convs, false)
		l.compare(ctx, resync, true)
	}
}

// queued takes the conversations waiting for a comparison; one queued both ways is compared
// with Postgres only. (One re-subscribed between the two takes is compared with its stream now
// and with Postgres at the next wake-up: one comparison more, nothing missed.)
func (l *LiveListener) queued() (convs, resync []conversation.ID) {
	resync = l.resync.take()
	again := make(map[conversation.ID]struct{}, len(resync))
	for _, conv := range resync {
		again[conv] = struct{}{}
	}
	for _, conv := range l.pending.take() {
		if _, ok := again[conv]; !ok {
			convs = append(convs, conv)
		}
	}
	return convs, resync
}

// verifyLoop re-checks the membership of conversations whose channels were confirmed, one at a
// time, so a reconnect confirming thousands at once asks Postgres one query after another. When
// one cannot be read, it and the rest of its batch are tried again 5 s later; the connections'
// keep-alive rounds check every subscription's membership meanwhile, and close connections that
// cannot be checked for long.
func (l *LiveListener) verifyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.unverified.woken():
		}
		convs := l.unverified.take()
		for n, conv := range convs {
			rctx, cancel := context.WithTimeout(ctx, reverifyTimeout)
			err := l.revoker.Reverify(rctx, conv)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// it and the rest of the batch again in a while, not one after another: with
				// Postgres hanging each would wait 5 s (the keep-alive rounds check them meanwhile)
				l.unsure.Failed(err, "conversation_id", conv, "batch", len(convs))
				l.unverified.add(convs[n:]...)
				time.AfterFunc(reverifyRetry, l.unverified.wake)
				break
			}
			l.unsure.OK()
		}
	}
}

// reverifyRetry is how soon a batch of membership re-checks that met a Postgres error is tried
// again.
const reverifyRetry = 5 * time.Second

// reverifyTimeout bounds one membership re-check, so a Postgres that hangs holds up the re-checks
// (and not for good) rather than anything else.
const reverifyTimeout = 5 * time.Second

// retryLater queues convs, which could not be compared, for another comparison in a second:
// a confirmation's comparison is what covers a new subscription's hand-over, and the full
// round would come only a minute later.
func (l *LiveListener) retryLater(convs []conversation.ID, again bool) {
	l.compareQueue(again).add(convs...)
	time.AfterFunc(compareRetry, l.compareQueue(again).wake)
}

// compareRetry is how soon conversations whose comparison failed are compared again.
const compareRetry = time.Second

// compare asks each conversation's subscriptions to catch up to its newest seq: the stream's,
// or after a reconnect (again) the last committed in Postgres.
func (l *LiveListener) compare(ctx context.Context, convs []conversation.ID, again bool) {
	top := l.tops.Tops
	if again {
		top = l.durable.LastSeqs
	}
	const chunk = 1000
	for len(convs) > 0 && ctx.Err() == nil {
		n := min(chunk, len(convs))
		tops, err := top(ctx, convs[:n])
		if err != nil {
			if ctx.Err() == nil {
				l.down.Failed(err, "after_reconnect", again)
				l.retryLater(convs, again)
			}
			return
		}
		l.down.OK()
		for conv, top := range tops {
			l.hub.CatchUpTo(conv, top)
		}
		convs = convs[n:]
	}
}
