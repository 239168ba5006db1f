package outbox

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/events"
)

// NextPublisher writes a message only when it directly follows its stream's last entry.
type NextPublisher interface {
	PublishNext(ctx context.Context, byConversation [][]redisstream.Entry) (redisstream.PublishResult, error)
}

// FastPathStats are the fast path's running totals (exported as metrics). Duplicates are
// messages Redis held already: the relay published them first, or a batch ran again after Redis
// had lost its scripts.
type FastPathStats struct{ Published, Duplicates, Deferred, Dropped int64 }

type fastPathCounts struct{ Published, Duplicates, Deferred, Dropped atomic.Int64 }

const (
	// fastPathLanes is how many publishes of one instance's fast path may be on their way to
	// Redis at once. A conversation always takes the same lane, so its messages still go out one
	// after another in commit order; with one lane a message just committed waited for the
	// publish before it (0.6-1.6 ms at 1,000 sends/s on two cores, docs/BENCHMARKS.md section AF).
	fastPathLanes = 4
	// fastPathQueue is how many commits may wait, over all lanes together (beyond that the relay
	// publishes them): a burst into the conversations of one lane may use all of it.
	fastPathQueue = 4096
	// deleteLinger and deleteBatch bound how long and how many published rows wait to be deleted
	// together: one DELETE per burst instead of one per message. A row published but not yet
	// deleted is harmless: the relay would find it already in Redis.
	deleteLinger = 20 * time.Millisecond
	deleteBatch  = 1000
	// stopGrace is how long publishes outlive the fast path's stop (Run).
	stopGrace = 2 * time.Second
)

// FastPath publishes each message to Redis right after its transaction commits, from the
// instance that committed it, instead of waiting for the relay leader to hear of it and read it
// back: one Redis round trip instead of a NOTIFY, a wake-up and an outbox read.
//
// It is safe next to the relay because it is strict: a message is written only if it directly
// follows its stream's last entry (another instance may be publishing the seq before it right
// now, and an explicit id below the top would then hide it). Everything else (a gap, an error,
// a full queue, a crash before it ran) stays in the outbox, and the relay, which reads the
// outbox in order, publishes it. Rows are deleted only once Redis holds their entry.
type FastPath struct {
	pool   *pgxpool.Pool
	pub    NextPublisher
	relay  *Relay
	log    *slog.Logger
	counts fastPathCounts
	lanes  [fastPathLanes]chan []postgres.CommittedMessage
	queued atomic.Int64 // commits in the lanes, at most fastPathQueue
	done   chan []int64 // published rows, to delete
}

func NewFastPath(pool *pgxpool.Pool, pub NextPublisher, relay *Relay, log *slog.Logger) *FastPath {
	if pool == nil || pub == nil || relay == nil || log == nil {
		panic("outbox.NewFastPath: nil dependency")
	}
	f := &FastPath{pool: pool, pub: pub, relay: relay, log: log.With("component", "outbox-fast-path"),
		done: make(chan []int64, fastPathQueue)}
	for i := range f.lanes {
		f.lanes[i] = make(chan []postgres.CommittedMessage, fastPathQueue)
	}
	return f
}

var _ postgres.OutboxSignal = (*FastPath)(nil)

// Committed hands just-committed messages to the fast path without blocking the request. The
// caller hands a conversation's messages over in commit order (the repository does it while it
// holds the conversation's writer lock or row lock).
func (f *FastPath) Committed(msgs []postgres.CommittedMessage) {
	for len(msgs) > 0 {
		lane := laneOf(msgs[0])
		if !slices.ContainsFunc(msgs[1:], func(m postgres.CommittedMessage) bool { return laneOf(m) != lane }) {
			f.enqueue(f.lanes[lane], msgs) // nearly always: a commit's messages are of one conversation
			return
		}
		var mine, others []postgres.CommittedMessage
		for _, m := range msgs {
			if laneOf(m) == lane {
				mine = append(mine, m)
			} else {
				others = append(others, m)
			}
		}
		f.enqueue(f.lanes[lane], mine)
		msgs = others
	}
}

// laneOf is the lane of a message's conversation: the same for all of its messages.
func laneOf(m postgres.CommittedMessage) int {
	return events.Partition(string(m.Message.ConversationID), fastPathLanes)
}

// enqueue queues one commit's messages of one lane, or leaves them to the relay when
// fastPathQueue commits wait already. The count, not the lane's buffer (which holds as many), is
// the bound, so one busy lane may take the whole queue.
func (f *FastPath) enqueue(lane chan<- []postgres.CommittedMessage, msgs []postgres.CommittedMessage) {
	if f.queued.Add(1) > fastPathQueue {
		f.queued.Add(-1)
		f.counts.Dropped.Add(int64(len(msgs))) // the fast path is behind: the relay will publish these
		f.relay.Notify()
		return
	}
	lane <- msgs // never blocks: the lane's buffer holds fastPathQueue
}

