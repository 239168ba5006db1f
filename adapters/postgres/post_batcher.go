package postgres

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/domain/conversation"
)

// postBatcher is group commit for one-statement sends (postStatement, decided on remembered or
// fresh state), without a hand-off when Postgres keeps up: a send that finds fewer than
// groupCommitters batches of this instance in flight sends its statement itself, at once, as it
// did alone. Sends that arrive while they are all busy wait; the batch that ends next hands its
// turn to the first of them, which sends every waiting statement (up to maxGroup) as one batch:
// one pipeline with one Sync, so one implicit transaction and one commit, a share of one fsync
// and one round trip each. Postgres's CPU per commit is the largest part of a send's (see
// ARCHITECTURE.md), so under load a send costs less, and the busier Postgres is, the larger
// the batches. Sends of one conversation never meet in a batch: they queue for the
// conversation's cache lock before they get here.
type postBatcher struct {
	pool  *pgxpool.Pool
	limit int // batches in flight at once

	mu      sync.Mutex
	running int
	waiting []*pendingPost
	stats   PostBatchStats
}

// PostBatchStats are the one-statement sends' batches since start.
type PostBatchStats struct {
	Batches int64 // batches of more than one send that committed
	Posts   int64 // sends in them (Posts / Batches is the mean batch)
	Failed  int64 // such batches that failed as a whole (their sends were made on their own)
}

// pendingPost is one caller's send waiting for a batch.
type pendingPost struct {
	ctx       context.Context
	c         *conversation.Conversation
	turn      chan struct{} // closed when this caller is to send the next batch
	done      chan error    // its answer when another caller sent it
	committed []CommittedMessage
}

func newPostBatcher(pool *pgxpool.Pool) *postBatcher {
	return &postBatcher{pool: pool, limit: groupCommitters}
}

// Stats returns a copy of the totals.
func (b *postBatcher) Stats() PostBatchStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// post appends c's one send by postStatement and returns what it committed: errStale when the
// state row moved on (nothing written), errGroupFailed when the batch it went in failed as a
// whole (nothing in it committed; the caller sends again on its own), else what Postgres said.
func (b *postBatcher) post(ctx context.Context, c *conversation.Conversation) ([]CommittedMessage, error) {
	p := &pendingPost{ctx: ctx, c: c}
	b.mu.Lock()
	if b.running < b.limit {
		b.running++
		b.mu.Unlock()
		return b.lead(p)
	}
	p.turn, p.done = make(chan struct{}), make(chan error, 1)
	b.waiting = append(b.waiting, p)
	b.mu.Unlock()
	// no ctx case: a waiter is taken by the next batch, which leaves out a caller that has gone
	// (answering it with its ctx error) and lasts at most groupTimeout
	select {
	case err := <-p.done:
		return p.committed, err
	case <-p.turn:
		return b.lead(p)
	}
}

// lead sends p with the sends waiting now, answers them, and hands the turn on.
func (b *postBatcher) lead(p *pendingPost) ([]CommittedMessage, error) {
	b.mu.Lock()
	n := min(len(b.waiting), maxGroup-1)
	batch := append([]*pendingPost{p}, b.waiting[:n]...)
	b.waiting = append(b.waiting[:0], b.waiting[n:]...)
	b.mu.Unlock()

	live := batch[:0]
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil && w != p {
			w.done <- err
			continue
		}
		live = append(live, w)
	}
	// in id order, as the locked way takes its locks, so that two batches (of this instance or
	// another) never wait for each other's rows the other way round
	slices.SortFunc(live, func(a, b *pendingPost) int { return cmp.Compare(a.c.ID(), b.c.ID()) })
	errs := b.send(live)
	var mine error
	for i, w := range live {
		if w == p {
			mine = errs[i]
		} else {
			w.done <- errs[i]
		}
	}
	b.handOn()
	return p.committed, mine
}

// handOn gives the turn to the first waiting send, or ends this batch's turn.
func (b *postBatcher) handOn() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiting) == 0 {
		b.running--
		return
	}
	next := b.waiting[0]
	b.waiting[0] = nil
	b.waiting = b.waiting[1:]
	close(next.turn)
}

// send runs the batch, one statement per send, and returns each send's error. A batch of one
// runs under its caller's ctx, as a send alone always has; a larger one outlives any one caller's
// request, up to groupTimeout. A send whose state row moved on gets errStale and writes nothing;
// the others still commit. A statement that fails makes Postgres skip the rest and roll the
// implicit transaction back at the Sync, so nothing in the batch committed: each send of a
// larger batch then gets errGroupFailed and is sent again alone, so it gets the answer it would
// have had alone (a repeated client_msg_id, say).
func (b *postBatcher) send(batch []*pendingPost) []error {
	errs := make([]error, len(batch))
	ctx := batch[0].ctx
	if len(batch) > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
		defer cancel()
	}
	q := &pgx.Batch{}
	pending := make([]CommittedMessage, len(batch))
	for i, w := range batch {
		var err error
		if pending[i], err = queuePostStatement(q, w.c, w.c.Changes()[0].(conversation.MessagePosted)); err != nil {
			return fill(errs, err)
		}
	}
	results := b.pool.SendBatch(ctx, q)
	for i, w := range batch {
		errs[i] = scanPost(results.QueryRow(), pending[i], &w.committed)
	}
	err := results.Close()
	switch {
	case err == nil:
		b.count(batch, false)
		return errs
	case len(batch) == 1:
		return []error{cmp.Or(errs[0], err)}
	default:
		b.count(batch, true)
		for _, w := range batch {
			w.committed = nil
		}
		return fill(errs, errGroupFailed)
	}
}

// alone sends c's statement on its own, under ctx: what a send does after its batch failed.
func (b *postBatcher) alone(ctx context.Context, c *conversation.Conversation) ([]CommittedMessage, error) {
	p := &pendingPost{ctx: ctx, c: c}
	return p.committed, b.send([]*pendingPost{p})[0]
}

func (b *postBatcher) count(batch []*pendingPost, failed bool) {
	if len(batch) < 2 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if failed {
		b.stats.Failed++
		return
	}
	b.stats.Batches++
	b.stats.Posts += int64(len(batch))
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}
