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
	conv, stream := string(m.ConversationID), ConversationStream(string(m.ConversationID))
	msg := message.NewMessage(m.ID, payload)
	msg.Metadata.Set(events.MetaEventType, events.TypeMessagePosted)
	msg.Metadata.Set(events.MetaConversationID, conv)
	msg.Metadata.Set(events.MetaStreamKey, stream)
	msg.Metadata.Set(events.MetaEntryID, conversation.StreamID(m.Seq))
	msg.Metadata.Set(events.MetaSeq, strconv.FormatInt(m.Seq, 10))
	msg.Metadata.Set(events.MetaSenderID, string(m.SenderID))
	if len(participants) > 0 {
		msg.Metadata.Set(events.MetaParticipants, strings.Join(participants, ","))
	}
	values, err := wredis.DefaultMarshallerUnmarshaller{}.Marshal(FanoutStream, msg)
	if err != nil {
		return nil, err
	}
	values[events.MetaConversationID] = conv
	values[events.MetaStreamKey] = stream
	values[events.MetaEntryID] = conversation.StreamID(m.Seq)
	values["timestamp"] = m.CreatedAt.UnixMilli()
	return values, nil
}
