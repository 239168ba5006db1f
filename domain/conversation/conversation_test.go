package conversation_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nova-chat/nova/domain/conversation"
)

const (
	convID = conversation.ID("0195f0c2-7a3e-7000-8000-000000000001")
	alice  = conversation.UserID("0195f0c2-7a3e-7000-8000-0000000000a1")
	bob    = conversation.UserID("0195f0c2-7a3e-7000-8000-0000000000b0")
	carol  = conversation.UserID("0195f0c2-7a3e-7000-8000-0000000000c0")
	dave   = conversation.UserID("0195f0c2-7a3e-7000-8000-0000000000d0")
)

// t0 has nanoseconds on purpose: the aggregate keeps microseconds, as Postgres does.
var t0 = time.Date(2026, 11, 29, 12, 0, 0, 123456789, time.UTC)

// started is a conversation of alice and bob with nothing else recorded yet.
func started(t *testing.T) *conversation.Conversation {
	t.Helper()
	c, err := conversation.Start(convID, "team", alice, []conversation.UserID{bob}, t0)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c
}

func draft(sender conversation.UserID, clientMsgID, body string) conversation.NewMessageDraft {
	return conversation.NewMessageDraft{
		ID: "0195f0c2-7a3e-7000-8000-" + strings.Repeat("e", 12), SenderID: sender,
		ClientMsgID: clientMsgID, Body: json.RawMessage(body), At: t0.Add(time.Second),
	}
}

func mustPost(t *testing.T, c *conversation.Conversation, d conversation.NewMessageDraft) conversation.Message {
	t.Helper()
	m, err := c.PostMessage(d)
	if err != nil {
		t.Fatalf("PostMessage(%q): %v", d.ClientMsgID, err)
	}
	return m
}

func eventTypes(events []conversation.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.EventType()
	}
	return out
}

func TestStartAddsTheStarterAndDedupesParticipants(t *testing.T) {
	// given a starter who also lists themselves, and a participant listed twice
	others := []conversation.UserID{bob, alice, bob, carol}

	// when the conversation starts
	c, err := conversation.Start(convID, "team", alice, others, t0)

	// then the starter comes first and everyone is in it exactly once
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got, want := c.Participants(), []conversation.UserID{alice, bob, carol}; !slices.Equal(got, want) {
		t.Errorf("participants = %v, want %v", got, want)
	}
	if c.ID() != convID || c.Title() != "team" || c.LastSeq() != 0 || c.Version() != 1 || c.PersistedVersion() != 0 {
		t.Errorf("got id=%s title=%q last_seq=%d version=%d persisted=%d", c.ID(), c.Title(), c.LastSeq(), c.Version(), c.PersistedVersion())
	}
	if want := t0.Truncate(time.Microsecond); !c.CreatedAt().Equal(want) {
		t.Errorf("created_at = %v, want %v (microseconds)", c.CreatedAt(), want)
	}
}

func TestStartWithNoOtherParticipantsHasOnlyTheStarter(t *testing.T) {
	// given nobody else
	// when alice starts a conversation
	c, err := conversation.Start(convID, "", alice, nil, t0)

	// then she alone is in it
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got := c.Participants(); !slices.Equal(got, []conversation.UserID{alice}) {
		t.Errorf("participants = %v, want [alice]", got)
	}
}

func TestStartRejectsATitleOver200Bytes(t *testing.T) {
	// given a 201-byte title
	// when the conversation starts
	_, err := conversation.Start(convID, strings.Repeat("t", conversation.MaxTitleLen+1), alice, nil, t0)

	// then it is an invalid argument
	if !errors.Is(err, conversation.ErrInvalidArgument) {
		t.Fatalf("err = %v, want ErrInvalidArgument", err)
	}
}

