package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
)

// One-statement sends (on remembered state) that wait for Postgres at the same moment go in one
// batch. These tests keep both of an instance's batches waiting on row locks another session
// holds, so the sends behind them wait and go together.

// sendRemembered posts key from sender the one-statement way, in the background.
func sendRemembered(repo *postgres.ConversationRepository, id conversation.ID, key string, sender conversation.UserID, out chan<- sendResult) {
	go func() {
		var m conversation.Message
		err := repo.Update(context.Background(), id, func(c *conversation.Conversation) (err error) {
			m, err = c.PostMessage(post(key, sender))
			return err
		})
		out <- sendResult{key, m, err}
	}()
}

// waitForLockWaits waits until at least n sessions of the test's database wait for a lock.
func waitForLockWaits(t *testing.T, pool *pgxpool.Pool, n int, what string) {
	t.Helper()
	testinfra.Eventually(t, 5*time.Second, what, func() bool {
		var waiting int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatalf("counting the sessions that wait for a lock: %v", err)
		}
		return waiting >= n
	})
}

// requireFreeFirst fails unless the free conversation's send (out) commits with seq 1 within
// 5 s and before any send to a locked conversation (stuck) ends; late says what went wrong then.
func requireFreeFirst(t *testing.T, out, stuck <-chan sendResult, late string) {
	t.Helper()
	select {
	case r := <-out:
		if r.err != nil || r.msg.Seq != 1 {
			t.Fatalf("the free conversation's send: seq %d, %v", r.msg.Seq, r.err)
		}
	case r := <-stuck:
		t.Fatalf("a send to a locked conversation ended first: %+v", r)
	case <-time.After(5 * time.Second):
		t.Fatal(late)
	}
}

// busyBatches makes both batches of repo wait on row locks held elsewhere, one lock each, and
// returns the releases of those locks and the results of the two sends.
func busyBatches(t *testing.T, repo *postgres.ConversationRepository, pool *pgxpool.Pool, alice conversation.UserID) (release [2]func(), first chan sendResult) {
	t.Helper()
	postgres.SetBatchSlotHold(repo, time.Minute) // the batches keep their turns as long as the test needs
	first = make(chan sendResult, 2)
	for i := range 2 {
		c := startConversation(t, repo, alice)
		lock := holdRows(t, pool, c.ID())
		release[i] = func() { _ = lock.Rollback(context.Background()) }
		sendRemembered(repo, c.ID(), "busy", alice, first)
		waitForLockWaits(t, pool, i+1, "a batch to wait on its row lock")
	}
	return release, first
}

