package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/domain/conversation"
)

const (
	// groupCommitters bounds the group transactions in flight at once; maxGroup bounds one.
	groupCommitters = 4
	maxGroup        = 64
	groupTimeout    = 10 * time.Second
)

// errGroupFailed: the transaction a send was grouped into failed as a whole (one send of the
// group broke a constraint, or Postgres went away), so nothing of it was written; the send is
// made again on its own, where its own error, if any, shows.
var errGroupFailed = errors.New("group transaction failed")

// groupCommit coalesces the remembered-state sends that this instance's requests make at the
// same moment into one transaction: BEGIN, one postStatement per send, COMMIT, in one round
// trip. Under load a commit, its WAL flush and the round trip are shared by many sends; when
// sends are rare each one commits alone at once, since a committer starts as soon as a send
// waits and none is running (no timer, no added latency). Each send keeps its own outcome:
// a stale one writes nothing and the others commit. Sends of one conversation never share a
// group: their callers queue on the conversation's lock first.
type groupCommit struct {
	pool *pgxpool.Pool
	// transactions and sends committed through groups; sends/transactions is the mean group size
	transactions, sends atomic.Int64

	mu      sync.Mutex
	pending []*groupedPost
	running int
}

type groupedPost struct {
	ctx    context.Context
	c      *conversation.Conversation
	result chan groupResult
}

type groupResult struct {
	committed CommittedMessage
	err       error
}

func newGroupCommit(pool *pgxpool.Pool) *groupCommit { return &groupCommit{pool: pool} }

// commit appends c's one MessagePosted at its remembered version and waits for the outcome:
// committed, errStale, errGroupFailed, or an error of the send itself.
func (g *groupCommit) commit(ctx context.Context, c *conversation.Conversation) (CommittedMessage, error) {
	p := &groupedPost{ctx: ctx, c: c, result: make(chan groupResult, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, p)
	if g.running < groupCommitters {
		g.running++
		go g.commitPending()
	}
	g.mu.Unlock()
	// no ctx case: the send may commit anyway, and the caller must not write the conversation
	// again before it knows; the transaction is bounded by groupTimeout
	r := <-p.result
	return r.committed, r.err
}

// commitPending commits groups until none is waiting, then stops.
func (g *groupCommit) commitPending() {
	for {
		g.mu.Lock()
		if len(g.pending) == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		n := min(len(g.pending), maxGroup)
		group := g.pending[:n:n]
		g.pending = g.pending[n:]
		g.mu.Unlock()
		g.commitGroup(group)
	}
}

func (g *groupCommit) commitGroup(group []*groupedPost) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(group[0].ctx), groupTimeout)
	defer cancel()
	results := make([]groupResult, len(group))
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	queued := 0
	for i, p := range group {
		args, cm, err := postArgs(p.c)
		if err != nil {
			results[i].err = err
			continue
		}
		queued++
		b.Queue(postStatement, args...).QueryRow(func(row pgx.Row) error {
			results[i].committed = cm
			if err := row.Scan(&results[i].committed.OutboxID); errors.Is(err, pgx.ErrNoRows) {
				results[i].err = errStale // wrote nothing; the others are unaffected
			} else if err != nil {
				return err
			}
			return nil
		})
	}
	b.Queue("COMMIT")
	if queued > 0 {
		if err := g.send(ctx, b); err == nil {
			g.transactions.Add(1)
			g.sends.Add(int64(queued))
		} else {
			for i := range results {
				if results[i].err == nil || errors.Is(results[i].err, errStale) {
					results[i] = groupResult{err: fmt.Errorf("%w: %w", errGroupFailed, err)}
				}
			}
		}
	}
	for i, p := range group {
		p.result <- results[i]
	}
}

func (g *groupCommit) send(ctx context.Context, b *pgx.Batch) error {
	conn, err := g.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		_, _ = conn.Exec(ctx, "ROLLBACK")
		return err
	}
	return nil
}
