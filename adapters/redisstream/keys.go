// Package redisstream holds Nova's driven adapters on Redis Streams (and the legacy Pub/Sub channel).
package redisstream

// Key names are part of the external contract (PROTOCOL.md section 5).
const (
	FanoutStream = "stream:fanout:all-conversations"
	// FanoutIndex maps fan-out entry ids to (conversation, seq): members "<entry id>|<conversation>|<seq>"
	// scored by the id's milliseconds; trimmed together with the stream.
	FanoutIndex   = "stream:fanout:index"
	ConsumerGroup = "messaging-service"
)

func ConversationStream(conversationID string) string { return "stream:conversation:" + conversationID }
func PubSubChannel(conversationID string) string      { return "conversation:" + conversationID }
