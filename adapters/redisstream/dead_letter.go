package redisstream

import (
	"context"

	"github.com/ThreeDotsLabs/watermill"
	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
)

// DeadLetterStream holds fan-out entries that no handler could process: malformed ones, ones
// whose payload is not a stored message, and ones whose handler panicked on every attempt.
// Operators inspect and replay them by hand.
const DeadLetterStream = "stream:fanout:dead-letter"

// NewDeadLetterPublisher writes poisoned messages with Watermill's own marshaller, so the
// reason, handler and original metadata travel with them.
func NewDeadLetterPublisher(ctx context.Context, url URL) (*wredis.Publisher, func(), error) {
	client, closeClient, err := NewClient(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	pub, err := wredis.NewPublisher(wredis.PublisherConfig{
		Client:  client,
		Maxlens: map[string]int64{DeadLetterStream: 100_000},
	}, watermill.NopLogger{})
	if err != nil {
		closeClient()
		return nil, nil, err
	}
	return pub, func() { _ = pub.Close() }, nil
}
