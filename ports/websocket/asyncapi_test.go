package websocket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/nova-chat/nova/events"
	"github.com/nova-chat/nova/internal/testinfra"
)

// frameSchemas compiles the payload schemas of docs/asyncapi.yaml, by name.
func frameSchemas(t *testing.T) func(name string) *jsonschema.Schema {
	t.Helper()
	data, err := os.ReadFile("../../docs/asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	// the YAML as JSON values, which is what the schema library reads
	asJSON, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(asJSON))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("file:///asyncapi.json", inst); err != nil {
		t.Fatal(err)
	}
	compiled := map[string]*jsonschema.Schema{}
	return func(name string) *jsonschema.Schema {
		if s, ok := compiled[name]; ok {
			return s
		}
		s, err := c.Compile("file:///asyncapi.json#/components/schemas/" + name)
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		compiled[name] = s
		return s
	}
}

func conforms(t *testing.T, schema func(string) *jsonschema.Schema, name string, raw []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: not JSON: %s", name, raw)
	}
	if err := schema(name).Validate(v); err != nil {
		t.Errorf("%s frame %s does not match docs/asyncapi.yaml: %v", name, raw, err)
	}
}

func TestEveryFrameAndEventMatchesTheAsyncAPIDocument(t *testing.T) {
	schema := frameSchemas(t)
	inst, rds := startNova(t, nil)
	alice, bob := testinfra.NewUser(t, inst.URL), testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation(bob.User)
	aws, bws := alice.DialWS("", ""), bob.DialWS("", "")
	next := func(ws *testinfra.WS, want string) testinfra.Frame {
		t.Helper()
		f := ws.Next(5 * time.Second)
		if f.Type != want {
			t.Fatalf("got %s, want a %s frame", f.Raw, want)
		}
		conforms(t, schema, want, f.Raw)
		return f
	}
	write := func(ws *testinfra.WS, name string, frame map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(frame)
		conforms(t, schema, name, raw) // what the test sends is what the document describes too
		ws.Write(frame)
	}

	write(bws, "subscribe", map[string]any{"type": "subscribe", "id": "s1", "conversation_id": conv, "since_seq": 0})
	next(bws, "subscribed")
	write(aws, "send", map[string]any{"type": "send", "id": "m1", "conversation_id": conv, "client_msg_id": "c-1", "body": map[string]any{"text": "<hi>"}})
	sent := next(aws, "sent")
	msg := next(bws, "message")
	write(bws, "ack", map[string]any{"type": "ack", "conversation_id": conv, "seq": msg.Message.Seq})
	write(bws, "ping", map[string]any{"type": "ping", "id": "p1"})
	next(bws, "pong")
	write(bws, "subscribe", map[string]any{"type": "subscribe", "id": "s2", "conversation_id": uuid.NewString()})
	next(bws, "error")
	alice.Do("DELETE", "/v1/conversations/"+string(conv)+"/participants/"+string(bob.User), nil)
	next(bws, "unsubscribed")
	write(aws, "unsubscribe", map[string]any{"type": "unsubscribe", "conversation_id": conv})

	// and the fan-out event of that message
	entries, err := rds.Client().XRange(context.Background(), events.Stream, "-", "+").Result()
	if err != nil || len(entries) == 0 {
		t.Fatalf("fan-out entries: %d, %v", len(entries), err)
	}
	payload, _ := entries[0].Values["payload"].(string)
	conforms(t, schema, "Message", []byte(payload))

	// and the check is real: a renamed field fails it
	renamed := strings.Replace(string(sent.Raw), `"seq"`, `"sequence"`, 1)
	v, _ := jsonschema.UnmarshalJSON(strings.NewReader(renamed))
	if schema("sent").Validate(v) == nil {
		t.Fatalf("a sent frame with seq renamed passed: %s", renamed)
	}
}
