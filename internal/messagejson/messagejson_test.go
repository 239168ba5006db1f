package messagejson_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/jsonenc"
	"github.com/nova-chat/nova/internal/messagejson"
)

// golden is one Message JSON as PROTOCOL.md section 3 shows it: field names, their order, a
// seq as a number, created_at in RFC 3339 with microseconds, the body as sent (no HTML escaping).
const golden = `{"id":"0195f0c2-7a3e-7000-8000-000000000001","conversation_id":"0195f0c2-7a3e-7000-8000-0000000000c1",` +
	`"seq":42,"stream_id":"42-0","sender_id":"0195f0c2-7a3e-7000-8000-0000000000a1","client_msg_id":"c-17",` +
	`"body":{"text":"<b>hi</b> & bye"},"created_at":"2026-11-29T12:00:00.123456Z"}`

func goldenMessage() conversation.Message {
	return conversation.Message{
		ID: "0195f0c2-7a3e-7000-8000-000000000001", ConversationID: "0195f0c2-7a3e-7000-8000-0000000000c1",
		Seq: 42, StreamID: "42-0", SenderID: "0195f0c2-7a3e-7000-8000-0000000000a1", ClientMsgID: "c-17",
		Body:      json.RawMessage(`{"text":"<b>hi</b> & bye"}`),
		CreatedAt: time.Date(2026, 11, 29, 12, 0, 0, 123456000, time.UTC),
	}
}

func TestEncodeWritesTheMessageJSONOfTheProtocol(t *testing.T) {
	// given a domain message
	m := goldenMessage()

	// when it is encoded
	got, err := messagejson.Encode(m)

	// then the bytes are the protocol's, whatever the domain's field names are
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != golden {
		t.Fatalf("Encode =\n%s\nwant\n%s", got, golden)
	}
}

func TestDecodeReadsTheMessageJSONBackIntoTheSameMessage(t *testing.T) {
	// given the protocol's JSON of a message
	// when it is decoded
	got, err := messagejson.Decode([]byte(golden))

	// then every field of the domain message is filled (a field the mapping forgot stays empty)
	if err != nil {
		t.Fatal(err)
	}
	if want := goldenMessage(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode =\n%+v\nwant\n%+v", got, want)
	}
	v := reflect.ValueOf(got)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("conversation.Message.%s is not read from the Message JSON", v.Type().Field(i).Name)
		}
	}
}

func TestTheMessageValueEncodesAsEncodeDoes(t *testing.T) {
	// given a message embedded as a value in a larger answer (a page, a WebSocket frame)
	page := struct {
		Messages []messagejson.Message `json:"messages"`
	}{messagejson.FromAll([]conversation.Message{goldenMessage()})}

	// when the answer is encoded the way the ports encode (internal/jsonenc)
	got, err := jsonenc.Marshal(page)

	// then the message inside is byte for byte the golden one
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"messages":[` + golden + `]}`; string(got) != want {
		t.Fatalf("page =\n%s\nwant\n%s", got, want)
	}
	if empty, _ := jsonenc.Marshal(messagejson.FromAll(nil)); string(empty) != "[]" {
		t.Errorf("FromAll(nil) encodes as %s, want []", empty)
	}
}

func TestDecodeRejectsWhatIsNotJSON(t *testing.T) {
	for _, bad := range []string{``, `{"id":`, `[1]`, `"text"`} {
		if _, err := messagejson.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) = nil error", bad)
		}
	}
}
