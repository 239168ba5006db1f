package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
)

// The locked way groups the writes that arrive while its transactions are busy. These tests
// keep both group transactions of an instance waiting on row locks another session holds, so
// the writes behind them wait and go together.

// lockRows holds the row locks of ids in a transaction of its own, rolled back when the test
// ends if the test does not end it first.
func lockRows(t *testing.T, pool *pgxpool.Pool, ids ...conversation.ID) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	for _, id := range ids {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE`, string(id)); err != nil {
			t.Fatal(err)
		}
	}
	return tx
}

type sendResult struct {
	key string
	msg conversation.Message
	err error
}

// conversationWithMessage starts a conversation of alice with one message, key.
func conversationWithMessage(t *testing.T, repo *postgres.ConversationRepository, alice conversation.UserID, key string) *conversation.Conversation {
	t.Helper()
	c := startConversation(t, repo, alice)
	if err := repo.Update(context.Background(), c.ID(), func(c *conversation.Conversation) error { _, err := c.PostMessage(post(key, alice)); return err }); err != nil {
		t.Fatal(err)
	}
	return c
}

// collect reads n results, by key.
func collect(out <-chan sendResult, n int) map[string]sendResult {
	got := map[string]sendResult{}
	for range n {
		r := <-out
		got[r.key] = r
	}
	return got
}

// requireOriginal fails unless the send of key was answered with its original, seq 1.
func requireOriginal(t *testing.T, got map[string]sendResult, key string) {
	t.Helper()
	var dup *conversation.DuplicateMessageError
	if err := got[key].err; !errors.As(err, &dup) || dup.Original.Seq != 1 {
		t.Fatalf("the repeat %s: %v, want its original with seq 1", key, err)
	}
}

// requireFirst fails unless each send of keys committed with seq 1.
func requireFirst(t *testing.T, got map[string]sendResult, keys ...string) {
	t.Helper()
	for _, key := range keys {
		if r := got[key]; r.err != nil || r.msg.Seq != 1 {
			t.Fatalf("%s: seq %d, %v", key, r.msg.Seq, r.err)
		}
	}
}

// holdRows is lockRows for as long as the test wants: the pool's
// idle_in_transaction_session_timeout (3 s) is off for the transaction, because on a busy
// machine the test's setup may take longer than that, and Postgres would end it and let the
// locks go early.
func holdRows(t *testing.T, pool *pgxpool.Pool, ids ...conversation.ID) pgx.Tx {
	t.Helper()
	tx := lockRows(t, pool, ids...)
	if _, err := tx.Exec(context.Background(), `SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
		t.Fatal(err)
	}
	return tx
}

// sendLocked posts key from sender on the locked way, in the background.
func sendLocked(repo *postgres.ConversationRepository, id conversation.ID, key string, sender conversation.UserID, out chan<- sendResult) {
	postgres.MarkContended(repo, id)
	go func() {
		var m conversation.Message
		err := repo.Update(context.Background(), id, func(c *conversation.Conversation) (err error) {
			m, err = c.PostMessage(post(key, sender))
			return err
		})
		out <- sendResult{key, m, err}
	}()
}

// busyCommitters makes both group transactions of repo wait on row locks held elsewhere (for
// up to lockTimeout), and returns the release of those locks and the results of the two writes.
func busyCommitters(t *testing.T, repo *postgres.ConversationRepository, pool *pgxpool.Pool, alice conversation.UserID,
	lockTimeout time.Duration) (func(), chan sendResult) {
	t.Helper()
	postgres.SetGroupLockTimeout(repo, lockTimeout)
	x, y := startConversation(t, repo, alice), startConversation(t, repo, alice)
	locks := holdRows(t, pool, x.ID(), y.ID())
	release := func() { _ = locks.Rollback(context.Background()) }
	out := make(chan sendResult, 2)
	for i, send := range []struct {
		id  conversation.ID
		key string
	}{{x.ID(), "x1"}, {y.ID(), "y1"}} {
		sendLocked(repo, send.id, send.key, alice, out)
		waitForLockWaits(t, pool, i+1, "a group transaction to wait on its row lock")
	}
	return release, out
}

