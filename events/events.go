// Package events is Nova's event contract for other services, in Go: the fan-out stream and
// its names, the event types, a decoder, and a consumer-group subscriber configured the way
// docs/EVENTS.md asks (reads from the stream's start, claims a dead consumer's entries,
// recreates its group when Redis came back empty). It depends on Watermill and go-redis only,
// never on Nova's internals (internal/jsonenc, standard library only, aside), so a service
// importing it pulls in nothing else of Nova.
//
//	sub, _ := events.NewSubscriber(rdb, "search-indexer", hostname, logger)
//	router.AddConsumerHandler("search-indexer", events.Stream, sub, func(msg *message.Message) error {
//		if msg.Metadata.Get(events.MetaMalformed) != "" {
//			return poison(msg) // an entry nobody can read: keep it aside, go on
//		}
//		posted, ok, err := events.DecodeMessagePosted(msg)
//		if err != nil || !ok {
//			return err // a type this service does not handle: ok is false, err nil
//		}
//		return index(msg.Context(), posted) // idempotent by posted.ID (events may come twice)
//	})
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/internal/jsonenc"
)

// Stream is the fan-out stream: one entry per stored message (PROTOCOL.md section 5).
const Stream = "stream:fanout:all-conversations"

// ReplayStream is where `nova replay --group <group>` writes stored messages again, from
// Postgres, for that group alone: the same entry format as Stream, without participants. Read
// it with a second handler of the same group (NewSubscriber works for it), and delete it when
// done (DEL); Nova never trims it.
func ReplayStream(group string) string { return "stream:fanout:replay:" + group }

// Event types, in the metadata key MetaEventType. A new version gets a new name.
const TypeMessagePosted = "conversation.message_posted.v1"

// Metadata keys of a fan-out entry as a Watermill message carries them. Every value is a string.
const (
	MetaEventType      = "event_type"
	MetaConversationID = "conversation_id"
	MetaSeq            = "seq"
	MetaSenderID       = "sender_id"
	// MetaParticipants lists the conversation's participants when the message was stored
	// (comma-separated); empty on re-published entries: read the conversation then.
	MetaParticipants = "participants"
)

// MessagePosted is the payload of conversation.message_posted.v1: the Message JSON of
// PROTOCOL.md, field for field. It is that format's one Go type: Nova's HTTP answers, WebSocket
// frames, outbox rows and Redis payloads are written with EncodeMessage and read with
// DecodeMessage too (internal/messagejson maps it to and from Nova's domain), so a field
// renamed inside Nova cannot change what goes out.
type MessagePosted struct {
	ID             string          `json:"id"`
	ConversationID string          `json:"conversation_id"`
	Seq            int64           `json:"seq"`
	StreamID       string          `json:"stream_id"`
	SenderID       string          `json:"sender_id"`
	ClientMsgID    string          `json:"client_msg_id"`
	Body           json.RawMessage `json:"body"`
	CreatedAt      time.Time       `json:"created_at"`
	// Participants is from the metadata (nil when the entry does not carry them).
	Participants []string `json:"-"`
}

// EncodeMessage writes m as the Message JSON, without HTML escaping (a body of angle brackets
// stays as sent; see internal/jsonenc).
func EncodeMessage(m MessagePosted) ([]byte, error) { return jsonenc.Marshal(m) }

// DecodeMessage reads the Message JSON. It checks the syntax only (see DecodeMessagePosted for
// the fields an event must have).
func DecodeMessage(data []byte) (MessagePosted, error) {
	var m MessagePosted
	err := json.Unmarshal(data, &m)
	return m, err
}

// ErrMalformed marks an entry that claims to be a known event but cannot be read; retrying
// will not help (send it to your poison queue).
var ErrMalformed = errors.New("malformed event")