// take is a commit's messages leaving its lane.
func (f *FastPath) take(msgs []postgres.CommittedMessage) []postgres.CommittedMessage {
	f.queued.Add(-1)
	return msgs
}

// Run publishes, a goroutine per lane, until ctx ends, and then what is still queued. Publishes
// outlive the stop by up to stopGrace: the server stops its background work only after the last
// request was answered, and each of those requests' messages is published, whether it was still
// queued or on its way to Redis, instead of being left to the relay, which may not lead its
// shard yet (a stopping relay drains only the shards it holds). What fails even so stays in the
// outbox for the relay.
func (f *FastPath) Run(ctx context.Context) error {
	pubCtx, cancelPub := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPub()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(stopGrace, cancelPub) })()
	stopped := make(chan struct{}) // closed once Run publishes no more, so no done batch comes after it
	deleted := make(chan struct{})
	go func() { defer close(deleted); f.deleteDone(ctx, stopped) }()
	defer func() { close(stopped); <-deleted }()
	var lanes sync.WaitGroup
	for _, lane := range f.lanes {
		lanes.Go(func() { f.runLane(ctx, pubCtx, lane) })
	}
	lanes.Wait()
	return nil
}

// runLane publishes one lane's messages, a burst as one pipeline, until ctx ends and the lane
// is empty.
func (f *FastPath) runLane(ctx, pubCtx context.Context, lane <-chan []postgres.CommittedMessage) {
	for {
		var batch []postgres.CommittedMessage
		select {
		case <-ctx.Done():
		case msgs := <-lane:
			batch = append(batch, f.take(msgs)...)
		}
	more: // take what else is waiting
		for len(batch) < batchSize {
			select {
			case msgs := <-lane:
				batch = append(batch, f.take(msgs)...)
			default:
				break more
			}
		}
		if len(batch) > 0 {
			f.publish(pubCtx, batch)
		}
		if ctx.Err() != nil && len(lane) == 0 {
			return
		}
	}
}

func (f *FastPath) publish(ctx context.Context, batch []postgres.CommittedMessage) {
	entries := make([]redisstream.Entry, len(batch))
	for i, cm := range batch {
		m := cm.Message
		entries[i] = redisstream.Entry{OutboxID: cm.OutboxID, ConversationID: string(m.ConversationID), Seq: m.Seq,
			MessageID: m.ID, SenderID: string(m.SenderID), CreatedAt: m.CreatedAt, Payload: cm.Payload, Participants: cm.Participants}
	}
	byConversation := groupByConversation(entries)
	res, err := f.pub.PublishNext(ctx, byConversation)
	f.counts.Published.Add(int64(res.Added))
	f.counts.Duplicates.Add(int64(res.Duplicates))
	if len(res.Done) > 0 && f.log.Enabled(ctx, slog.LevelDebug) {
		f.relay.logPublished(ctx, byConversation, res)
	}
	if err != nil || res.Deferred > 0 {
		if err != nil && ctx.Err() == nil {
			// not a loss: the rows stay in the outbox and the relay (which reports outages) takes them
			f.log.Debug("fast path could not publish; left to the relay", "messages", len(batch)-len(res.Done), "error", err)
		}
		f.counts.Deferred.Add(int64(len(batch) - len(res.Done)))
		f.relay.Notify()
	}
	if len(res.Done) > 0 {
		select {
		case f.done <- res.Done:
		default: // the deleter is behind: the relay will find these rows already published
		}
	}
}

// deleteDone deletes published rows in batches (at most deleteLinger after the first of a batch
// was published) until stopped is closed, and then what is left. It stops on stopped rather than
// on ctx: a batch Run publishes while ctx ends still reaches it. Once ctx has ended, deletes get
// a short grace of their own.
func (f *FastPath) deleteDone(ctx context.Context, stopped <-chan struct{}) {
	var ids []int64
	var linger <-chan time.Time
	flush := func() {
		if len(ids) == 0 {
			return
		}
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			dctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		}
		defer cancel()
		if err := f.relay.markDone(dctx, ids); err != nil && dctx.Err() == nil {
			f.log.Warn("fast-path outbox rows not deleted; the relay will find them already published", "rows", len(ids), "error", err)
		}
		ids, linger = ids[:0], nil
	}
	for {
		select {
		case <-stopped:
			for more := true; more; {
				select {
				case d := <-f.done:
					ids = append(ids, d...)
				default:
					more = false
				}
			}
			flush()
			return
		case d := <-f.done:
			if linger == nil {
				linger = time.After(deleteLinger)
			}
			if ids = append(ids, d...); len(ids) >= deleteBatch {
				flush()
			}
		case <-linger:
			flush()
		}
	}
}

// Stats returns the running totals at this moment (a copy: read-only for the caller).
func (f *FastPath) Stats() FastPathStats {
	c := &f.counts
	return FastPathStats{Published: c.Published.Load(), Duplicates: c.Duplicates.Load(), Deferred: c.Deferred.Load(),
		Dropped: c.Dropped.Load()}
}