func TestLockedWritesThatArriveTogetherCommitInOneTransaction(t *testing.T) {
	repo, pool, sig := newRepo(t)
	alice := conversation.UserID(uuid.NewString())
	release, first := busyCommitters(t, repo, pool, alice, time.Minute)

	// given four sends to four conversations wait behind the two busy group transactions
	var ids []string
	out := make(chan sendResult, 4)
	for range 4 {
		c := startConversation(t, repo, alice)
		ids = append(ids, string(c.ID()))
		sendLocked(repo, c.ID(), "m1", alice, out)
	}
	testinfra.Eventually(t, 5*time.Second, "four writes to wait", func() bool { return postgres.GroupWaiting(repo) == 4 })

	// when the row locks are let go
	release()

	// then every send commits with seq 1, the four in one transaction
	for range 2 {
		if r := <-first; r.err != nil || r.msg.Seq != 1 {
			t.Fatalf("%s: seq %d, %v", r.key, r.msg.Seq, r.err)
		}
	}
	for range 4 {
		if r := <-out; r.err != nil || r.msg.Seq != 1 {
			t.Fatalf("%s: seq %d, %v", r.key, r.msg.Seq, r.err)
		}
	}
	if msgs, txs := transactionsOf(t, pool, ids); msgs != 4 || txs != 1 {
		t.Fatalf("%d messages in %d transactions, want 4 in 1", msgs, txs)
	}
	if st := repo.GroupCommitStats(); st.Groups != 3 || st.Writes != 6 || st.Failed != 0 {
		t.Fatalf("group stats %+v, want 3 groups of 6 writes, none failed", st)
	}
	if n := sig.n.Load(); n != 6 {
		t.Fatalf("the fast path heard of %d messages, want 6", n)
	}
}

func TestAGroupWithARepeatedSendIsMadeAgainWriteByWrite(t *testing.T) {
	repo, pool, _ := newRepo(t)
	ctx := context.Background()
	alice, mallory := conversation.UserID(uuid.NewString()), conversation.UserID(uuid.NewString())
	repeated := conversationWithMessage(t, repo, alice, "r1")
	release, first := busyCommitters(t, repo, pool, alice, time.Minute)

	// given, waiting together: two new sends, a repeat of a stored send, and a non-participant's
	out := make(chan sendResult, 4)
	fresh1, fresh2, refused := startConversation(t, repo, alice), startConversation(t, repo, alice), startConversation(t, repo, alice)
	sendLocked(repo, fresh1.ID(), "f1", alice, out)
	sendLocked(repo, repeated.ID(), "r1", alice, out)
	sendLocked(repo, fresh2.ID(), "f2", alice, out)
	sendLocked(repo, refused.ID(), "m1", mallory, out)
	testinfra.Eventually(t, 5*time.Second, "four writes to wait", func() bool { return postgres.GroupWaiting(repo) == 4 })

	// when the row locks are let go
	release()
	<-first
	<-first

	// then the repeat finds its original, the non-participant is refused, and the new sends
	// commit, each once, with seq 1
	got := collect(out, 4)
	requireOriginal(t, got, "r1")
	if err := got["m1"].err; !errors.Is(err, conversation.ErrNotFound) {
		t.Fatalf("the non-participant: %v, want not found", err)
	}
	requireFirst(t, got, "f1", "f2")
	rows, err := pool.Query(ctx, `SELECT count(*) FROM messages WHERE conversation_id = ANY($1::uuid[]) GROUP BY conversation_id`,
		[]string{string(fresh1.ID()), string(fresh2.ID()), string(repeated.ID()), string(refused.ID())})
	if err != nil {
		t.Fatal(err)
	}
	counts, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 3 || counts[0] != 1 || counts[1] != 1 || counts[2] != 1 {
		t.Fatalf("messages per conversation %v, want one in each of three", counts)
	}
	if st := repo.GroupCommitStats(); st.Failed != 1 {
		t.Fatalf("group stats %+v, want the group of four failed once", st)
	}
}

func TestAConversationLockedElsewhereDoesNotHoldUpTheOthers(t *testing.T) {
	repo, pool, _ := newRepo(t)
	alice := conversation.UserID(uuid.NewString())

	// given both group transactions wait on conversations another session keeps locked
	_, stuck := busyCommitters(t, repo, pool, alice, 100*time.Millisecond)

	// when a third conversation is written the locked way
	free := startConversation(t, repo, alice)
	out := make(chan sendResult, 1)
	start := time.Now()
	sendLocked(repo, free.ID(), "f1", alice, out)

	// then it commits while the other two still wait: their groups gave up on the locks and
	// they wait on their own
	requireFreeFirst(t, out, stuck, "the free conversation's send waited on the others' row locks")
	t.Logf("the free conversation's send took %v", time.Since(start).Round(time.Millisecond))
	if st := repo.GroupCommitStats(); st.Failed < 1 {
		t.Fatalf("group stats %+v, want a waiting group given up", st)
	}
}