// DecodeMessagePosted reads a conversation.message_posted.v1 event. ok is false, with no
// error, for entries of other types (skip them).
func DecodeMessagePosted(msg *message.Message) (posted MessagePosted, ok bool, err error) {
	if t := msg.Metadata.Get(MetaEventType); t != "" && t != TypeMessagePosted {
		return MessagePosted{}, false, nil
	}
	posted, err = DecodeMessage(msg.Payload)
	if err != nil {
		return MessagePosted{}, false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if posted.ID == "" || posted.ConversationID == "" || posted.Seq < 1 {
		return MessagePosted{}, false, fmt.Errorf("%w: id, conversation_id and seq are required", ErrMalformed)
	}
	if p := msg.Metadata.Get(MetaParticipants); p != "" {
		posted.Participants = strings.Split(p, ",")
	}
	return posted, true, nil
}

// SubscriberOptions tune NewSubscriber; zero values take the defaults shown.
type SubscriberOptions struct {
	// ClaimIdle: an entry pending this long under a consumer that stopped is taken over (30 s).
	ClaimIdle time.Duration
	// ClaimInterval: how often to look for such entries (5 s).
	ClaimInterval time.Duration
	// Partitions is Nova's NOVA_FANOUT_PARTITIONS (1): after Redis came back empty the group is
	// created again on every partition's stream (Streams).
	Partitions int
}

// NewSubscriber is a watermill-redisstream subscriber for one consumer group of the fan-out
// stream (of every partition, when Nova runs with NOVA_FANOUT_PARTITIONS > 1: add one handler
// per stream of Streams, all with this subscriber). consumer names this instance inside the group and must stay the same across its
// restarts (a hostname, a pod name), so that what it held when it stopped comes back to it.
// The group is created from the stream's start when missing, also after Redis restarted
// empty (NOGROUP). Declare the group in Nova's NOVA_FANOUT_GROUPS too, so that Nova never
// trims past what it has not read (docs/EVENTS.md). The same subscriber reads a replay stream
// (ReplayStream): its group is created when the handler subscribes to it.
func NewSubscriber(client redis.UniversalClient, group, consumer string, logger watermill.LoggerAdapter, opts ...SubscriberOptions) (message.Subscriber, error) {
	if client == nil || group == "" || consumer == "" {
		return nil, errors.New("events.NewSubscriber: client, group and consumer are required")
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	var o SubscriberOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 30 * time.Second
	}
	if o.ClaimInterval <= 0 {
		o.ClaimInterval = 5 * time.Second
	}
	return redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:                        client,
		Unmarshaller:                  Unmarshaller{},
		ConsumerGroup:                 group,
		Consumer:                      consumer,
		OldestId:                      "0",
		MaxIdleTime:                   o.ClaimIdle,
		ClaimInterval:                 o.ClaimInterval,
		BlockTime:                     time.Second,
		DisableIndefiniteInitialBlock: true,
		ShouldStopOnReadErrors: func(err error) bool {
			if strings.Contains(err.Error(), "NOGROUP") { // Redis came back empty
				// the read error does not name its stream: every partition's group is made sure of
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				for _, stream := range Streams(o.Partitions) {
					err := client.XGroupCreateMkStream(ctx, stream, group, "0").Err()
					if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
						logger.Error("consumer group lost and not recreated; the next read tries again", err,
							watermill.LogFields{"stream": stream, "group": group})
					}
				}
			}
			return false
		},
	}, logger)
}

// More metadata keys: where the entry's message sits in its conversation stream, and the mark
// Unmarshaller sets on an entry it could not read.
const (
	MetaStreamKey = "stream_key"
	MetaEntryID   = "entry_id"
	// MetaMalformed is set (to the reason) on an entry whose envelope could not be read.
	MetaMalformed = "nova_malformed"
)

// Unmarshaller reads fan-out entries for Watermill: the library's envelope (uuid, payload,
// msgpack metadata) plus the plain fields. It never fails, because watermill-redisstream stops
// its subscriber on an unmarshal error, so one bad entry would stop a consumer group: an entry
// with a broken envelope becomes a message marked MetaMalformed instead (NewSubscriber uses it;
// send such messages to your poison queue).
type Unmarshaller struct{}

var _ redisstream.Unmarshaller = Unmarshaller{}

func (Unmarshaller) Unmarshal(values map[string]any) (*message.Message, error) {
	id, _ := values[redisstream.UUIDHeaderKey].(string)
	if id == "" {
		msg := message.NewMessage("malformed-"+watermill.NewUUID(), nil)
		msg.Metadata.Set(MetaMalformed, "missing "+redisstream.UUIDHeaderKey)
		return msg, nil
	}
	msg, err := redisstream.DefaultMarshallerUnmarshaller{}.Unmarshal(values)
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
