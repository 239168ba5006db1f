package repositorytest

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

// RunClientSyncRepositorySuite runs the clientsync.Repository contract; newRepo gives each test
// a repository on empty storage.
func RunClientSyncRepositorySuite(t *testing.T, newRepo func(t *testing.T) clientsync.Repository) {
	tests := []struct {
		name string
		run  func(t *testing.T, repo clientsync.Repository)
	}{
		{"ANewCursorStartsAtZeroAndIsNotStoredUntilItMoves", aNewCursorStartsAtZero},
		{"CursorsAreKeptPerUserClientAndConversation", cursorsAreKeptPerKey},
		{"TheCursorOnlyMovesForward", theCursorOnlyMovesForward},
		{"ARefusedUpdateStoresNothing", aRefusedCursorUpdateStoresNothing},
		{"ConcurrentAcknowledgementsKeepTheHighest", concurrentAcknowledgementsKeepTheHighest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newRepo(t)) })
	}
}

func newKey() clientsync.Key {
	return clientsync.Key{User: newUser(), Client: clientsync.ClientID(uuid.NewString()), Conversation: conversation.ID(uuid.NewString())}
}

// cursor is what Update hands fn for key: the stored state, recording nothing.
func cursor(t *testing.T, repo clientsync.Repository, key clientsync.Key) *clientsync.ClientSync {
	t.Helper()
	var got *clientsync.ClientSync
	if err := repo.Update(context.Background(), key, func(c *clientsync.ClientSync) error { got = c; return nil }); err != nil {
		t.Fatal(err)
	}
	if got.Key() != key || got.HasChanges() {
		t.Fatalf("Update handed fn the cursor of %+v with %d changes, want %+v as stored", got.Key(), len(got.Changes()), key)
	}
	return got
}

func ack(repo clientsync.Repository, key clientsync.Key, seq int64, at time.Time) error {
	return repo.Update(context.Background(), key, func(c *clientsync.ClientSync) error { return c.Acknowledge(seq, at) })
}

func mustAck(t *testing.T, repo clientsync.Repository, key clientsync.Key, seq int64) {
	t.Helper()
	if err := ack(repo, key, seq, time.Now()); err != nil {
		t.Fatalf("ack %d: %v", seq, err)
	}
}

