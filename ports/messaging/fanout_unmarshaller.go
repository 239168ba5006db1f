package messaging

import (
	"fmt"

	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// Metadata keys of fan-out messages as Watermill handlers see them.
const (
	MetaConversationID = "conversation_id"
	MetaStreamKey      = "stream_key"
	MetaEntryID        = "entry_id"
	// MetaParticipants lists the conversation's participants, comma-separated, when the
	// publisher knew them (absent from entries written before it was added, and from redrives).
	MetaParticipants = "participants"
	MetaSeq          = "seq"
	MetaSenderID     = "sender_id"
	// MetaMalformed is set (to the reason) on an entry whose envelope could not be read; handlers
	// never see it: the router sends it to the dead-letter stream.
	MetaMalformed = "nova_malformed"
)

// FanoutUnmarshaller reads fan-out entries for Watermill: the library's envelope (uuid, payload,
// msgpack metadata) plus Nova's plain fields. It never fails, because watermill-redisstream
// stops its subscriber on an unmarshal error, so one bad entry would stop consumption: an entry
// with a broken envelope becomes a message marked MetaMalformed instead, and is dead-lettered.
type FanoutUnmarshaller struct{}

var _ wredis.Unmarshaller = FanoutUnmarshaller{}

func (FanoutUnmarshaller) Unmarshal(values map[string]any) (*message.Message, error) {
	id, _ := values[wredis.UUIDHeaderKey].(string)
	if id == "" {
		msg := message.NewMessage("malformed-"+uuid.NewString(), nil)
		msg.Metadata.Set(MetaMalformed, fmt.Sprintf("missing %s", wredis.UUIDHeaderKey))
		return msg, nil
	}
	msg, err := wredis.DefaultMarshallerUnmarshaller{}.Unmarshal(values)
	if err != nil {
		msg = message.NewMessage(id, nil)
		msg.Metadata.Set(MetaMalformed, err.Error())
		return msg, nil
	}
	for _, k := range []string{MetaConversationID, MetaStreamKey, MetaEntryID} {
		if v, ok := values[k].(string); ok && msg.Metadata.Get(k) == "" {
			msg.Metadata.Set(k, v)
		}
	}
	return msg, nil
}
