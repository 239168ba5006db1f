package http

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nova-chat/nova/application/query"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/jsonenc"
	"github.com/nova-chat/nova/internal/messagejson"
)

// Golden answers of the HTTP API, byte for byte as the API wrote them when the domain and the
// application types still carried the JSON tags: a renamed domain field must not change them.

func TestUnreadPageIsAnsweredAsTheProtocolSays(t *testing.T) {
	// given one page of unread counts from the application
	page := query.UnreadPage{Conversations: []query.Unread{{ConversationID: "0195f0c2-7a3e-7000-8000-0000000000c1", Unread: 3, LastSeq: 12, AckedSeq: 9}}}

	// when it is encoded as the answer
	got, err := jsonenc.Marshal(toUnreadPageResponse(page))

	// then it is the golden answer
	want := `{"conversations":[{"conversation_id":"0195f0c2-7a3e-7000-8000-0000000000c1","unread":3,"last_seq":12,"acked_seq":9}],"has_more":false}`
	if err != nil || string(got) != want {
		t.Fatalf("answer = %s (%v)\nwant     %s", got, err, want)
	}
	if empty, _ := jsonenc.Marshal(toUnreadPageResponse(query.UnreadPage{})); string(empty) != `{"conversations":[],"has_more":false}` {
		t.Errorf("empty page = %s", empty)
	}
}

func TestMessagePageIsAnsweredAsTheProtocolSays(t *testing.T) {
	// given one page of one message
	m := conversation.Message{ID: "0195f0c2-7a3e-7000-8000-000000000001", ConversationID: "0195f0c2-7a3e-7000-8000-0000000000c1",
		Seq: 42, StreamID: "42-0", SenderID: "0195f0c2-7a3e-7000-8000-0000000000a1", ClientMsgID: "c-17",
		Body: json.RawMessage(`{"text":"<b>hi</b> & bye"}`), CreatedAt: time.Date(2026, 11, 29, 12, 0, 0, 123456000, time.UTC)}

	// when it is encoded as the answer
	got, err := jsonenc.Marshal(messagePageResponse{Messages: messagejson.FromAll([]conversation.Message{m}), HasMore: true})

	// then it is the golden answer (has_more first, as the API always wrote it)
	want := `{"has_more":true,"messages":[{"id":"0195f0c2-7a3e-7000-8000-000000000001","conversation_id":"0195f0c2-7a3e-7000-8000-0000000000c1",` +
		`"seq":42,"stream_id":"42-0","sender_id":"0195f0c2-7a3e-7000-8000-0000000000a1","client_msg_id":"c-17",` +
		`"body":{"text":"<b>hi</b> & bye"},"created_at":"2026-11-29T12:00:00.123456Z"}]}`
	if err != nil || string(got) != want {
		t.Fatalf("answer = %s (%v)\nwant     %s", got, err, want)
	}
}

func TestConversationIsAnsweredAsTheProtocolSays(t *testing.T) {
	// given a conversation's state
	s := conversation.Snapshot{ID: "0195f0c2-7a3e-7000-8000-0000000000c1", Title: "team",
		Participants: []conversation.UserID{"0195f0c2-7a3e-7000-8000-0000000000a1"},
		CreatedAt:    time.Date(2026, 11, 29, 12, 0, 0, 123456000, time.UTC), LastSeq: 4}

	// when it is encoded as the answer, alone and in a list
	one, err1 := jsonenc.Marshal(toConversationResponse(s))
	list, err2 := jsonenc.Marshal(toConversationPageResponse(query.ConversationPage{Conversations: []conversation.Snapshot{s}, HasMore: true}))

	// then both are the golden answers
	want := `{"id":"0195f0c2-7a3e-7000-8000-0000000000c1","title":"team","participants":["0195f0c2-7a3e-7000-8000-0000000000a1"],` +
		`"created_at":"2026-11-29T12:00:00.123456Z","last_seq":4}`
	if err1 != nil || string(one) != want {
		t.Errorf("conversation = %s (%v)\nwant           %s", one, err1, want)
	}
	if wantList := `{"conversations":[` + want + `],"has_more":true}`; err2 != nil || string(list) != wantList {
		t.Errorf("list = %s (%v)\nwant   %s", list, err2, wantList)
	}
}
