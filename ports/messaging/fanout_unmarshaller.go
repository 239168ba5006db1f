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
	MetaEventType      = "event_type"
	// MetaMalformed is set (to the reason) on an entry that could not be read; handlers must
	// not process it: the router sends it to the dead-letter stream.
	MetaMalformed = "nova_malformed"
)

// FanoutUnmarshaller reads fan-out entries for Watermill. It never fails: watermill-redisstream
// stops its subscriber on an unmarshal error, so one bad entry would stop consumption. A bad
// entry becomes a message marked MetaMalformed instead, which the router dead-letters.
type FanoutUnmarshaller struct{}

var _ wredis.Unmarshaller = FanoutUnmarshaller{}

func (FanoutUnmarshaller) Unmarshal(values map[string]any) (*message.Message, error) {
	str := func(k string) string { s, _ := values[k].(string); return s }
	id := str(wredis.UUIDHeaderKey)
	if id == "" {
		id = "malformed-" + uuid.NewString()
	}
	msg := message.NewMessage(id, []byte(str("payload")))
	for _, k := range []string{MetaConversationID, MetaStreamKey, MetaEntryID} {
		msg.Metadata.Set(k, str(k))
	}
	msg.Metadata.Set(MetaEventType, "conversation.message_posted.v1")
	switch {
	case str(wredis.UUIDHeaderKey) == "":
		msg.Metadata.Set(MetaMalformed, fmt.Sprintf("missing %s", wredis.UUIDHeaderKey))
	case str("payload") == "":
		msg.Metadata.Set(MetaMalformed, "missing payload")
	case str(MetaConversationID) == "" || str(MetaEntryID) == "":
		msg.Metadata.Set(MetaMalformed, "missing conversation_id or entry_id")
	}
	return msg, nil
}
