package redisstream

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/events"
)

// LiveChannel is the channel on which Nova's instances hear a conversation's new messages:
// sharded Pub/Sub (SPUBLISH) where Redis has it, plain Pub/Sub before Redis 7. It is internal
// to Nova; other consumers use the streams or the legacy channel (PROTOCOL.md section 5).
func LiveChannel(conversationID string) string { return liveChannelPrefix + conversationID }

const liveChannelPrefix = "nova:live:"

// LiveChannel is conv's live channel with these partitions: LiveChannel(conv) for one, and
// "nova:live:{p}:<conv>" above, p being conv's fan-out partition. The hash tag puts the live
// channels of one partition in one Cluster slot: an instance then holds one sharded Pub/Sub
// connection per partition (a go-redis Pub/Sub connection serves one slot, and re-subscribes
// all its channels in one command), as Centrifugo's broker partitions its channels.
func (n FanoutPartitions) LiveChannel(conv string) string {
	return n.liveChannelIn(n.Of(conv), conv)
}

// liveChannelIn is LiveChannel for a conversation whose partition p is known.
func (n FanoutPartitions) liveChannelIn(p int, conv string) string {
	if !n.Split() {
		return LiveChannel(conv)
	}
	return liveChannelPrefix[:len(liveChannelPrefix)-1] + events.PartitionSuffix(p) + ":" + conv
}

// ConversationOfLive is the conversation a live channel (either form) belongs to.
func ConversationOfLive(channel string) string {
	rest := strings.TrimPrefix(channel, liveChannelPrefix)
	if strings.HasPrefix(rest, "{") {
		if _, conv, ok := strings.Cut(rest, "}:"); ok {
			return conv
		}
	}
	return rest
}

// The live channel's payload is "<seq> <created_at unix ms> <Message JSON>": seq and time in
// front, so an instance routes and checks a message by seq without parsing its JSON.
// publish_entries.lua writes it; EncodeLive and DecodeLive are its only Go encoder and decoder.

// A membership notice on the live channel is "x <user id>": that user left the conversation, so
// instances end their live subscriptions to it at once.

// EncodeRemoved is the live payload saying user left the conversation.
func EncodeRemoved(user string) []byte { return []byte("x " + user) }

// DecodeRemoved reads a membership notice; ok is false for anything else.
func DecodeRemoved(payload []byte) (user string, ok bool) {
	rest, ok := bytes.CutPrefix(payload, []byte("x "))
	if !ok || len(rest) == 0 {
		return "", false
	}
	return string(rest), true
}

// EncodeLive is what publish_entries.lua publishes (tests use it to inject live messages).
func EncodeLive(it delivery.Item) []byte {
	b := strconv.AppendInt(nil, it.Seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, it.CreatedAtMs, 10)
	b = append(b, ' ')
	return append(b, it.JSON...)
}

var errBadLive = errors.New("live payload is not \"<seq> <ms> <json>\"")

// DecodeLive reads a live channel payload.
func DecodeLive(payload []byte) (delivery.Item, error) {
	seqPart, rest, ok := bytes.Cut(payload, []byte{' '})
	if !ok {
		return delivery.Item{}, errBadLive
	}
	msPart, body, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(body) == 0 || body[0] != '{' {
		return delivery.Item{}, errBadLive
	}
	seq, err := strconv.ParseInt(string(seqPart), 10, 64)
	if err != nil || seq < 1 {
		return delivery.Item{}, errBadLive
	}
	ms, err := strconv.ParseInt(string(msPart), 10, 64)
	if err != nil {
		return delivery.Item{}, errBadLive
	}
	return delivery.Item{Seq: seq, CreatedAtMs: ms, JSON: body}, nil
}