func TestOnlyParticipantsMayPost(t *testing.T) {
	// given a conversation of alice and bob
	c := started(t)

	// when carol, who is not in it, posts
	_, err := c.PostMessage(draft(carol, "c-1", `{"text":"hi"}`))

	// then it does not exist for her, and nothing is recorded
	if !errors.Is(err, conversation.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if c.LastSeq() != 0 || len(c.Changes()) != 1 {
		t.Errorf("a refused post changed the conversation: last_seq=%d changes=%v", c.LastSeq(), eventTypes(c.Changes()))
	}

	// and bob, who is in it, may post
	if m := mustPost(t, c, draft(bob, "b-1", `{"text":"hi"}`)); m.SenderID != bob {
		t.Errorf("sender = %s, want bob", m.SenderID)
	}
}

func TestClientMsgIDMustBe1To64Characters(t *testing.T) {
	cases := []struct {
		name    string
		id      string
		wantErr bool
	}{
		{"empty", "", true},
		{"1 byte", "a", false},
		{"64 bytes", strings.Repeat("k", 64), false},
		{"65 bytes", strings.Repeat("k", 65), true},
		{"64 characters of 3 bytes each", strings.Repeat("界", 64), false},
		{"65 characters of 3 bytes each", strings.Repeat("界", 65), true},
		{"not UTF-8", "\xff\xfe", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// given a conversation
			c := started(t)

			// when alice posts with this client_msg_id
			_, err := c.PostMessage(draft(alice, tc.id, `"hi"`))

			// then only ids of 1..64 characters are accepted
			if tc.wantErr && !errors.Is(err, conversation.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
			if !tc.wantErr && err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
		})
	}
}

func TestBodyMustBeValidJSONOfAtMost64KiB(t *testing.T) {
	// a JSON string of exactly n bytes, quotes included
	jsonString := func(n int) string { return `"` + strings.Repeat("x", n-2) + `"` }
	cases := []struct {
		name    string
		body    string
		wantErr error
	}{
		{"64 KiB", jsonString(conversation.MaxBodyBytes), nil},
		{"64 KiB + 1", jsonString(conversation.MaxBodyBytes + 1), conversation.ErrTooLarge},
		{"missing", "", conversation.ErrInvalidArgument},
		{"invalid JSON", `{"text":`, conversation.ErrInvalidArgument},
		{"two values", `1 2`, conversation.ErrInvalidArgument},
		{"null", `null`, nil},
		{"number", `42`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// given a conversation
			c := started(t)

			// when alice posts this body
			_, err := c.PostMessage(draft(alice, "a-1", tc.body))

			// then only valid JSON up to 64 KiB is accepted
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestSeqIsGaplessAndStreamIDFollowsIt(t *testing.T) {
	// given a conversation
	c := started(t)

	// when three messages are posted
	var got []conversation.Message
	for _, id := range []string{"m-1", "m-2", "m-3"} {
		got = append(got, mustPost(t, c, draft(alice, id, `{"text":"`+id+`"}`)))
	}

	// then they take seq 1, 2, 3 with stream ids "1-0", "2-0", "3-0"
	for i, m := range got {
		wantSeq := int64(i + 1)
		if m.Seq != wantSeq || m.StreamID != conversation.StreamID(wantSeq) {
			t.Errorf("message %d: seq=%d stream_id=%q, want %d %q", i, m.Seq, m.StreamID, wantSeq, conversation.StreamID(wantSeq))
		}
		if m.ConversationID != convID {
			t.Errorf("message %d: conversation_id = %s", i, m.ConversationID)
		}
		if !m.CreatedAt.Equal(t0.Add(time.Second).Truncate(time.Microsecond)) {
			t.Errorf("message %d: created_at = %v, want microseconds of the draft time", i, m.CreatedAt)
		}
	}
	if got[2].StreamID != "3-0" {
		t.Errorf("third stream id = %q, want 3-0", got[2].StreamID)
	}
	if c.LastSeq() != 3 {
		t.Errorf("last_seq = %d, want 3", c.LastSeq())
	}
}

func TestAddParticipant(t *testing.T) {
	t.Run("a non-participant cannot add anyone", func(t *testing.T) {
		// given a conversation of alice and bob
		c := started(t)

		// when carol tries to add dave
		err := c.AddParticipant(carol, dave, t0)

		// then the conversation does not exist for her
		if !errors.Is(err, conversation.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		if c.IsParticipant(dave) {
			t.Error("dave was added by a non-participant")
		}
	})
	t.Run("an added user may post", func(t *testing.T) {
		// given a conversation of alice and bob
		c := started(t)

		// when alice adds carol
		if err := c.AddParticipant(alice, carol, t0); err != nil {
			t.Fatalf("AddParticipant: %v", err)
		}

		// then carol is in it and may post
		if !c.IsParticipant(carol) {
			t.Fatal("carol is not a participant")
		}
		mustPost(t, c, draft(carol, "c-1", `"hello"`))
	})
	t.Run("adding a member again records nothing", func(t *testing.T) {
		// given a conversation of alice and bob
		c := started(t)

		// when alice adds bob again
		err := c.AddParticipant(alice, bob, t0)

		// then nothing changes
		if err != nil {
			t.Fatalf("err = %v", err)
		}
		if got := eventTypes(c.Changes()); !slices.Equal(got, []string{conversation.EventStarted}) {
			t.Errorf("changes = %v, want only the start", got)
		}
		if got := c.Participants(); !slices.Equal(got, []conversation.UserID{alice, bob}) {
			t.Errorf("participants = %v", got)
		}
	})
}

func TestRemoveParticipant(t *testing.T) {
	t.Run("a non-participant cannot remove anyone", func(t *testing.T) {
		// given a conversation of alice and bob
		c := started(t)

		// when carol tries to remove bob
		err := c.RemoveParticipant(carol, bob, t0)

		// then the conversation does not exist for her, and bob stays
		if !errors.Is(err, conversation.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		if !c.IsParticipant(bob) {
			t.Error("bob was removed by a non-participant")
		}
	})
	t.Run("removing someone who is not in it is not found", func(t *testing.T) {
		// given a conversation of alice and bob
		c := started(t)

		// when alice removes carol
		err := c.RemoveParticipant(alice, carol, t0)

		// then carol is not found
		if !errors.Is(err, conversation.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("a removed user can no longer post or change participants", func(t *testing.T) {
		// given a conversation of alice and bob where bob has posted
		c := started(t)
		mustPost(t, c, draft(bob, "b-1", `"before"`))

		// when alice removes bob
		if err := c.RemoveParticipant(alice, bob, t0); err != nil {
			t.Fatalf("RemoveParticipant: %v", err)
		}

		// then bob is gone, cannot post and cannot add himself back
		if c.IsParticipant(bob) {
			t.Fatal("bob is still a participant")
		}
		if _, err := c.PostMessage(draft(bob, "b-2", `"after"`)); !errors.Is(err, conversation.ErrNotFound) {
			t.Errorf("post after removal: err = %v, want ErrNotFound", err)
		}
		if err := c.AddParticipant(bob, bob, t0); !errors.Is(err, conversation.ErrNotFound) {
			t.Errorf("re-adding himself: err = %v, want ErrNotFound", err)
		}
		if got := c.Participants(); !slices.Equal(got, []conversation.UserID{alice}) {
			t.Errorf("participants = %v, want [alice]", got)
		}
	})
	t.Run("a participant may remove themselves", func(t *testing.T) {
		// given a conversation of alice and bob
		c := started(t)

		// when bob leaves
		err := c.RemoveParticipant(bob, bob, t0)

		// then he is gone
		if err != nil || c.IsParticipant(bob) {
			t.Fatalf("err = %v, still participant = %v", err, c.IsParticipant(bob))
		}
	})
}

// history records one event of every type on a fresh conversation.
func history(t *testing.T) *conversation.Conversation {
	t.Helper()
	c := started(t)
	mustPost(t, c, draft(alice, "a-1", `{"text":"hi"}`))
	if err := c.AddParticipant(alice, carol, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	mustPost(t, c, draft(carol, "c-1", `[1,2,3]`))
	if err := c.RemoveParticipant(carol, bob, t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	mustPost(t, c, draft(alice, "a-2", `"bye"`))
	return c
}

func TestChangesAreRecordedUnderStableNames(t *testing.T) {
	// given a conversation with one change of every kind
	c := history(t)

	// when its changes are listed
	got := eventTypes(c.Changes())

	// then they come oldest first under their stable, versioned names
	want := []string{
		"conversation.started.v1",
		"conversation.message_posted.v1",
		"conversation.participant_added.v1",
		"conversation.message_posted.v1",
		"conversation.participant_removed.v1",
		"conversation.message_posted.v1",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("changes = %v\nwant      %v", got, want)
	}
	if c.Version() != int64(len(want)) || c.PersistedVersion() != 0 {
		t.Errorf("version = %d persisted = %d, want %d and 0", c.Version(), c.PersistedVersion(), len(want))
	}
}

func TestReplayingTheHistoryEqualsTheStateRow(t *testing.T) {
	// given a conversation with one change of every kind (how events are stored is
	// adapters/postgres's business: its tests replay the stored rows the same way)
	live := history(t)

	// when the conversation is rebuilt from its events
	replayed := conversation.FromEvents(live.Changes())

	// then it equals the live aggregate's snapshot (the state row), version included
	want := live.Snapshot()
	if want.LastSeq != 3 || want.Version != 6 || !slices.Equal(want.Participants, []conversation.UserID{alice, carol}) {
		t.Fatalf("unexpected live snapshot %+v", want)
	}
	if got := replayed.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("replayed:\n got  %+v\n want %+v", got, want)
	}
	if len(replayed.Changes()) != 0 || replayed.PersistedVersion() != 6 {
		t.Errorf("a replayed conversation has changes=%d persisted=%d, want 0 and 6", len(replayed.Changes()), replayed.PersistedVersion())
	}
}

func TestFromSnapshotContinuesWhereTheStateRowLeftOff(t *testing.T) {
	// given the state row of a conversation with three messages
	s := history(t).Snapshot()

	// when it is loaded and carol posts
	c := conversation.FromSnapshot(s)
	m := mustPost(t, c, draft(carol, "c-2", `"next"`))

	// then the snapshot survived the load and the next message takes seq 4 at version 7
	if m.Seq != 4 || c.PersistedVersion() != s.Version || c.Version() != s.Version+1 {
		t.Errorf("seq=%d persisted=%d version=%d, want 4, %d, %d", m.Seq, c.PersistedVersion(), c.Version(), s.Version, s.Version+1)
	}
	if got := eventTypes(c.Changes()); !slices.Equal(got, []string{conversation.EventMessagePosted}) {
		t.Errorf("changes = %v, want only the new message", got)
	}
}

func TestIsRepeatOfIgnoresWhitespaceButNotContent(t *testing.T) {
	m := conversation.Message{Body: json.RawMessage(`{"text":"hi","n":[1,2]}`)}
	cases := []struct {
		name string
		body string
		want bool
	}{
		{"identical", `{"text":"hi","n":[1,2]}`, true},
		{"spaced and indented", "{\n  \"text\" : \"hi\",\n  \"n\" : [ 1, 2 ]\n}\n", true},
		{"other text", `{"text":"ho","n":[1,2]}`, false},
		{"space inside a string", `{"text":"hi ","n":[1,2]}`, false},
		{"other number", `{"text":"hi","n":[1,3]}`, false},
		{"extra field", `{"text":"hi","n":[1,2],"x":0}`, false},
		{"invalid JSON", `{"text":"hi",`, false},
		{"empty", ``, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// given a stored message
			// when a send with this body repeats its client_msg_id
			got := m.IsRepeatOf(json.RawMessage(tc.body))

			// then it is a repeat only if the JSON is the same apart from whitespace
			if got != tc.want {
				t.Errorf("IsRepeatOf(%q) = %v, want %v", tc.body, got, tc.want)
			}
		})
	}
}

func TestIsRepeatOfComparesNumbersExactly(t *testing.T) {
	cases := []struct {
		stored, body string
		want         bool
	}{
		{`{"id":9007199254740993}`, `{"id":9007199254740992}`, false}, // equal as float64
		{`{"id":9007199254740993}`, `{"id":9007199254740993}`, true},
		{`{"n":1000}`, `{"n":1e3}`, true},
		{`{"n":0.1}`, `{"n":1E-1}`, true},
		{`{"n":0.30000000000000004}`, `{"n":0.3}`, false},
		{`[1e999999999]`, `[1e999999999]`, true}, // written the same
		{`[1e999999999]`, `[10e999999998]`, false},
		{`{"n":1}`, `{"n":"1"}`, false},
	}
	for _, tc := range cases {
		m := conversation.Message{Body: json.RawMessage(tc.stored)}
		if got := m.IsRepeatOf(json.RawMessage(tc.body)); got != tc.want {
			t.Errorf("stored %s, sent %s: IsRepeatOf = %v, want %v", tc.stored, tc.body, got, tc.want)
		}
	}
}

func TestADraftWhoseBodyIsNotUTF8IsInvalid(t *testing.T) {
	d := conversation.NewMessageDraft{ID: "m", SenderID: "u", ClientMsgID: "c-1", Body: json.RawMessage("{\"text\":\"\xff\xfe\"}")}
	err := d.Validate()
	if !errors.Is(err, conversation.ErrInvalidArgument) {
		t.Fatalf("Validate() = %v, want ErrInvalidArgument", err)
	}
}
