package command_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/adapters/memory"
	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

func newUser() conversation.UserID { return conversation.UserID(uuid.NewString()) }

// startIn stores a conversation of users (the first starts it) through the command.
func startIn(t *testing.T, repo conversation.Repository, users ...conversation.UserID) conversation.ID {
	t.Helper()
	s, err := command.NewStartConversationHandler(repo).Handle(context.Background(),
		command.StartConversation{StartedBy: users[0], Title: "t", Participants: users[1:]})
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

func loaded(t *testing.T, repo conversation.Repository, id conversation.ID) conversation.Snapshot {
	t.Helper()
	c, err := repo.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Snapshot()
}

// removals records membership notices; fail makes them fail.
type removals struct {
	mu    sync.Mutex
	fail  error
	heard []userIn
}

// userIn names a user of one conversation.
type userIn struct {
	conv conversation.ID
	user conversation.UserID
}

func (r *removals) Removed(_ context.Context, conv conversation.ID, user conversation.UserID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.heard = append(r.heard, userIn{conv, user})
	return r.fail
}

// hotCursors is the hot copy of the cursors; fail makes Advance fail.
type hotCursors struct {
	mu    sync.Mutex
	fail  error
	seqs  map[clientsync.Key]int64
	calls int
}

func (h *hotCursors) Advance(_ context.Context, key clientsync.Key, seq int64, _ time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.fail != nil {
		return h.fail
	}
	if seq > h.seqs[key] {
		h.seqs[key] = seq
	}
	return nil
}

// offlineCounts records which (user, conversation) counters were cleared; fail makes Clear fail.
type offlineCounts struct {
	mu      sync.Mutex
	fail    error
	cleared []userIn
}

func (o *offlineCounts) CountOffline(context.Context, string, conversation.ID, int64, []conversation.UserID) (bool, error) {
	return true, nil
}

func (o *offlineCounts) Clear(_ context.Context, user conversation.UserID, conv conversation.ID) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.cleared = append(o.cleared, userIn{conv, user})
	return nil
}

// app is the write side on in-memory adapters.
type app struct {
	conversations *memory.ConversationRepository
	cursors       *memory.ClientSyncRepository
	removals      *removals
	hot           *hotCursors
	offline       *offlineCounts
	post          command.PostMessageHandler
	start         command.StartConversationHandler
	participants  command.ChangeParticipantsHandler
	ack           command.AcknowledgeSyncHandler
}

func newApp() *app {
	a := &app{
		conversations: memory.NewConversationRepository(),
		cursors:       memory.NewClientSyncRepository(),
		removals:      &removals{},
		hot:           &hotCursors{seqs: map[clientsync.Key]int64{}},
		offline:       &offlineCounts{},
	}
	a.post = command.NewPostMessageHandler(a.conversations)
	a.start = command.NewStartConversationHandler(a.conversations)
	a.participants = command.NewChangeParticipantsHandler(a.conversations, a.removals)
	a.ack = command.NewAcknowledgeSyncHandler(a.conversations, a.hot, a.offline, a.cursors)
	return a
}
