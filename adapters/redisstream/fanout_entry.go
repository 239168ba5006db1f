package redisstream

import (
	"strconv"
	"strings"

	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/events"
	"github.com/nova-chat/nova/internal/messagejson"
)

// fanoutEntry encodes a message as a fan-out entry, field for field as publish_entries.lua
// writes it (the Watermill envelope with its msgpack metadata, plus the plain fields), for the
// entries Go writes: redrives and replays. participants may be nil (unknown).
func fanoutEntry(m conversation.Message, participants []string) (map[string]any, error) {
	payload, err := messagejson.Encode(m)
	if err != nil {
		return nil, err
	}
	fields, err := fanoutFields(Entry{ConversationID: string(m.ConversationID), Seq: m.Seq, MessageID: m.ID,
		SenderID: string(m.SenderID), CreatedAt: m.CreatedAt, Payload: payload, Participants: participants})
	if err != nil {
		return nil, err
	}
	values := make(map[string]any, len(fields)/2)
	for i := 0; i < len(fields); i += 2 {
		values[fields[i].(string)] = fields[i+1]
	}
	return values, nil
}

// fanoutFields is the fan-out entry of e as XADD field/value pairs, in a fixed order: what the
// split publish hands publish_fanout.lua, and what fanoutEntry returns as a map.
func fanoutFields(e Entry) ([]any, error) {
	conv, stream, entryID := e.ConversationID, ConversationStream(e.ConversationID), conversation.StreamID(e.Seq)
	msg := message.NewMessage(e.MessageID, e.Payload)
	msg.Metadata.Set(events.MetaEventType, events.TypeMessagePosted)
	msg.Metadata.Set(events.MetaConversationID, conv)
	msg.Metadata.Set(events.MetaStreamKey, stream)
	msg.Metadata.Set(events.MetaEntryID, entryID)
	msg.Metadata.Set(events.MetaSeq, strconv.FormatInt(e.Seq, 10))
	msg.Metadata.Set(events.MetaSenderID, e.SenderID)
	if len(e.Participants) > 0 {
		msg.Metadata.Set(events.MetaParticipants, strings.Join(e.Participants, ","))
	}
	envelope, err := wredis.DefaultMarshallerUnmarshaller{}.Marshal(FanoutStream, msg)
	if err != nil {
		return nil, err
	}
	return []any{
		wredis.UUIDHeaderKey, envelope[wredis.UUIDHeaderKey],
		"payload", envelope["payload"],
		"metadata", envelope["metadata"],
		events.MetaConversationID, conv,
		events.MetaStreamKey, stream,
		events.MetaEntryID, entryID,
		"timestamp", e.CreatedAt.UnixMilli(),
	}, nil
}