func transactionsOf(t *testing.T, pool *pgxpool.Pool, ids []string) (msgs, txs int) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT xmin::text) FROM messages
		WHERE conversation_id = ANY($1::uuid[])`, ids).Scan(&msgs, &txs); err != nil {
		t.Fatal(err)
	}
	return msgs, txs
}

func TestSendsThatWaitTogetherCommitInOneTransactionAndAStaleOneOnItsOwn(t *testing.T) {
	repo, pool, sig := newRepo(t)
	ctx := context.Background()
	alice := conversation.UserID(uuid.NewString())
	release, first := busyBatches(t, repo, pool, alice)

	// given a conversation another instance wrote since this one did (its remembered state is stale)
	stale := startConversation(t, repo, alice)
	other := postgres.NewConversationRepository(pool, &countingSignal{})
	if err := other.Update(ctx, stale.ID(), func(c *conversation.Conversation) error { _, err := c.PostMessage(post("o1", alice)); return err }); err != nil {
		t.Fatal(err)
	}
	// and four sends waiting behind the busy batches, three new and one to that conversation
	var ids []string
	out := make(chan sendResult, 4)
	for range 3 {
		c := startConversation(t, repo, alice)
		ids = append(ids, string(c.ID()))
		sendRemembered(repo, c.ID(), "m1", alice, out)
	}
	sendRemembered(repo, stale.ID(), "s1", alice, out)
	testinfra.Eventually(t, 5*time.Second, "four sends to wait", func() bool { return postgres.PostWaiting(repo) == 4 })

	// when one batch's row lock is let go
	release[0]()

	// then the four go in one batch: the three new ones commit in one transaction with seq 1,
	// and the stale one writes nothing there and commits after the other instance's, with seq 2
	got := collect(out, 4)
	for key, r := range got {
		want := int64(1)
		if key == "s1" {
			want = 2
		}
		if r.err != nil || r.msg.Seq != want {
			t.Fatalf("%s: seq %d, %v; want seq %d", key, r.msg.Seq, r.err, want)
		}
	}
	if msgs, txs := transactionsOf(t, pool, ids); msgs != 3 || txs != 1 {
		t.Fatalf("%d messages in %d transactions, want 3 in 1", msgs, txs)
	}
	if r := <-first; r.err != nil || r.msg.Seq != 1 {
		t.Fatalf("the first busy send: seq %d, %v", r.msg.Seq, r.err)
	}
	release[1]()
	if r := <-first; r.err != nil || r.msg.Seq != 1 {
		t.Fatalf("the second busy send: seq %d, %v", r.msg.Seq, r.err)
	}
	if st := repo.PostBatchStats(); st.Batches != 1 || st.Posts != 4 || st.Failed != 0 {
		t.Fatalf("batch stats %+v, want one batch of 4, none failed", st)
	}
	if n := sig.n.Load(); n != 6 {
		t.Fatalf("the fast path heard of %d messages, want 6 (this instance's)", n)
	}
}

func TestABatchWithARepeatedSendIsSentAgainSendBySend(t *testing.T) {
	repo, pool, _ := newRepo(t)
	alice := conversation.UserID(uuid.NewString())
	repeated := startConversation(t, repo, alice)
	if err := repo.Update(context.Background(), repeated.ID(), func(c *conversation.Conversation) error {
		_, err := c.PostMessage(post("r1", alice))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	release, first := busyBatches(t, repo, pool, alice)

	// given, waiting together: two new sends and a repeat of a stored send
	out := make(chan sendResult, 3)
	fresh1, fresh2 := startConversation(t, repo, alice), startConversation(t, repo, alice)
	sendRemembered(repo, fresh1.ID(), "f1", alice, out)
	sendRemembered(repo, repeated.ID(), "r1", alice, out)
	sendRemembered(repo, fresh2.ID(), "f2", alice, out)
	testinfra.Eventually(t, 5*time.Second, "three sends to wait", func() bool { return postgres.PostWaiting(repo) == 3 })

	// when a batch's row lock is let go
	release[0]()
	<-first

	// then the repeat finds its original and the new sends commit once each, with seq 1, each
	// in a transaction of its own (the batch failed as a whole and was sent again send by send)
	got := collect(out, 3)
	requireOriginal(t, got, "r1")
	requireFirst(t, got, "f1", "f2")
	ids := []string{string(fresh1.ID()), string(fresh2.ID()), string(repeated.ID())}
	if msgs, txs := transactionsOf(t, pool, ids); msgs != 3 || txs != 3 {
		t.Fatalf("%d messages in %d transactions, want 3 in 3", msgs, txs)
	}
	if st := repo.PostBatchStats(); st.Failed != 1 || st.Batches != 0 {
		t.Fatalf("batch stats %+v, want the batch of three failed once and none committed", st)
	}
	release[1]()
	<-first
}

func TestAConversationLockedElsewhereDoesNotHoldUpTheSendsBatchedWithIt(t *testing.T) {
	repo, pool, _ := newRepo(t)
	alice := conversation.UserID(uuid.NewString())
	postgres.SetBatchLockTimeout(repo, 100*time.Millisecond)
	release, first := busyBatches(t, repo, pool, alice)

	// given a send to a conversation another session keeps locked and one to a free
	// conversation wait together behind the busy batches
	locked, free := startConversation(t, repo, alice), startConversation(t, repo, alice)
	lock := holdRows(t, pool, locked.ID())
	stuck, out := make(chan sendResult, 1), make(chan sendResult, 1)
	sendRemembered(repo, locked.ID(), "l1", alice, stuck)
	sendRemembered(repo, free.ID(), "f1", alice, out)
	testinfra.Eventually(t, 5*time.Second, "two sends to wait", func() bool { return postgres.PostWaiting(repo) == 2 })

	// when a busy batch ends and hands its turn on
	release[0]()
	<-first

	// then the free conversation's send commits while the other still waits: their batch gave
	// up on the lock and each was sent alone
	requireFreeFirst(t, out, stuck, "the free conversation's send waited on the other's row lock")
	if st := repo.PostBatchStats(); st.Failed != 1 {
		t.Fatalf("batch stats %+v, want the batch of two given up once", st)
	}

	// and the locked one commits once its lock is let go
	_ = lock.Rollback(context.Background())
	if r := <-stuck; r.err != nil || r.msg.Seq != 1 {
		t.Fatalf("the send to the once locked conversation: seq %d, %v", r.msg.Seq, r.err)
	}
	release[1]()
	<-first
}

func TestASendStuckOnARowLockHoldsUpNoSendToAnotherConversation(t *testing.T) {
	repo, pool, _ := newRepo(t)
	alice := conversation.UserID(uuid.NewString())

	// given a send on remembered state waiting for a row lock another session holds
	locked := startConversation(t, repo, alice)
	lock := holdRows(t, pool, locked.ID())
	stuck := make(chan sendResult, 1)
	sendRemembered(repo, locked.ID(), "l1", alice, stuck)
	waitForLockWaits(t, pool, 1, "the send to wait on its row lock")

	// when this instance sends to 50 other conversations
	out := make(chan sendResult, 50)
	for i := range 50 {
		c := startConversation(t, repo, alice)
		sendRemembered(repo, c.ID(), fmt.Sprint("o", i), alice, out)
	}

	// then every one of them commits while the first still waits
	deadline := time.After(10 * time.Second)
	for range 50 {
		select {
		case r := <-out:
			if r.err != nil || r.msg.Seq != 1 {
				t.Fatalf("%s: seq %d, %v", r.key, r.msg.Seq, r.err)
			}
		case r := <-stuck:
			t.Fatalf("the send to the locked conversation ended before the others: %+v", r)
		case <-deadline:
			t.Fatal("a send to another conversation waited behind the one stuck on a row lock")
		}
	}

	// and the stuck one commits once the lock is let go
	_ = lock.Rollback(context.Background())
	if r := <-stuck; r.err != nil || r.msg.Seq != 1 {
		t.Fatalf("the send to the once locked conversation: seq %d, %v", r.msg.Seq, r.err)
	}
}

func TestSendsStuckOnRowLocksKeepTheInstancesTurnsForHalfASecondAtMost(t *testing.T) {
	repo, pool, _ := newRepo(t)
	alice := conversation.UserID(uuid.NewString())

	// given both of the instance's turns taken by sends waiting on row locks held elsewhere
	locked := []*conversation.Conversation{startConversation(t, repo, alice), startConversation(t, repo, alice)}
	stuck := make(chan sendResult, 2)
	for i, c := range locked {
		lock := holdRows(t, pool, c.ID())
		t.Cleanup(func() { _ = lock.Rollback(context.Background()) })
		sendRemembered(repo, c.ID(), fmt.Sprint("l", i), alice, stuck)
	}
	waitForLockWaits(t, pool, 2, "both sends to wait on their row locks")

	// when the instance sends to a free conversation
	free := startConversation(t, repo, alice)
	out := make(chan sendResult, 1)
	sendRemembered(repo, free.ID(), "f1", alice, out)

	// then it commits while both still wait: they handed their turns on after half a second
	requireFreeFirst(t, out, stuck, "the free conversation's send waited behind the two stuck on row locks")
	select {
	case r := <-stuck:
		t.Fatalf("a send to a locked conversation ended while its lock was held: %+v", r)
	default:
	}
}

// Every transaction of the one-statement way is counted with the time it took, from being sent
// to Postgres's answer, commit included: a send that waits 200 ms for a row lock held elsewhere
// is one transaction of at least 200 ms (what nova_send_transaction_seconds_total adds up).
func TestEachSendTransactionIsCountedWithItsRoundTrip(t *testing.T) {
	repo, pool, _ := newRepo(t)
	ctx := context.Background()
	alice := conversation.UserID(uuid.NewString())
	c := startConversation(t, repo, alice)
	before := repo.PostBatchStats()

	start := time.Now()
	for i := range 2 {
		err := repo.Update(ctx, c.ID(), func(c *conversation.Conversation) error {
			_, err := c.PostMessage(post(fmt.Sprint("alone", i), alice))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	two := repo.PostBatchStats()
	if n, us := two.Transactions-before.Transactions, two.TransactionMicros-before.TransactionMicros; n != 2 || us <= 0 || us > took.Microseconds() {
		t.Fatalf("two sends alone: %d transactions of %d µs in all, want 2 taking between 0 and the %v the sends took", n, us, took)
	}

	lock := holdRows(t, pool, c.ID())
	out := make(chan sendResult, 1)
	sendRemembered(repo, c.ID(), "late", alice, out)
	waitForLockWaits(t, pool, 1, "the send to wait on its row lock")
	time.Sleep(200 * time.Millisecond)
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-out; r.err != nil || r.msg.Seq != 3 {
		t.Fatalf("the send behind the row lock: seq %d, %v", r.msg.Seq, r.err)
	}
	three := repo.PostBatchStats()
	if n, us := three.Transactions-two.Transactions, three.TransactionMicros-two.TransactionMicros; n != 1 || us < 200_000 {
		t.Fatalf("the send behind the row lock: %d transactions of %d µs, want 1 of at least 200 ms", n, us)
	}
}
