package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nova-chat/nova/domain/conversation"
)

const (
	// groupCommitters is how many locked group transactions an instance runs at once; while they
	// are busy, the writes that arrive wait and go together in the next one. `make bench-sends`
	// (two instances of 8 and 32 writers each over 100 conversations) has 1 and 2 commit the most
	// sends and 4 and 8 fewer and fewer (smaller groups, more commits); 2 keeps one going while
	// the other waits on a row lock.
	groupCommitters = 2
	// maxGroup bounds the conversations of one group transaction.
	maxGroup = 32
	// groupTimeout bounds one group transaction; it does not end with any one caller's request.
	groupTimeout = 10 * time.Second
	// groupLockTimeout bounds the wait of a group for its row locks: a conversation locked for
	// long elsewhere must not hold up the others in its group (nor the group's committer). A
	// group that times out fails as a whole, and each of its writes is made on its own.
	groupLockTimeout = 500 * time.Millisecond
)

// errGroupFailed: the group transaction failed as a whole (one write in it broke a key, or the
// connection went), so nothing in it committed; the caller writes on its own instead.
var errGroupFailed = errors.New("group transaction failed")

// lockedWrite is one caller's write of an existing conversation the locked way.
type lockedWrite struct {
	ctx    context.Context
	id     conversation.ID
	decide func(c *conversation.Conversation) error
	done   chan error

	c         *conversation.Conversation // the state it was decided on (nil until it was)
	err       error                      // its decision's refusal
	committed []CommittedMessage
}

// groupCommitter is group commit for the locked way: the locked writes that arrive while its
// transactions are busy go together in one transaction, of different conversations, locked in
// id order (so two groups, of this instance or another, never deadlock): BEGIN with one locked
// read of every state row, each caller's decision in Go, then every write with COMMIT. A send
// costs Postgres a share of one commit and the instance a share of two round trips; alone, it
// costs what a write on its own does, and waits for nothing. Up to groupCommitters
// transactions run at once, each in a goroutine that lives while writes are waiting.
type groupCommitter struct {
	repo        *ConversationRepository
	lockTimeout time.Duration
	committers  int // 0: no groups, every locked write on its own (the benchmark's baseline)

	mu      sync.Mutex
	waiting []*lockedWrite
	running int
	stats   GroupCommitStats
}

// GroupCommitStats are the locked writes' group transactions since start.
type GroupCommitStats struct {
	Groups int64 // group transactions that committed
	Writes int64 // writes they committed (Writes / Groups is the mean group)
	Failed int64 // group transactions that failed as a whole (their writes were made on their own)
}

func newGroupCommitter(repo *ConversationRepository) *groupCommitter {
	return &groupCommitter{repo: repo, lockTimeout: groupLockTimeout, committers: groupCommitters}
}

// Stats returns a copy of the totals.
func (g *groupCommitter) Stats() GroupCommitStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// write decides and appends one change the locked way, in a group with whatever else waits.
func (g *groupCommitter) write(ctx context.Context, id conversation.ID, decide func(c *conversation.Conversation) error) error {
	if g.committers == 0 {
		return errGroupFailed
	}
	w := &lockedWrite{ctx: ctx, id: id, decide: decide, done: make(chan error, 1)}
	g.mu.Lock()
	g.waiting = append(g.waiting, w)
	if g.running < g.committers {
		g.running++
		go g.drive()
	}
	g.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the group may still commit it; a repeat then finds the original
	}
}

// drive commits groups until no write waits.
func (g *groupCommitter) drive() {
	for {
		group := g.take()
		if len(group) == 0 {
			return
		}
		g.commit(group)
	}
}

// take removes the next group from the waiting writes: in arrival order, up to maxGroup, one
// write per conversation (a second write of a conversation waits for the next group). With
// none waiting it ends this driver's turn.
func (g *groupCommitter) take() []*lockedWrite {
	g.mu.Lock()
	defer g.mu.Unlock()
	var group []*lockedWrite
	in := make(map[conversation.ID]bool, min(len(g.waiting), maxGroup))
	rest := g.waiting[:0]
	for _, w := range g.waiting {
		if len(group) < maxGroup && !in[w.id] {
			in[w.id] = true
			group = append(group, w)
		} else {
			rest = append(rest, w)
		}
	}
	clear(g.waiting[len(rest):])
	g.waiting = rest
	if len(group) == 0 {
		g.running--
	}
	return group
}

