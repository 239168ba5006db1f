package redisstream_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/events"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/internal/testinfra"
)

// The fan-out entry has two writers: publish_entries.lua (every send) and fanoutEntry (replays,
// redrives). Both must write the same fields, with the same metadata.
func TestTheGoAndLuaWritersOfTheFanoutEntryAgree(t *testing.T) {
	ctx := context.Background()
	rdb := testinfra.StartRedis(t).Client()
	m := conversation.Message{ID: "0192d6a2-0000-7000-8000-000000000001", ConversationID: "0192d6a2-0000-7000-8000-0000000000c1",
		Seq: 1, StreamID: "1-0", SenderID: "0192d6a2-0000-7000-8000-0000000000a1", ClientMsgID: "c-1",
		Body: []byte(`{"text":"<hi>"}`), CreatedAt: time.UnixMilli(1764500000123).UTC()}
	payload, err := messagejson.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	participants := []string{string(m.SenderID), "0192d6a2-0000-7000-8000-0000000000b2"}

	// the Lua script's entry
	pub := redisstream.NewDualStreamPublisher(rdb, 1000, false, 1)
	if _, err := pub.Publish(ctx, [][]redisstream.Entry{{{OutboxID: 1, ConversationID: string(m.ConversationID), Seq: 1, MessageID: m.ID,
		SenderID: string(m.SenderID), CreatedAt: m.CreatedAt, Payload: payload, Participants: participants}}}); err != nil {
		t.Fatal(err)
	}
	lua := rdb.XRange(ctx, redisstream.FanoutStream, "-", "+").Val()[0].Values

	// the Go encoder's entry, through Redis the same way
	values, err := redisstream.FanoutEntry(m, participants)
	if err != nil {
		t.Fatal(err)
	}
	id := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "go-entry", Values: values}).Val()
	goEntry := rdb.XRange(ctx, "go-entry", id, id).Val()[0].Values

	if lk, gk := slices.Sorted(maps.Keys(lua)), slices.Sorted(maps.Keys(goEntry)); !slices.Equal(lk, gk) {
		t.Fatalf("fields differ: Lua %v, Go %v", lk, gk)
	}
	for k, v := range lua {
		if k != "metadata" && fmt.Sprint(v) != fmt.Sprint(goEntry[k]) {
			t.Errorf("field %s: Lua %v, Go %v", k, v, goEntry[k])
		}
	}
	fromLua, errLua := events.Unmarshaller{}.Unmarshal(lua)
	fromGo, errGo := events.Unmarshaller{}.Unmarshal(goEntry)
	if errLua != nil || errGo != nil {
		t.Fatalf("unmarshal: Lua %v, Go %v", errLua, errGo)
	}
	// (the unmarshaller never fails; an envelope it cannot read is marked instead)
	if bad := fromLua.Metadata.Get(events.MetaMalformed) + fromGo.Metadata.Get(events.MetaMalformed); bad != "" {
		t.Fatalf("an envelope is malformed: %s", bad)
	}
	if !maps.Equal(map[string]string(fromLua.Metadata), map[string]string(fromGo.Metadata)) || fromLua.UUID != fromGo.UUID {
		t.Errorf("metadata differ:\nLua %v %s\nGo  %v %s", fromLua.Metadata, fromLua.UUID, fromGo.Metadata, fromGo.UUID)
	}
}
