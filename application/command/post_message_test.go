package command_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/domain/conversation"
)

func send(a *app, conv conversation.ID, sender conversation.UserID, key, body string) (conversation.Message, bool, error) {
	return a.post.Handle(context.Background(), command.PostMessage{
		ConversationID: conv, SenderID: sender, ClientMsgID: key, Body: json.RawMessage(body)})
}

func TestPostMessageStoresTheMessageWithTheNextSeq(t *testing.T) {
	a := newApp()
	alice, bob := newUser(), newUser()
	conv := startIn(t, a.conversations, alice, bob)

	// when alice and then bob post
	m1, created1, err1 := send(a, conv, alice, "a-1", `{"text":"hi"}`)
	m2, created2, err2 := send(a, conv, bob, "b-1", `{"text":"hello"}`)

	// then both are created with seq 1 and 2, as sent
	if err1 != nil || err2 != nil || !created1 || !created2 {
		t.Fatalf("posts: %v %v, created %v %v", err1, err2, created1, created2)
	}
	if m1.Seq != 1 || m2.Seq != 2 || m1.SenderID != alice || m1.ClientMsgID != "a-1" || string(m1.Body) != `{"text":"hi"}` ||
		m1.ConversationID != conv || m1.StreamID != "1-0" {
		t.Fatalf("messages %+v and %+v", m1, m2)
	}
	if _, err := uuid.Parse(m1.ID); err != nil || m1.ID == m2.ID {
		t.Fatalf("message ids %q and %q, want two UUIDs", m1.ID, m2.ID)
	}
	if s := loaded(t, a.conversations, conv); s.LastSeq != 2 {
		t.Fatalf("stored last seq %d, want 2", s.LastSeq)
	}
}

func TestPostMessageRepeatGetsTheOriginal(t *testing.T) {
	a := newApp()
	alice := newUser()
	conv := startIn(t, a.conversations, alice)
	orig, _, err := send(a, conv, alice, "k", `{"text":"hi","n":1000}`)
	if err != nil {
		t.Fatal(err)
	}

	// when the send is retried, with the same JSON value written differently
	again, created, err := send(a, conv, alice, "k", ` { "n": 1e3, "text": "hi" } `)

	// then the original comes back, not created, and no seq was used
	if err != nil || created || again.ID != orig.ID || again.Seq != 1 || string(again.Body) != string(orig.Body) {
		t.Fatalf("repeat: %+v created %v err %v; want the original %+v", again, created, err, orig)
	}
	if next, _, err := send(a, conv, alice, "k2", `{}`); err != nil || next.Seq != 2 {
		t.Fatalf("next post: seq %d, %v; want 2", next.Seq, err)
	}
}

func TestPostMessageReusingAKeyForAnotherBodyIsAConflict(t *testing.T) {
	a := newApp()
	alice := newUser()
	conv := startIn(t, a.conversations, alice)
	if _, _, err := send(a, conv, alice, "k", `{"text":"hi"}`); err != nil {
		t.Fatal(err)
	}

	// when the key comes again with another body
	_, created, err := send(a, conv, alice, "k", `{"text":"bye"}`)

	// then it is a conflict, and nothing was stored
	if !errors.Is(err, conversation.ErrConflict) || !errors.Is(err, conversation.ErrClientMsgIDReused) || created {
		t.Fatalf("reused key: created %v, %v; want ErrClientMsgIDReused", created, err)
	}
	if s := loaded(t, a.conversations, conv); s.LastSeq != 1 {
		t.Fatalf("last seq %d, want 1", s.LastSeq)
	}
}

func TestPostMessageIsRefusedToAStrangerAndForAnUnknownConversation(t *testing.T) {
	a := newApp()
	alice, mallory := newUser(), newUser()
	conv := startIn(t, a.conversations, alice)
	if _, _, err := send(a, conv, alice, "k", `{}`); err != nil {
		t.Fatal(err)
	}

	// when mallory posts (also with alice's key), and alice posts to a conversation that does not exist
	_, _, errStranger := send(a, conv, mallory, "m", `{}`)
	_, _, errStrangerRepeat := send(a, conv, mallory, "k", `{}`)
	_, _, errUnknown := send(a, conversation.ID(uuid.NewString()), alice, "k", `{}`)

	// then all are not found (which hides whether the conversation exists), and nothing was stored
	for name, err := range map[string]error{"stranger": errStranger, "stranger with a used key": errStrangerRepeat, "unknown": errUnknown} {
		if !errors.Is(err, conversation.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if s := loaded(t, a.conversations, conv); s.LastSeq != 1 {
		t.Fatalf("last seq %d, want 1", s.LastSeq)
	}
}

func TestPostMessageRefusesBadInputBeforeAskingTheConversation(t *testing.T) {
	a := newApp()
	alice := newUser()
	unknown := conversation.ID(uuid.NewString()) // bad input is refused before the lookup would say not found
	for _, tc := range []struct {
		name, key, body string
		want            error
	}{
		{"no client_msg_id", "", `{}`, conversation.ErrInvalidArgument},
		{"client_msg_id too long", strings.Repeat("k", 65), `{}`, conversation.ErrInvalidArgument},
		{"client_msg_id with a control character", "a\x00b", `{}`, conversation.ErrInvalidArgument},
		{"no body", "k", ``, conversation.ErrInvalidArgument},
		{"body not JSON", "k", `{"text":`, conversation.ErrInvalidArgument},
		{"body not UTF-8", "k", "\"\xff\"", conversation.ErrInvalidArgument},
		{"body too large", "k", `"` + strings.Repeat("x", conversation.MaxBodyBytes) + `"`, conversation.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, created, err := send(a, unknown, alice, tc.key, tc.body)
			if !errors.Is(err, tc.want) || created {
				t.Fatalf("created %v, %v; want %v", created, err, tc.want)
			}
		})
	}
}

func TestConcurrentPostsGetGaplessSeqs(t *testing.T) {
	a := newApp()
	alice, bob := newUser(), newUser()
	conv := startIn(t, a.conversations, alice, bob)

	// when alice and bob post 40 messages each at once, each also retrying its first
	var mu sync.Mutex
	var seqs []int64
	var wg sync.WaitGroup
	for _, u := range []conversation.UserID{alice, bob} {
		for w := range 4 {
			wg.Go(func() {
				for i := range 10 {
					m, created, err := send(a, conv, u, fmt.Sprintf("%d-%d", w, i), `{}`)
					if err != nil || !created {
						t.Errorf("post: created %v, %v", created, err)
						return
					}
					if _, created, err := send(a, conv, u, fmt.Sprintf("%d-0", w), `{}`); err != nil || created {
						t.Errorf("repeat: created %v, %v", created, err)
						return
					}
					mu.Lock()
					seqs = append(seqs, m.Seq)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()

	// then the 80 messages have seqs 1 to 80
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("seq %d at position %d", s, i)
		}
	}
	if len(seqs) != 80 || loaded(t, a.conversations, conv).LastSeq != 80 {
		t.Fatalf("%d messages, last seq %d; want 80", len(seqs), loaded(t, a.conversations, conv).LastSeq)
	}
}