// commit runs group as one transaction and answers every caller.
func (g *groupCommitter) commit(group []*lockedWrite) {
	live := group[:0:0]
	for _, w := range group {
		if err := w.ctx.Err(); err != nil {
			w.done <- err
			continue
		}
		live = append(live, w)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	err := g.repo.writeGroup(ctx, live, g.lockTimeout)
	g.count(live, err)
	// a group of one that broke a key broke it itself: it is answered as a write alone is
	alone := len(live) == 1 && isUniqueViolation(err)
	for _, w := range live {
		w.done <- g.repo.outcome(ctx, w, err, alone)
	}
}

// writeAlone decides and appends one change the locked way in a transaction of its own, waiting
// for the row lock as long as ctx allows: what a write does when its group failed as a whole.
func (r *ConversationRepository) writeAlone(ctx context.Context, id conversation.ID, decide func(c *conversation.Conversation) error) error {
	w := &lockedWrite{ctx: ctx, id: id, decide: decide}
	return r.outcome(ctx, w, r.writeGroup(ctx, []*lockedWrite{w}, 0), true)
}

// outcome is w's answer once its transaction ended with err. A refusal decided under the row
// lock, on current state, is final either way. A write alone names its failure (a conflict to
// retry, the original of a repeated send); in a group that failed it is made again alone.
func (r *ConversationRepository) outcome(ctx context.Context, w *lockedWrite, err error, alone bool) error {
	switch {
	case w.err != nil:
		return w.err
	case err == nil:
		r.committed(w.c, w.committed)
		return nil
	case !alone:
		return errGroupFailed
	case errors.Is(err, errStale): // cannot happen under the row lock; retried like a conflict
		return conversation.ErrConcurrentUpdate
	case w.c == nil: // failed before its decision
		return err
	default:
		return r.writeError(ctx, err, w.c.Changes())
	}
}

func (g *groupCommitter) count(group []*lockedWrite, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.stats.Failed++
		return
	}
	g.stats.Groups++
	for _, w := range group {
		if w.err == nil {
			g.stats.Writes++
		}
	}
}

// writeGroup is the group's transaction (or a write's alone), in two round trips on one
// connection: BEGIN with the locked read of every state row (in id order; waiting at most
// lockTimeout, or as long as ctx allows with 0), then every write with COMMIT, pipelined. A
// write whose decision refuses it gets that error (w.err) and writes nothing; the others still
// commit. Any statement that fails makes Postgres skip the rest, COMMIT included, and the
// transaction is rolled back: then the error is returned and nothing committed.
func (r *ConversationRepository) writeGroup(ctx context.Context, group []*lockedWrite, lockTimeout time.Duration) (err error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	open := false
	defer func() {
		if err != nil && open {
			rollback(ctx, conn)
		}
	}()
	ids := make([]string, len(group))
	for i, w := range group {
		ids[i] = string(w.id)
	}
	states := make(map[conversation.ID]*conversation.Conversation, len(group))
	first := &pgx.Batch{}
	first.Queue("BEGIN")
	if lockTimeout > 0 {
		first.Queue(fmt.Sprintf("SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds()))
	}
	first.Queue(selectConversations+" ORDER BY id FOR UPDATE", ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			c, err := scanConversation(rows, "")
			if err != nil {
				return err
			}
			states[c.ID()] = c
		}
		return rows.Err()
	})
	open = true
	if err = conn.SendBatch(ctx, first).Close(); err != nil {
		return err
	}
	writes := &pgx.Batch{}
	for _, w := range group {
		if w.c = states[w.id]; w.c == nil {
			w.err = conversation.ErrNotFound
			continue
		}
		if w.err = w.decide(w.c); w.err != nil {
			continue
		}
		if len(w.c.Changes()) > 0 {
			if err = queueAppend(writes, w.c, false, &w.committed); err != nil {
				return err
			}
		}
	}
	writes.Queue("COMMIT")
	if err = conn.SendBatch(ctx, writes).Close(); err != nil {
		return err
	}
	open = false
	return nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
