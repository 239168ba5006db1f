package command_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

func newClient() clientsync.ClientID { return clientsync.ClientID(uuid.NewString()) }

// withMessages stores a conversation of users with n messages from the first.
func withMessages(t *testing.T, a *app, n int, users ...conversation.UserID) conversation.ID {
	t.Helper()
	conv := startIn(t, a.conversations, users...)
	for i := range n {
		if _, _, err := send(a, conv, users[0], fmt.Sprintf("m%d", i), `{}`); err != nil {
			t.Fatal(err)
		}
	}
	return conv
}

func TestAcknowledgeMovesTheHotCursorAndClearsTheOfflineCount(t *testing.T) {
	a := newApp()
	alice, bob := newUser(), newUser()
	conv := withMessages(t, a, 3, alice, bob)
	key := clientsync.Key{User: bob, Client: newClient(), Conversation: conv}

	// when bob's client acknowledges seq 2
	if err := a.ack.Acknowledge(context.Background(), key, 2); err != nil {
		t.Fatal(err)
	}

	// then the hot cursor is at 2 and bob's offline count of the conversation was cleared
	if a.hot.seqs[key] != 2 {
		t.Fatalf("hot cursor %d, want 2", a.hot.seqs[key])
	}
	if want := []userIn{{conv, bob}}; !slices.Equal(a.offline.cleared, want) {
		t.Fatalf("cleared %v, want %v", a.offline.cleared, want)
	}
}

func TestAcknowledgeRefusesWhatTheClientCannotHaveSeen(t *testing.T) {
	a := newApp()
	alice, mallory := newUser(), newUser()
	conv := withMessages(t, a, 3, alice)
	client := newClient()
	for _, tc := range []struct {
		name string
		key  clientsync.Key
		seq  int64
		want error
	}{
		{"seq 0", clientsync.Key{User: alice, Client: client, Conversation: conv}, 0, conversation.ErrInvalidArgument},
		{"a seq past the last message", clientsync.Key{User: alice, Client: client, Conversation: conv}, 4, conversation.ErrInvalidArgument},
		{"a stranger", clientsync.Key{User: mallory, Client: client, Conversation: conv}, 1, conversation.ErrNotFound},
		{"an unknown conversation", clientsync.Key{User: alice, Client: client, Conversation: conversation.ID(uuid.NewString())}, 1, conversation.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.ack.Acknowledge(context.Background(), tc.key, tc.seq); !errors.Is(err, tc.want) {
				t.Fatalf("acknowledge: %v, want %v", err, tc.want)
			}
		})
	}
	if a.hot.calls != 0 || len(a.offline.cleared) != 0 {
		t.Fatalf("refused acknowledgements touched the hot copy (%d calls) or the counts (%v)", a.hot.calls, a.offline.cleared)
	}
}

func TestAcknowledgeSaysWhenTheHotCopyDidNotTakeIt(t *testing.T) {
	alice := newUser()
	for name, breakIt := range map[string]func(a *app){
		"hot cursors down":    func(a *app) { a.hot.fail = errors.New("redis down") },
		"offline counts down": func(a *app) { a.offline.fail = errors.New("redis down") },
	} {
		t.Run(name, func(t *testing.T) {
			a := newApp()
			conv := withMessages(t, a, 1, alice)
			breakIt(a)
			err := a.ack.Acknowledge(context.Background(), clientsync.Key{User: alice, Client: newClient(), Conversation: conv}, 1)
			if !errors.Is(err, command.ErrHotCursorUnavailable) {
				t.Fatalf("acknowledge: %v, want ErrHotCursorUnavailable", err)
			}
		})
	}
}

func TestPersistStoresTheCursorForwardOnly(t *testing.T) {
	a := newApp()
	alice := newUser()
	client := newClient()
	conv, other := withMessages(t, a, 5, alice), withMessages(t, a, 2, alice)
	key := clientsync.Key{User: alice, Client: client, Conversation: conv}
	ctx := context.Background()

	// when the client's cursor is persisted at 4, then 2, and another conversation's at 2
	for _, p := range []struct {
		conv conversation.ID
		seq  int64
	}{{conv, 4}, {conv, 2}, {other, 2}} {
		if err := a.ack.Persist(ctx, clientsync.Key{User: alice, Client: client, Conversation: p.conv}, p.seq); err != nil {
			t.Fatal(err)
		}
	}
	errBad := a.ack.Persist(ctx, key, 0)

	// then the durable cursors are 4 and 2: a cursor never moves back, and seq 0 is refused
	if !errors.Is(errBad, conversation.ErrInvalidArgument) {
		t.Fatalf("persist seq 0: %v, want ErrInvalidArgument", errBad)
	}
	got, err := a.cursors.AckedSeqs(ctx, alice, client)
	if want := map[conversation.ID]int64{conv: 4, other: 2}; err != nil || !maps.Equal(got, want) {
		t.Fatalf("durable cursors %v (%v), want %v", got, err, want)
	}
}

func TestSyncedClearsTheOfflineCount(t *testing.T) {
	a := newApp()
	alice := newUser()
	conv := conversation.ID(uuid.NewString())
	if err := a.ack.Synced(context.Background(), alice, conv); err != nil {
		t.Fatal(err)
	}
	if want := []userIn{{conv, alice}}; !slices.Equal(a.offline.cleared, want) {
		t.Fatalf("cleared %v, want %v", a.offline.cleared, want)
	}
}
