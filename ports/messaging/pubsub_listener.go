package messaging

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/domain/conversation"
)

// PubSubListener is the compatibility path: it hears the legacy channel conversation:{id} and
// feeds the same delivery path, where the copy that arrives second is dropped by seq.
type PubSubListener struct {
	Stats   PubSubStats
	keys    Keys
	client  redis.UniversalClient
	hub     *delivery.Hub
	log     *slog.Logger
	enabled bool
}

// PubSubStats count legacy-channel payloads that were not a stored Message (skipped).
type PubSubStats struct{ Malformed atomic.Int64 }

// PubSubEnabled is NOVA_PUBSUB_COMPAT.
type PubSubEnabled bool

func NewPubSubListener(keys Keys, client redis.UniversalClient, hub *delivery.Hub, enabled PubSubEnabled, log *slog.Logger) *PubSubListener {
	if client == nil || hub == nil || log == nil || keys.ChannelPrefix == "" {
		panic("messaging.NewPubSubListener: nil dependency")
	}
	return &PubSubListener{keys: keys, client: client, hub: hub, enabled: bool(enabled), log: log.With("component", "pubsub-listener")}
}

// Run listens until ctx ends; go-redis re-subscribes by itself after a reconnect.
func (l *PubSubListener) Run(ctx context.Context) error {
	if !l.enabled {
		return nil
	}
	ps := l.client.PSubscribe(ctx, l.keys.ChannelPrefix+"*")
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			l.offer(m)
		}
	}
}

func (l *PubSubListener) offer(m *redis.Message) {
	conv := conversation.ID(strings.TrimPrefix(m.Channel, l.keys.ChannelPrefix))
	if !l.hub.HasSubscribers(conv) {
		return
	}
	var head struct {
		Seq int64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(m.Payload), &head); err != nil || head.Seq < 1 {
		l.Stats.Malformed.Add(1) // the fan-out stream still carries the real message
		return
	}
	l.hub.Publish(conv, delivery.Item{Seq: head.Seq, JSON: []byte(m.Payload)})
}
