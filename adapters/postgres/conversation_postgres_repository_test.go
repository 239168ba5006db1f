package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
)

type countingSignal struct{ n atomic.Int64 }

func (s *countingSignal) Committed(msgs []postgres.CommittedMessage) { s.n.Add(int64(len(msgs))) }

func newRepo(t testing.TB) (*postgres.ConversationRepository, *pgxpool.Pool, *countingSignal) {
	t.Helper()
	pool := testinfra.NewMigratedPool(t)
	sig := &countingSignal{}
	return postgres.NewConversationRepository(pool, sig), pool, sig
}

func startConversation(t testing.TB, repo *postgres.ConversationRepository, users ...conversation.UserID) *conversation.Conversation {
	t.Helper()
	c, err := conversation.Start(conversation.ID(uuid.NewString()), "t", users[0], users[1:], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func post(clientMsgID string, sender conversation.UserID) conversation.NewMessageDraft {
	return conversation.NewMessageDraft{ID: uuid.NewString(), SenderID: sender, ClientMsgID: clientMsgID,
		Body: json.RawMessage(`{"t":"x"}`), At: time.Now()}
}

// What is stored and loaded is the contract suite's (repository_contract_test.go); this checks
// that the state row a load reads and the events table say the same, and that a load reads
// only the state row.
func TestStateRowEqualsReplayedHistory(t *testing.T) {
	repo, pool, _ := newRepo(t)
	ctx := context.Background()
	alice, bob := conversation.UserID(uuid.NewString()), conversation.UserID(uuid.NewString())

	// given a conversation with participant changes and messages
	c := startConversation(t, repo, alice)
	steps := []func(c *conversation.Conversation) error{
		func(c *conversation.Conversation) error { return c.AddParticipant(alice, bob, time.Now()) },
		func(c *conversation.Conversation) error { _, err := c.PostMessage(post("1", alice)); return err },
		func(c *conversation.Conversation) error { _, err := c.PostMessage(post("2", bob)); return err },
		func(c *conversation.Conversation) error { return c.RemoveParticipant(alice, bob, time.Now()) },
		func(c *conversation.Conversation) error { _, err := c.PostMessage(post("3", alice)); return err },
	}
	for _, step := range steps {
		if err := repo.Update(ctx, c.ID(), step); err != nil {
			t.Fatal(err)
		}
	}

	// when it is loaded (from its state row) and rebuilt from its events
	loaded, err := repo.Get(ctx, c.ID())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT event_type, data FROM events WHERE aggregate_id = $1 ORDER BY version`, string(c.ID()))
	if err != nil {
		t.Fatal(err)
	}
	var history []conversation.Event
	for rows.Next() {
		var typ string
		var data []byte
		if err := rows.Scan(&typ, &data); err != nil {
			t.Fatal(err)
		}
		e, err := postgres.DecodeConversationEvent(typ, data)
		if err != nil {
			t.Fatal(err)
		}
		history = append(history, e)
	}

	// then both agree, at version 6
	replayed := conversation.FromEvents(history).Snapshot()
	got := loaded.Snapshot()
	if !reflect.DeepEqual(got, replayed) || got.Version != 6 {
		t.Fatalf("state row %+v != replayed history %+v (want version 6)", got, replayed)
	}

	// when the events are gone, then a load still gives the same: it never read them
	if _, err := pool.Exec(ctx, `DELETE FROM events WHERE aggregate_id = $1`, string(c.ID())); err != nil {
		t.Fatal(err)
	}
	if again, err := repo.Get(ctx, c.ID()); err != nil || !reflect.DeepEqual(again.Snapshot(), got) {
		t.Fatalf("load without events: %v, %+v; want %+v", err, again, got)
	}
}

// A send's event data is built in SQL around the message's JSON (postStatement). It must be the
// bytes encodeConversationEvent writes for the same event, whichever way the send was written.
func TestTheSendPathStoresTheEventDataEncodeWrites(t *testing.T) {
	repo, pool, _ := newRepo(t)
	ctx := context.Background()
	alice := conversation.UserID(uuid.NewString())
	c := startConversation(t, repo, alice)
	send := func(clientMsgID string) {
		t.Helper()
		d := post(clientMsgID, alice)
		d.Body = json.RawMessage(`{"text":"<hi> \"é\" ✓","n":[1,2.5,null]}`)
		if err := repo.Update(ctx, c.ID(), func(c *conversation.Conversation) error { _, err := c.PostMessage(d); return err }); err != nil {
			t.Fatal(err)
		}
	}

	// given a send on remembered state, and one the locked way (another instance wrote the
	// conversation meanwhile)
	send("remembered")
	postgres.MarkContended(repo, c.ID())
	send("locked")
	if locked := repo.GroupCommitStats().Writes; locked != 1 {
		t.Fatalf("%d sends went the locked way, want the second one", locked)
	}

	// then each stored MessagePosted's data is what encoding its event gives, byte for byte
	rows, err := pool.Query(ctx, `SELECT event_type, data FROM events WHERE aggregate_id = $1 ORDER BY version`, string(c.ID()))
	if err != nil {
		t.Fatal(err)
	}
	var typ string
	var data []byte
	posts := 0
	if _, err := pgx.ForEachRow(rows, []any{&typ, &data}, func() error {
		e, err := postgres.DecodeConversationEvent(typ, data)
		if err != nil {
			return err
		}
		if _, ok := e.(conversation.MessagePosted); !ok {
			return nil
		}
		posts++
		want, err := postgres.EncodeConversationEvent(e)
		if err != nil {
			return err
		}
		if string(data) != string(want) {
			t.Errorf("stored data =\n%s\nencoding the event gives\n%s", data, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if posts != 2 {
		t.Fatalf("%d messages stored as events, want 2", posts)
	}
}

func TestUpdateRetriesWithAFreshAggregateAfterAConflict(t *testing.T) {
	repo, pool, _ := newRepo(t)
	ctx := context.Background()
	alice := conversation.UserID(uuid.NewString())
	c := startConversation(t, repo, alice)

	// given another writer took version 2, and lets go only while the second locked try decides
	if _, err := pool.Exec(ctx, `INSERT INTO events (aggregate_id, version, aggregate_type, event_id, event_type, data, occurred_at)
		VALUES ($1, 2, 'conversation', $2, 'test.intruder.v1', '{}', now())`, string(c.ID()), uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err := repo.Update(ctx, c.ID(), func(c *conversation.Conversation) error {
		// calls: 1 on remembered state (refused by the events key), 2 on a fresh read before the
		// row lock, 3 the first locked try (refused again), 4 the second
		calls++
		if calls == 4 {
			if _, err := pool.Exec(ctx, `DELETE FROM events WHERE aggregate_id = $1 AND event_type = 'test.intruder.v1'`, string(c.ID())); err != nil {
				t.Fatal(err)
			}
		}
		_, err := c.PostMessage(post("x", alice))
		return err
	})

	// then the update succeeded on its second locked try, with seq 1
	if err != nil || calls != 4 {
		t.Fatalf("update: err %v after %d calls, want success after 4", err, calls)
	}
	loaded, _ := repo.Get(ctx, c.ID())
	if loaded.LastSeq() != 1 || loaded.Version() != 2 {
		t.Fatalf("loaded last seq %d version %d, want 1 and 2", loaded.LastSeq(), loaded.Version())
	}
}

func TestUpdateGivesUpAfterBoundedRetries(t *testing.T) {
	repo, pool, _ := newRepo(t)
	ctx := context.Background()
	alice := conversation.UserID(uuid.NewString())
	c := startConversation(t, repo, alice)

	// given version 2 is permanently taken by someone else
	if _, err := pool.Exec(ctx, `INSERT INTO events (aggregate_id, version, aggregate_type, event_id, event_type, data, occurred_at)
		VALUES ($1, 2, 'conversation', $2, 'test.intruder.v1', '{}', now())`, string(c.ID()), uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err := repo.Update(ctx, c.ID(), func(c *conversation.Conversation) error {
		calls++
		_, err := c.PostMessage(post("x", alice))
		return err
	})

	// then it stops with a conflict instead of looping
	if !errors.Is(err, conversation.ErrConcurrentUpdate) {
		t.Fatalf("err = %v, want ErrConcurrentUpdate", err)
	}
	if calls < 2 || calls > 10 {
		t.Fatalf("fn ran %d times, want a small bounded number", calls)
	}
	var msgs int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE conversation_id = $1`, string(c.ID())).Scan(&msgs)
	if msgs != 0 {
		t.Fatalf("a failed update left %d messages", msgs)
	}
}

// Two repositories on one database are two instances: each remembers what it wrote last.

func TestRememberedStateDoesNotLetARemovedParticipantPost(t *testing.T) {
	onA, pool, _ := newRepo(t)
	onB := postgres.NewConversationRepository(pool, &countingSignal{})
	ctx := context.Background()
	alice, bob := conversation.UserID(uuid.NewString()), conversation.UserID(uuid.NewString())
	c := startConversation(t, onA, alice, bob)

	// given instance A wrote bob's message last, and instance B then removed bob
	if err := onA.Update(ctx, c.ID(), func(c *conversation.Conversation) error { _, err := c.PostMessage(post("b1", bob)); return err }); err != nil {
		t.Fatal(err)
	}
	if err := onB.Update(ctx, c.ID(), func(c *conversation.Conversation) error { return c.RemoveParticipant(alice, bob, time.Now()) }); err != nil {
		t.Fatal(err)
	}

	// when bob posts through A, new and repeated
	for _, key := range []string{"b2", "b1"} {
		err := onA.Update(ctx, c.ID(), func(c *conversation.Conversation) error { _, err := c.PostMessage(post(key, bob)); return err })
		// then A decides on fresh state: not found, and the repeat does not reveal the original
		var dup *conversation.DuplicateMessageError
		if errors.As(err, &dup) || !errors.Is(err, conversation.ErrNotFound) {
			t.Fatalf("bob's post %q through A after his removal: %v, want not found", key, err)
		}
	}
	loaded, _ := onA.Get(ctx, c.ID())
	if loaded.LastSeq() != 1 {
		t.Fatalf("last seq %d, want 1", loaded.LastSeq())
	}
}

func TestRememberedStateLearnsOfAParticipantAddedElsewhere(t *testing.T) {
	onA, pool, _ := newRepo(t)
	onB := postgres.NewConversationRepository(pool, &countingSignal{})
	ctx := context.Background()
	alice, carol := conversation.UserID(uuid.NewString()), conversation.UserID(uuid.NewString())
	c := startConversation(t, onA, alice)
	if err := onA.Update(ctx, c.ID(), func(c *conversation.Conversation) error { _, err := c.PostMessage(post("a1", alice)); return err }); err != nil {
		t.Fatal(err)
	}

	// when B adds carol and carol posts through A
	if err := onB.Update(ctx, c.ID(), func(c *conversation.Conversation) error { return c.AddParticipant(alice, carol, time.Now()) }); err != nil {
		t.Fatal(err)
	}
	var m conversation.Message
	err := onA.Update(ctx, c.ID(), func(c *conversation.Conversation) (err error) { m, err = c.PostMessage(post("c1", carol)); return err })

	// then the post succeeds with the next seq
	if err != nil || m.Seq != 2 {
		t.Fatalf("carol's post: seq %d, %v; want seq 2", m.Seq, err)
	}
}

func TestTwoInstancesSendingToOneConversationKeepSeqGaplessAndInOutboxOrder(t *testing.T) {
	onA, pool, _ := newRepo(t)
	onB := postgres.NewConversationRepository(pool, &countingSignal{})
	ctx := context.Background()
	alice := conversation.UserID(uuid.NewString())
	c := startConversation(t, onA, alice)

	// when both instances send 60 messages each, four writers at once
	const perWriter = 30
	errs := make(chan error, 4)
	for w, repo := range []*postgres.ConversationRepository{onA, onA, onB, onB} {
		go func() {
			for i := range perWriter {
				key := fmt.Sprintf("w%d-%d", w, i)
				if err := repo.Update(ctx, c.ID(), func(c *conversation.Conversation) error { _, err := c.PostMessage(post(key, alice)); return err }); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// then seq runs 1..120 without a gap, and the outbox holds them in seq order by id
	var n, maxSeq int64
	if err := pool.QueryRow(ctx, `SELECT count(*), max(seq) FROM messages WHERE conversation_id = $1`, string(c.ID())).Scan(&n, &maxSeq); err != nil {
		t.Fatal(err)
	}
	if n != 4*perWriter || maxSeq != 4*perWriter {
		t.Fatalf("%d messages with max seq %d, want %d of each", n, maxSeq, 4*perWriter)
	}
	rows, err := pool.Query(ctx, `SELECT seq FROM outbox WHERE conversation_id = $1 ORDER BY id`, string(c.ID()))
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("outbox in id order has seq %d at position %d", s, i)
		}
	}
}

func TestARefusedWriterNeverTakesTheRowLock(t *testing.T) {
	repo, pool, _ := newRepo(t)
	ctx := context.Background()
	alice, mallory := conversation.UserID(uuid.NewString()), conversation.UserID(uuid.NewString())
	c := startConversation(t, repo, alice)

	// given another session holds the conversation's row lock
	lockRows(t, pool, c.ID())

	// when a non-participant posts (this instance remembers no state for the conversation)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := repo.Update(short, c.ID(), func(c *conversation.Conversation) error {
		_, err := c.PostMessage(post("m-1", mallory))
		return err
	})

	// then the refusal comes at once, without waiting for the lock
	if !errors.Is(err, conversation.ErrNotFound) {
		t.Fatalf("a non-participant's post: %v, want ErrNotFound without waiting for the row lock", err)
	}
}

// LastSeqs reads the last committed seq of the conversations that exist, in one query, keyed by
// the ids asked for (an upper-case id is found too); an unknown conversation is left out.
func TestLastSeqsReadsEachExistingConversationsLastSeq(t *testing.T) {
	ctx := context.Background()
	repo, pool, _ := newRepo(t)
	alice := conversation.UserID(uuid.NewString())
	busy, quiet := startConversation(t, repo, alice), startConversation(t, repo, alice)
	for i := range 3 {
		if err := repo.Update(ctx, busy.ID(), func(c *conversation.Conversation) error {
			_, err := c.PostMessage(post(fmt.Sprint(i), alice))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	upper := conversation.ID(strings.ToUpper(string(busy.ID())))
	unknown := conversation.ID(uuid.NewString())

	got, err := postgres.NewReadModel(pool).LastSeqs(ctx, []conversation.ID{upper, quiet.ID(), unknown})

	want := map[conversation.ID]int64{upper: 3, quiet.ID(): 0}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("LastSeqs: %v %v, want %v", got, err, want)
	}
}
