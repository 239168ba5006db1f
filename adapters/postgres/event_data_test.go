package postgres

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

// Stored history: each event type's data column, byte for byte as Nova has always written it.
// A change here orphans every event already stored; add fields, never rename them.
var (
	evAt   = time.Date(2026, 11, 29, 12, 0, 0, 123456000, time.UTC)
	evConv = conversation.ID("0195f0c2-7a3e-7000-8000-0000000000c1")
	alice  = conversation.UserID("0195f0c2-7a3e-7000-8000-0000000000a1")
	bob    = conversation.UserID("0195f0c2-7a3e-7000-8000-0000000000b1")
)

var goldenEvents = []struct {
	event conversation.Event
	data  string
}{
	{conversation.Started{ConversationID: evConv, Title: "team", Participants: []conversation.UserID{alice, bob}, StartedBy: alice, At: evAt},
		`{"conversation_id":"0195f0c2-7a3e-7000-8000-0000000000c1","title":"team","participants":["0195f0c2-7a3e-7000-8000-0000000000a1","0195f0c2-7a3e-7000-8000-0000000000b1"],"started_by":"0195f0c2-7a3e-7000-8000-0000000000a1","at":"2026-11-29T12:00:00.123456Z"}`},
	{conversation.ParticipantAdded{ConversationID: evConv, UserID: bob, AddedBy: alice, At: evAt},
		`{"conversation_id":"0195f0c2-7a3e-7000-8000-0000000000c1","user_id":"0195f0c2-7a3e-7000-8000-0000000000b1","added_by":"0195f0c2-7a3e-7000-8000-0000000000a1","at":"2026-11-29T12:00:00.123456Z"}`},
	{conversation.ParticipantRemoved{ConversationID: evConv, UserID: bob, RemovedBy: bob, At: evAt},
		`{"conversation_id":"0195f0c2-7a3e-7000-8000-0000000000c1","user_id":"0195f0c2-7a3e-7000-8000-0000000000b1","removed_by":"0195f0c2-7a3e-7000-8000-0000000000b1","at":"2026-11-29T12:00:00.123456Z"}`},
	{conversation.MessagePosted{Message: conversation.Message{
		ID: "0195f0c2-7a3e-7000-8000-eeeeeeeeeeee", ConversationID: evConv, Seq: 7, StreamID: "7-0",
		SenderID: alice, ClientMsgID: "c-17", Body: json.RawMessage(`{"text":"<hi>"}`), CreatedAt: evAt,
	}}, `{"message":{"id":"0195f0c2-7a3e-7000-8000-eeeeeeeeeeee","conversation_id":"0195f0c2-7a3e-7000-8000-0000000000c1","seq":7,"stream_id":"7-0","sender_id":"0195f0c2-7a3e-7000-8000-0000000000a1","client_msg_id":"c-17","body":{"text":"<hi>"},"created_at":"2026-11-29T12:00:00.123456Z"}}`},
}

func TestConversationEventsAreStoredAsTheyAlwaysWere(t *testing.T) {
	for _, g := range goldenEvents {
		t.Run(g.event.EventType(), func(t *testing.T) {
			// given a domain event
			// when it is encoded for the events table
			got, err := encodeConversationEvent(g.event)

			// then the data is the golden row
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != g.data {
				t.Fatalf("data =\n%s\nwant\n%s", got, g.data)
			}
		})
	}
}

func TestStoredConversationEventsDecodeIntoTheSameEvents(t *testing.T) {
	for _, g := range goldenEvents {
		t.Run(g.event.EventType(), func(t *testing.T) {
			// given a stored row
			// when it is decoded by its name
			got, err := decodeConversationEvent(g.event.EventType(), []byte(g.data))

			// then it is the same event, of the same Go type
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, g.event) {
				t.Errorf("round trip:\n got  %#v\n want %#v", got, g.event)
			}
		})
	}
}

func TestDecodingRejectsAnUnknownEventTypeAndBadData(t *testing.T) {
	// given a name no version of Nova wrote
	// when it is decoded
	_, err := decodeConversationEvent("conversation.renamed.v1", []byte(`{}`))

	// then it is an UnknownEventError naming the type, never a guess
	var unknown *UnknownEventError
	if !errors.As(err, &unknown) || unknown.Type != "conversation.renamed.v1" {
		t.Fatalf("err = %v, want UnknownEventError for conversation.renamed.v1", err)
	}

	// and a known name with data that is not its JSON is an error too
	for _, g := range goldenEvents {
		if _, err := decodeConversationEvent(g.event.EventType(), []byte(`{"at":`)); err == nil {
			t.Errorf("decode(%s, truncated JSON) = nil error", g.event.EventType())
		}
	}
}

func TestAcknowledgedIsStoredAsItAlwaysWas(t *testing.T) {
	// given a cursor event (its key's fields were always written under their Go names)
	e := clientsync.Acknowledged{Key: clientsync.Key{User: alice, Client: "0195f0c2-7a3e-7000-8000-0000000000d1", Conversation: evConv}, Seq: 9, At: evAt}

	// when it is encoded for the events table
	got, err := encodeAcknowledged(e)

	// then the data is the golden row
	want := `{"key":{"User":"0195f0c2-7a3e-7000-8000-0000000000a1","Client":"0195f0c2-7a3e-7000-8000-0000000000d1","Conversation":"0195f0c2-7a3e-7000-8000-0000000000c1"},"seq":9,"at":"2026-11-29T12:00:00.123456Z"}`
	if err != nil || string(got) != want {
		t.Fatalf("data = %s (%v)\nwant   %s", got, err, want)
	}
}
