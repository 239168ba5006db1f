package outbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// The relay's work is split into shards, one per fan-out partition, so that more instances add
// relay capacity: a conversation's rows belong to shard mod(hashtext(conversation_id), N), and
// each shard has one leader, the session holding the shard's advisory lock. Each instance takes
// at most its fair share, ceil(N / instances), and lets go of shards above it, so the shards
// spread over the instances and one instance alone leads them all. With N = 1 the one shard's
// lock is the relay's old leader lock.
//
// A shard changing hands is safe for the reason relays side by side are: each conversation's rows
// go out in seq order, and Redis refuses what it holds already.
//
// Shards and fan-out partitions share only their number: shards hash with Postgres's hashtext,
// partitions with FNV-1a (events.Partition), so relay shard p does not hold partition p's
// conversations. The owner of shard p reads partition p (redisstream.PartitionOwner) only so
// that the partitions spread over the instances as the shards do.

// memberLockKey is held shared by every relay session; the number of holders is the number of
// instances the shards are spread over.
const memberLockKey = 0x6e6f766d // "novm"

// shardLockKey is the advisory lock of one shard (shard 0's is leaderLockKey).
func shardLockKey(shard int) int64 { return int64(leaderLockKey) | int64(shard)<<32 }

// shardSession is the dedicated Postgres session that holds this instance's shard locks.
type shardSession struct {
	conn  *pgx.Conn
	total int
	held  []int // sorted
	// offset is where this instance starts looking for a free shard, so instances starting
	// together do not all reach for shard 0 first
	offset int
}

func newShardSession(conn *pgx.Conn, total int) *shardSession {
	return &shardSession{conn: conn, total: total, offset: rand.IntN(total)}
}

// join counts this session among the relay's members.
func (s *shardSession) join(ctx context.Context) error {
	if _, err := s.conn.Exec(ctx, `SELECT pg_advisory_lock_shared($1)`, int64(memberLockKey)); err != nil {
		return fmt.Errorf("join the relay's members: %w", err)
	}
	return nil
}

// rebalance takes free shards up to this instance's fair share and lets go of any above it.
// It reports whether the held shards changed.
func (s *shardSession) rebalance(ctx context.Context) (bool, error) {
	var members int
	// a bigint advisory key shows in pg_locks as classid (high half), objid (low half), objsubid 1
	if err := s.conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = 0 AND objid::bigint = $1 AND objsubid = 1`, int64(memberLockKey)).Scan(&members); err != nil {
		return false, fmt.Errorf("count the relay's members: %w", err)
	}
	fair := (s.total + max(members, 1) - 1) / max(members, 1)
	changed := false
	for len(s.held) > fair {
		last := s.held[len(s.held)-1]
		if _, err := s.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, shardLockKey(last)); err != nil {
			return changed, fmt.Errorf("let go of relay shard %d: %w", last, err)
		}
		s.held, changed = s.held[:len(s.held)-1], true
	}
	for i := 0; i < s.total && len(s.held) < fair; i++ {
		shard := (s.offset + i) % s.total
		if slices.Contains(s.held, shard) {
			continue
		}
		var got bool
		if err := s.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, shardLockKey(shard)).Scan(&got); err != nil {
			return changed, fmt.Errorf("take relay shard %d: %w", shard, err)
		}
		if got {
			s.held, changed = append(s.held, shard), true
		}
	}
	slices.Sort(s.held)
	return changed, nil
}

// shardOf is the SQL expression of a row's shard (alias names the outbox table; parameter
// $param holds the number of shards): Postgres's own hash of the conversation id, made
// non-negative.
func shardOf(alias string, param int) string {
	return "mod(hashtext(" + alias + ".conversation_id::text)::bigint + 2147483648, $" + strconv.Itoa(param) + ")"
}

// shardFilter is the WHERE clause that keeps a query to the given shards of the outbox (alias
// names the outbox table), with its arguments numbered from next; none when they are all.
func shardFilter(alias string, shards []int, total, next int) (string, []any) {
	if shards == nil || len(shards) >= total {
		return "", nil
	}
	return " WHERE " + shardOf(alias, next) + " = ANY($" + strconv.Itoa(next+1) + ")", []any{total, shards}
}
