package http

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// sendRequest has the shape of the body of POST /v1/conversations/{id}/messages.
type sendRequest struct {
	ClientMsgID string          `json:"client_msg_id"`
	Body        json.RawMessage `json:"body"`
}

// FuzzDecodeStrict: decodeStrict never panics, and whatever it accepts survives a re-encoding,
// so a request it lets through is always one the API could have been sent.
func FuzzDecodeStrict(f *testing.F) {
	for _, seed := range []string{
		`{"client_msg_id":"c-1","body":{"text":"hi"}}`,
		`{"client_msg_id":"c-1","body":"x","extra":true}`,
		`{"client_msg_id":"c-1","body":1} {"client_msg_id":"c-2"}`,
		`{"client_msg_id":"\u00e9\ud83d\ude00","body":[1,2.5e3,null,true,{"a":{}}]}`,
		`{"client_msg_id":"c-1","body":`,
		`{"CLIENT_MSG_ID":"c-1","Body":null}`,
		`{"client_msg_id":"a","client_msg_id":"b"}`,
		`null`,
		`[]`,
		``,
		" \n\t{ \"body\" : \"\\u0000\" } \n",
		"{\"client_msg_id\":\"\xff\xfe\",\"body\":\"\xc3\x28\"}",
		`{"body":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// given any bytes as a request body
		var first sendRequest

		// when they are decoded strictly
		if err := decodeStrict(data, &first); err != nil {
			// then a refusal is the API's 400, never anything else
			if e := toAPIError(err); e.Status != 400 || e.Code != "invalid_argument" {
				t.Fatalf("refusal of %q maps to %d %s, want 400 invalid_argument", data, e.Status, e.Code)
			}
			return
		}

		// then what was accepted encodes, and the encoding is accepted again to the same value
		encoded, err := json.Marshal(first)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode %+v: %v", data, first, err)
		}
		var second sendRequest
		if err := decodeStrict(encoded, &second); err != nil {
			t.Fatalf("accepted %q, re-encoded as %s, then refused: %v", data, encoded, err)
		}
		again, err := json.Marshal(second)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encoded, again) || second.ClientMsgID != first.ClientMsgID {
			t.Fatalf("accepted %q: re-decoding changed the value:\n %s\n %s", data, encoded, again)
		}
	})
}
