package websocket

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeFrame: whatever a client sends, decodeFrame does not panic, and a frame it accepts
// is one of the client frame types with the fields that type requires.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		// valid frames, one of each type
		`{"type":"subscribe","id":"r1","conversation_id":"0b7e3f5a-1c2d-4e5f-8a9b-0c1d2e3f4a5b","since_seq":3}`,
		`{"type":"subscribe","conversation_id":"0b7e3f5a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"}`,
		`{"type":"unsubscribe","conversation_id":"0b7e3f5a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"}`,
		`{"type":"send","id":"r2","conversation_id":"0b7e3f5a-1c2d-4e5f-8a9b-0c1d2e3f4a5b","client_msg_id":"c-1","body":{"text":"hi"}}`,
		`{"type":"ack","conversation_id":"0b7e3f5a-1c2d-4e5f-8a9b-0c1d2e3f4a5b","seq":5}`,
		`{"type":"ping","id":"r3"}`,
		// invalid ones
		``,
		`{`,
		`null`,
		`[]`,
		`"ping"`,
		`{"type":"ping"}{"type":"ping"}`,
		`{"type":"dance"}`,
		`{"type":"ping","extra":1}`,
		`{"type":"subscribe","conversation_id":"x","since_seq":-1}`,
		`{"type":"send","conversation_id":"x","client_msg_id":"c"}`,
		`{"type":"send","conversation_id":"x","body":1}`,
		`{"type":"ack","conversation_id":"x"}`,
		`{"type":"ack","conversation_id":"x","seq":"5"}`,
		`{"type":"ack","conversation_id":"x","seq":1e400}`,
		"{\"type\":\"ping\",\"id\":\"\xff\"}",
		`{"type":"ping","id":"` + strings.Repeat("i", 129) + `"}`,
		strings.Repeat("[", 20000),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		// the id is echoed in the answer, an error one too: never longer than the limit
		if len(fr.ID) > maxRequestIDLen {
			t.Fatalf("id of %d characters would be echoed", len(fr.ID))
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("error without a text for the client")
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("accepted invalid UTF-8 %q", data)
		}
		if len(fr.Body) > 0 && !json.Valid(fr.Body) {
			t.Fatalf("accepted a body that is not JSON: %q", fr.Body)
		}
		switch fr.Type {
		case "subscribe":
			if fr.ConversationID == "" {
				t.Fatalf("subscribe without conversation_id accepted: %q", data)
			}
			if fr.SinceSeq != nil && *fr.SinceSeq < 0 {
				t.Fatalf("negative since_seq accepted: %q", data)
			}
		case "unsubscribe":
			if fr.ConversationID == "" {
				t.Fatalf("unsubscribe without conversation_id accepted: %q", data)
			}
		case "send":
			if fr.ConversationID == "" || fr.ClientMsgID == "" || len(fr.Body) == 0 {
				t.Fatalf("send without a required field accepted: %q", data)
			}
		case "ack":
			if fr.ConversationID == "" || fr.Seq == nil {
				t.Fatalf("ack without a required field accepted: %q", data)
			}
		case "ping":
		default:
			t.Fatalf("frame of type %q accepted: %q", fr.Type, data)
		}
	})
}
