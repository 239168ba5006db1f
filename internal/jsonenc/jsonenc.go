// Package jsonenc encodes JSON the way Nova stores and sends it: like encoding/json, but
// without HTML escaping. encoding/json turns <, > and & inside strings into \u003c and friends
// (also inside a json.RawMessage such as a message body), which makes a body of angle brackets
// six times larger in Postgres, in Redis and on the wire, for no reader that needs it: Nova's
// JSON never lands in an HTML page unescaped.
package jsonenc

import (
	"bytes"
	"encoding/json"
	"io"
)

// Marshal is json.Marshal without HTML escaping.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := Encode(&buf, v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Encode writes v to w as one line of JSON without HTML escaping (json.Encoder's newline included).
func Encode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
