package command_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/domain/conversation"
)

func TestStartConversationStoresTheStarterFirstAndEachParticipantOnce(t *testing.T) {
	a := newApp()
	alice, bob, carol := newUser(), newUser(), newUser()
	before := time.Now()

	// when alice starts a conversation naming bob twice, herself and carol
	s, err := a.start.Handle(context.Background(), command.StartConversation{
		StartedBy: alice, Title: "plans", Participants: []conversation.UserID{bob, bob, alice, carol}})

	// then it is stored under a new UUID with alice first and everyone once, and no message
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uuid.Parse(string(s.ID)); err != nil {
		t.Fatalf("id %q: %v", s.ID, err)
	}
	want := []conversation.UserID{alice, bob, carol}
	if !slices.Equal(s.Participants, want) || s.Title != "plans" || s.LastSeq != 0 || s.Version != 1 ||
		s.CreatedAt.Before(before.Truncate(time.Microsecond)) {
		t.Fatalf("started %+v, want participants %v", s, want)
	}
	if got := loaded(t, a.conversations, s.ID); !slices.Equal(got.Participants, want) || got.Title != "plans" || !got.CreatedAt.Equal(s.CreatedAt) {
		t.Fatalf("stored %+v, started %+v", got, s)
	}
}

func TestStartConversationGivesEachItsOwnID(t *testing.T) {
	a := newApp()
	alice := newUser()
	first := startIn(t, a.conversations, alice)
	second := startIn(t, a.conversations, alice)
	if first == second {
		t.Fatalf("two conversations share the id %s", first)
	}
}

func TestStartConversationRefusesBadInput(t *testing.T) {
	a := newApp()
	alice := newUser()
	tooMany := make([]conversation.UserID, conversation.MaxParticipants)
	for i := range tooMany {
		tooMany[i] = newUser()
	}
	for _, tc := range []struct {
		name         string
		title        string
		participants []conversation.UserID
	}{
		{"a title over 200 bytes", strings.Repeat("t", conversation.MaxTitleLen+1), nil},
		{"a title that is not UTF-8", "\xff", nil},
		{"a title with NUL", "a\x00b", nil},
		{"more than 1000 participants with the starter", "t", tooMany},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := a.start.Handle(context.Background(), command.StartConversation{StartedBy: alice, Title: tc.title, Participants: tc.participants})
			if !errors.Is(err, conversation.ErrInvalidArgument) || s.ID != "" {
				t.Fatalf("started %+v, %v; want ErrInvalidArgument", s, err)
			}
		})
	}
}
