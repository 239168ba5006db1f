package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/domain/conversation"
)

// postBatcher is group commit for one-statement sends (postStatement, decided on remembered or
// fresh state), without a hand-off when Postgres keeps up: a send that finds fewer than
// groupCommitters batches of this instance in flight sends its statement itself, at once, as it
// did alone. Sends that arrive while they are all busy wait; the batch that ends next hands its
// turn to the first of them, which sends every waiting statement (up to maxGroup) as one batch:
// one transaction in one pipeline, so one commit, a share of one fsync and one round trip each. Postgres's CPU per commit is the largest part of a send's (see
// ARCHITECTURE.md), so under load a send costs less, and the busier Postgres is, the larger
// the batches. Sends of one conversation never meet in a batch: they queue for the
// conversation's writer lock before they get here.
type postBatcher struct {
	pool        *pgxpool.Pool
	limit       int           // batches in flight at once
	lockTimeout time.Duration // how long a batch of more than one waits for a row lock
	// slotHold is how long a batch keeps its turn: one still running then (a send alone waiting
	// for a row lock held elsewhere, as long as its caller lets it) hands its turn on and goes
	// on without one, so that it does not hold up the instance's other sends
	slotHold time.Duration

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
	// Transactions counts every transaction of this way (a send alone or a batch), committed or
	// not, and TransactionMicros the time they took from being sent to Postgres's answer, commit
	// included (a send alone also takes its pooled connection in that time): TransactionMicros /
	// Transactions is a transaction's mean round trip, what a send waits for most of its time in
	// the node once the node is busy.
	Transactions, TransactionMicros int64
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
	return &postBatcher{pool: pool, limit: groupCommitters, lockTimeout: groupLockTimeout, slotHold: groupLockTimeout}
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

// lead sends p with the sends waiting now, answers them, and hands the turn on (after slotHold
// at the latest).
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
	var turn sync.Once
	handOn := func() { turn.Do(b.handOn) }
	held := time.AfterFunc(b.slotHold, handOn)
	errs := b.send(live)
	held.Stop()
	var mine error
	for i, w := range live {
		if w == p {
			mine = errs[i]
		} else {
			w.done <- errs[i]
		}
	}
	handOn()
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

// send runs the batch, one statement per send, and returns each send's error. A batch of one is
// the statement alone, its own transaction, under its caller's ctx, as a send alone always was.
// A larger one is one transaction (BEGIN, SET LOCAL lock_timeout, the statements, COMMIT, all in
// one pipeline) that outlives any one caller's request, up to groupTimeout, and waits for a row
// lock at most groupLockTimeout: a conversation locked elsewhere must not hold up the others of
// its batch for long. A send whose state row moved on gets errStale and writes nothing; the
// others still commit. A statement that fails (a repeated client_msg_id, a lock timeout) makes
// Postgres skip the rest, COMMIT included, and the transaction is rolled back: nothing in the
// batch committed, and each of its sends gets errGroupFailed and is sent again alone, so it gets
// the answer (and waits for the lock as long) as it would have alone.
func (b *postBatcher) send(batch []*pendingPost) []error {
	if len(batch) == 1 {
		return b.sendOne(batch[0])
	}
	errs := make([]error, len(batch))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), groupTimeout)
	defer cancel()
	q := &pgx.Batch{}
	q.Queue("BEGIN")
	q.Queue(fmt.Sprintf("SET LOCAL lock_timeout = %d", b.lockTimeout.Milliseconds()))
	pending := make([]CommittedMessage, len(batch))
	for i, w := range batch {
		var err error
		if pending[i], err = queuePostStatement(q, w.c); err != nil {
			return fill(errs, err)
		}
	}
	q.Queue("COMMIT")
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return fill(errs, err)
	}
	defer conn.Release()
	sent := time.Now()
	results := conn.SendBatch(ctx, q)
	_, beginErr := results.Exec()
	_, setErr := results.Exec()
	for i, w := range batch {
		errs[i] = scanPost(results.QueryRow(), pending[i], &w.committed)
	}
	_, commitErr := results.Exec()
	// any of them failing means nothing committed, whatever Close says
	err = cmp.Or(results.Close(), beginErr, setErr, commitErr)
	b.timed(sent)
	if err != nil {
		rollback(ctx, conn)
		b.count(batch, true)
		for _, w := range batch {
			w.committed = nil
		}
		return fill(errs, errGroupFailed)
	}
	b.count(batch, false)
	return errs
}

// sendOne runs one send's statement as its own transaction, under its caller's ctx.
func (b *postBatcher) sendOne(p *pendingPost) []error {
	q := &pgx.Batch{}
	cm, err := queuePostStatement(q, p.c)
	if err != nil {
		return []error{err}
	}
	defer b.timed(time.Now())
	results := b.pool.SendBatch(p.ctx, q)
	err = scanPost(results.QueryRow(), cm, &p.committed)
	return []error{cmp.Or(err, results.Close())}
}

// timed counts a transaction sent at start and answered now.
func (b *postBatcher) timed(start time.Time) {
	d := time.Since(start)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.Transactions++
	b.stats.TransactionMicros += d.Microseconds()
}

// alone sends c's statement on its own, under ctx: what a send does after its batch failed.
func (b *postBatcher) alone(ctx context.Context, c *conversation.Conversation) ([]CommittedMessage, error) {
	p := &pendingPost{ctx: ctx, c: c}
	err := b.send([]*pendingPost{p})[0] // fills p.committed, so it is read after
	return p.committed, err
}

func (b *postBatcher) count(batch []*pendingPost, failed bool) {
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
