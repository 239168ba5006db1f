package command_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/domain/conversation"
)

// conversationsInMemory is a conversation.Repository that counts its reads.
type conversationsInMemory struct {
	byID  map[conversation.ID]*conversation.Conversation
	reads int
}

func (r *conversationsInMemory) Create(_ context.Context, c *conversation.Conversation) error {
	r.byID[c.ID()] = c
	return nil
}

func (r *conversationsInMemory) Get(_ context.Context, id conversation.ID) (*conversation.Conversation, error) {
	r.reads++
	c, ok := r.byID[id]
	if !ok {
		return nil, conversation.ErrNotFound
	}
	return c, nil
}

func (r *conversationsInMemory) Update(context.Context, conversation.ID, func(*conversation.Conversation) error) error {
	return errors.New("not used")
}

// countsInMemory counts offline recipients; online holds who has a live connection.
type countsInMemory struct {
	online map[conversation.UserID]bool
	seen   map[string]bool
	counts map[conversation.UserID]int
}

func newCounts(online ...conversation.UserID) *countsInMemory {
	c := &countsInMemory{online: map[conversation.UserID]bool{}, seen: map[string]bool{}, counts: map[conversation.UserID]int{}}
	for _, u := range online {
		c.online[u] = true
	}
	return c
}

func (c *countsInMemory) CountOffline(_ context.Context, group string, conv conversation.ID, seq int64, recipients []conversation.UserID) (bool, error) {
	key := fmt.Sprintf("%s/%s/%d", group, conv, seq)
	if c.seen[key] {
		return false, nil
	}
	c.seen[key] = true
	for _, u := range recipients {
		if !c.online[u] {
			c.counts[u]++
		}
	}
	return true, nil
}

func (c *countsInMemory) Clear(context.Context, conversation.UserID, conversation.ID) error {
	return nil
}

func TestCountOfflineUsesTheParticipantsTheEventCarries(t *testing.T) {
	repo := &conversationsInMemory{byID: map[conversation.ID]*conversation.Conversation{}}
	counts := newCounts("online")
	h := command.NewCountOfflineHandler(repo, counts)
	m := conversation.Message{ConversationID: "c1", Seq: 1, SenderID: "sender"}

	// when an event names its participants (sender, one online, one offline) and is handled twice
	for range 2 {
		if err := h.Handle(context.Background(), "g", m, []conversation.UserID{"sender", "online", "offline"}); err != nil {
			t.Fatal(err)
		}
	}

	// then only the offline one is counted, once, and no conversation was read
	if !maps.Equal(counts.counts, map[conversation.UserID]int{"offline": 1}) {
		t.Fatalf("counts %v", counts.counts)
	}
	if repo.reads != 0 {
		t.Fatalf("read the conversation %d times", repo.reads)
	}
}

func TestCountOfflineReadsTheConversationWhenTheEventHasNoParticipants(t *testing.T) {
	repo := &conversationsInMemory{byID: map[conversation.ID]*conversation.Conversation{}}
	counts := newCounts()
	h := command.NewCountOfflineHandler(repo, counts)

	// given a stored conversation of three
	c, err := conversation.Start("c1", "t", "a", []conversation.UserID{"b", "c"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_ = repo.Create(context.Background(), c)

	// when an older event without participants arrives, and one of a conversation that is gone
	if err := h.Handle(context.Background(), "g", conversation.Message{ConversationID: c.ID(), Seq: 1, SenderID: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(context.Background(), "g", conversation.Message{ConversationID: "gone", Seq: 1, SenderID: "a"}, nil); err != nil {
		t.Fatalf("a vanished conversation is nothing to count, not an error: %v", err)
	}

	// then the others were counted from the stored participants
	if !maps.Equal(counts.counts, map[conversation.UserID]int{"b": 1, "c": 1}) {
		t.Fatalf("counts %v", counts.counts)
	}
}
