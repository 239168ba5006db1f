package command_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/domain/conversation"
)

func TestAddParticipantLetsTheNewMemberPost(t *testing.T) {
	a := newApp()
	alice, bob := newUser(), newUser()
	conv := startIn(t, a.conversations, alice)

	// when alice adds bob, twice
	s, err := a.participants.Add(context.Background(), command.AddParticipant{ConversationID: conv, By: alice, User: bob})
	again, errAgain := a.participants.Add(context.Background(), command.AddParticipant{ConversationID: conv, By: alice, User: bob})

	// then bob is in once (the second add changed nothing) and can post
	if err != nil || errAgain != nil || !slices.Equal(s.Participants, []conversation.UserID{alice, bob}) || s.Version != 2 || again.Version != 2 {
		t.Fatalf("adds: %+v (%v), %+v (%v)", s, err, again, errAgain)
	}
	if _, created, err := send(a, conv, bob, "b", `{}`); err != nil || !created {
		t.Fatalf("bob's post: created %v, %v", created, err)
	}
}

func TestAddParticipantIsRefusedToAStrangerAndForAnUnknownConversation(t *testing.T) {
	a := newApp()
	alice, mallory := newUser(), newUser()
	conv := startIn(t, a.conversations, alice)

	// when mallory adds herself, and alice adds her to a conversation that does not exist
	_, errStranger := a.participants.Add(context.Background(), command.AddParticipant{ConversationID: conv, By: mallory, User: mallory})
	_, errUnknown := a.participants.Add(context.Background(), command.AddParticipant{ConversationID: conversation.ID(uuid.NewString()), By: alice, User: mallory})

	// then both are not found, and alice is still alone
	if !errors.Is(errStranger, conversation.ErrNotFound) || !errors.Is(errUnknown, conversation.ErrNotFound) {
		t.Fatalf("stranger: %v, unknown: %v; want ErrNotFound", errStranger, errUnknown)
	}
	if got := loaded(t, a.conversations, conv); !slices.Equal(got.Participants, []conversation.UserID{alice}) {
		t.Fatalf("participants %v", got.Participants)
	}
}

func TestRemoveParticipantTellsTheInstancesAndStopsThePosts(t *testing.T) {
	a := newApp()
	alice, bob := newUser(), newUser()
	conv := startIn(t, a.conversations, alice, bob)

	// when alice removes bob
	if err := a.participants.Remove(context.Background(), command.RemoveParticipant{ConversationID: conv, By: alice, User: bob}); err != nil {
		t.Fatal(err)
	}

	// then the instances hear of it once, bob is out, and his posts are refused
	if want := []userIn{{conv, bob}}; !slices.Equal(a.removals.heard, want) {
		t.Fatalf("notices %v, want %v", a.removals.heard, want)
	}
	if got := loaded(t, a.conversations, conv); !slices.Equal(got.Participants, []conversation.UserID{alice}) {
		t.Fatalf("participants %v", got.Participants)
	}
	if _, _, err := send(a, conv, bob, "b", `{}`); !errors.Is(err, conversation.ErrNotFound) {
		t.Fatalf("bob's post after his removal: %v, want ErrNotFound", err)
	}
}

func TestRemoveParticipantStandsWhenTheNoticeFails(t *testing.T) {
	a := newApp()
	a.removals.fail = errors.New("redis down")
	alice, bob := newUser(), newUser()
	conv := startIn(t, a.conversations, alice, bob)

	// when bob leaves while the notice cannot be sent
	err := a.participants.Remove(context.Background(), command.RemoveParticipant{ConversationID: conv, By: bob, User: bob})

	// then the removal is stored all the same (keep-alive rounds catch up)
	if err != nil || len(a.removals.heard) != 1 {
		t.Fatalf("remove: %v, %d notices tried", err, len(a.removals.heard))
	}
	if got := loaded(t, a.conversations, conv); !slices.Equal(got.Participants, []conversation.UserID{alice}) {
		t.Fatalf("participants %v", got.Participants)
	}
}

func TestRemoveParticipantIsRefusedWithoutANotice(t *testing.T) {
	a := newApp()
	alice, bob, mallory := newUser(), newUser(), newUser()
	conv := startIn(t, a.conversations, alice, bob)

	// when a stranger removes bob, alice removes a stranger, and alice removes bob from an unknown conversation
	errs := map[string]error{
		"stranger removes":    a.participants.Remove(context.Background(), command.RemoveParticipant{ConversationID: conv, By: mallory, User: bob}),
		"removing a stranger": a.participants.Remove(context.Background(), command.RemoveParticipant{ConversationID: conv, By: alice, User: mallory}),
		"unknown conversation": a.participants.Remove(context.Background(),
			command.RemoveParticipant{ConversationID: conversation.ID(uuid.NewString()), By: alice, User: bob}),
	}

	// then each is not found, nobody is told, and bob stays
	for name, err := range errs {
		if !errors.Is(err, conversation.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if len(a.removals.heard) != 0 {
		t.Fatalf("notices sent for refused removals: %v", a.removals.heard)
	}
	if got := loaded(t, a.conversations, conv); !slices.Equal(got.Participants, []conversation.UserID{alice, bob}) {
		t.Fatalf("participants %v", got.Participants)
	}
}