func ackedSeqs(t *testing.T, repo clientsync.Repository, user conversation.UserID, client clientsync.ClientID) map[conversation.ID]int64 {
	t.Helper()
	got, err := repo.AckedSeqs(context.Background(), user, client)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func aNewCursorStartsAtZero(t *testing.T, repo clientsync.Repository) {
	key := newKey()

	// when a cursor never acknowledged is loaded
	c := cursor(t, repo, key)

	// then it is at zero, version 0, and loading it stored nothing
	if c.AckedSeq() != 0 || c.Version() != 0 || !c.SyncedAt().IsZero() {
		t.Fatalf("new cursor at seq %d version %d synced %v", c.AckedSeq(), c.Version(), c.SyncedAt())
	}
	if got := ackedSeqs(t, repo, key.User, key.Client); len(got) != 0 {
		t.Fatalf("cursors %v after only loading, want none", got)
	}
}

func cursorsAreKeptPerKey(t *testing.T, repo clientsync.Repository) {
	key := newKey()
	otherConv := key
	otherConv.Conversation = conversation.ID(uuid.NewString())
	otherClient := key
	otherClient.Client = clientsync.ClientID(uuid.NewString())
	otherUser := key
	otherUser.User = newUser()

	// when one client acknowledges two conversations, and another client and another user one each
	mustAck(t, repo, key, 5)
	mustAck(t, repo, otherConv, 9)
	mustAck(t, repo, otherClient, 2)
	mustAck(t, repo, otherUser, 3)

	// then the client's cursors are its own, by conversation
	want := map[conversation.ID]int64{key.Conversation: 5, otherConv.Conversation: 9}
	if got := ackedSeqs(t, repo, key.User, key.Client); !maps.Equal(got, want) {
		t.Fatalf("cursors %v, want %v", got, want)
	}
	if got := ackedSeqs(t, repo, key.User, otherClient.Client); !maps.Equal(got, map[conversation.ID]int64{key.Conversation: 2}) {
		t.Fatalf("the other client's cursors %v", got)
	}
	if got := ackedSeqs(t, repo, otherUser.User, key.Client); !maps.Equal(got, map[conversation.ID]int64{key.Conversation: 3}) {
		t.Fatalf("the other user's cursors %v", got)
	}
}

func theCursorOnlyMovesForward(t *testing.T, repo clientsync.Repository) {
	key := newKey()
	at := time.Now().UTC().Truncate(time.Microsecond)

	// given a cursor acknowledged up to 5
	if err := ack(repo, key, 5, at); err != nil {
		t.Fatal(err)
	}

	// when it is acknowledged at 3 and at 5 again
	mustAck(t, repo, key, 3)
	mustAck(t, repo, key, 5)

	// then it stays at 5, at version 1, with the time of the first acknowledgement
	c := cursor(t, repo, key)
	if c.AckedSeq() != 5 || c.Version() != 1 || !c.SyncedAt().Equal(at) {
		t.Fatalf("cursor at seq %d version %d synced %v, want 5, 1, %v", c.AckedSeq(), c.Version(), c.SyncedAt(), at)
	}

	// when it is acknowledged at 8, then it moves there, version 2
	mustAck(t, repo, key, 8)
	if c := cursor(t, repo, key); c.AckedSeq() != 8 || c.Version() != 2 || !c.SyncedAt().After(at) {
		t.Fatalf("cursor at seq %d version %d synced %v, want 8, 2, after %v", c.AckedSeq(), c.Version(), c.SyncedAt(), at)
	}
	if got := ackedSeqs(t, repo, key.User, key.Client); got[key.Conversation] != 8 {
		t.Fatalf("cursors %v, want 8 for %s", got, key.Conversation)
	}
}

func aRefusedCursorUpdateStoresNothing(t *testing.T, repo clientsync.Repository) {
	key := newKey()
	mustAck(t, repo, key, 4)
	errFn := errors.New("fn refused")

	// when a seq below 1 is acknowledged, and fn moves the cursor and then fails
	errBad := ack(repo, key, 0, time.Now())
	errAfter := repo.Update(context.Background(), key, func(c *clientsync.ClientSync) error {
		if err := c.Acknowledge(10, time.Now()); err != nil {
			return err
		}
		return errFn
	})

	// then the errors come back as they were, and the cursor stays at 4
	if !errors.Is(errBad, conversation.ErrInvalidArgument) || !errors.Is(errAfter, errFn) {
		t.Fatalf("seq 0: %v, failing fn: %v", errBad, errAfter)
	}
	if c := cursor(t, repo, key); c.AckedSeq() != 4 || c.Version() != 1 {
		t.Fatalf("cursor at seq %d version %d, want 4 and 1", c.AckedSeq(), c.Version())
	}
}

func concurrentAcknowledgementsKeepTheHighest(t *testing.T, repo clientsync.Repository) {
	key := newKey()
	const acks = 60

	// when seqs 1 to 60 are acknowledged at once, in random order, by six writers on a new cursor
	seqs := rand.Perm(acks)
	var wg sync.WaitGroup
	errs := make(chan error, acks)
	for w := range 6 {
		wg.Go(func() {
			for i := w; i < acks; i += 6 {
				errs <- ack(repo, key, int64(seqs[i]+1), time.Now())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// then the cursor is at 60, having moved only forward (at most once per seq)
	c := cursor(t, repo, key)
	if c.AckedSeq() != acks || c.Version() < 1 || c.Version() > acks {
		t.Fatalf("cursor at seq %d version %d, want seq %d after 1 to %d moves", c.AckedSeq(), c.Version(), acks, acks)
	}
	if got := ackedSeqs(t, repo, key.User, key.Client); got[key.Conversation] != acks {
		t.Fatalf("cursors %v, want %d", got, acks)
	}
}
