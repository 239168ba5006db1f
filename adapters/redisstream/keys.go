// Package redisstream holds Nova's driven adapters on Redis Streams (and the legacy Pub/Sub channel).
package redisstream

import (
	"strings"

	"github.com/nova-chat/nova/events"
)

// Key names are part of the external contract (PROTOCOL.md section 5).
const (
	FanoutStream = events.Stream
	// FanoutIndex maps fan-out entry ids to (conversation, seq): members "<entry id>|<conversation>|<seq>"
	// scored by the id's milliseconds; trimmed together with the stream. A partition's index is
	// FanoutIndex with the partition's suffix (FanoutPartitions.Index).
	FanoutIndex   = "stream:fanout:index"
	ConsumerGroup = "messaging-service"
	// fanoutLastSeq prefixes, per partition and conversation, the highest seq written to the
	// partition's stream: what makes the fan-out write of a split publish idempotent.
	fanoutLastSeq = "stream:fanout:last-seq"
)

func ConversationStream(conversationID string) string { return "stream:conversation:" + conversationID }
func PubSubChannel(conversationID string) string      { return "conversation:" + conversationID }

// FanoutPartitions is NOVA_FANOUT_PARTITIONS: how many partitions the fan-out stream has. It
// owns the fan-out key names of the Redis adapter; the partition function and stream names are
// package events' (other services use them too). Below 2 (the default, 1) there is one stream,
// stream:fanout:all-conversations, written atomically with the conversation stream; above, each
// partition's keys share the hash tag {p}, so every script touches one hash slot.
type FanoutPartitions int

// Count is how many partitions there are (at least 1).
func (n FanoutPartitions) Count() int { return max(int(n), 1) }

// Split says whether the publish is split in two (conversation half, partition half).
func (n FanoutPartitions) Split() bool { return n > 1 }

// Of is the partition of a conversation.
func (n FanoutPartitions) Of(conversationID string) int {
	return events.Partition(conversationID, n.Count())
}

// Stream is partition p's fan-out stream.
func (n FanoutPartitions) Stream(p int) string { return events.PartitionStream(p, n.Count()) }

// Streams lists every partition's fan-out stream, partition 0 first.
func (n FanoutPartitions) Streams() []string { return events.Streams(n.Count()) }

// Index is partition p's fan-out index (in p's hash slot).
func (n FanoutPartitions) Index(p int) string { return fanoutIndexOf(n.Stream(p)) }

// LastSeq is the key holding the highest seq of conv written to partition p's stream.
func (n FanoutPartitions) LastSeq(p int, conv string) string {
	return fanoutLastSeq + events.PartitionSuffix(p) + ":" + conv
}

// fanoutIndexOf is the index kept beside a fan-out stream: FanoutIndex with the stream's
// partition suffix, if any.
func fanoutIndexOf(stream string) string {
	return FanoutIndex + strings.TrimPrefix(stream, FanoutStream)
}
