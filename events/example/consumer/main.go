// Command consumer is an example of another service consuming Nova's events with package
// events: it keeps, per conversation, the set of message ids it has indexed (a stand-in for a
// search index), idempotently, so an event delivered twice (after a crash, a claim) changes
// nothing. Run it with REDIS_URL, GROUP and CONSUMER (a name that stays the same across
// restarts); CLAIM_IDLE (default 30s) is how long a dead consumer's entries wait to be taken
// over; PARTITIONS (default 1) is Nova's NOVA_FANOUT_PARTITIONS: the group reads every
// partition. Declare GROUP in Nova's NOVA_FANOUT_GROUPS so Nova never trims past it.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/events"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run() error {
	opts, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	group, consumer := os.Getenv("GROUP"), os.Getenv("CONSUMER")
	claimIdle := 30 * time.Second
	if v := os.Getenv("CLAIM_IDLE"); v != "" {
		if claimIdle, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("CLAIM_IDLE: %w", err)
		}
	}
	partitions := 1
	if v := os.Getenv("PARTITIONS"); v != "" {
		if partitions, err = strconv.Atoi(v); err != nil || partitions < 1 || partitions > events.MaxPartitions {
			return fmt.Errorf("PARTITIONS: must be 1..%d", events.MaxPartitions)
		}
	}
	rdb := redis.NewClient(opts)
	logger := watermill.NewSlogLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	sub, err := events.NewSubscriber(rdb, group, consumer, logger,
		events.SubscriberOptions{ClaimIdle: claimIdle, ClaimInterval: claimIdle / 2, Partitions: partitions})
	if err != nil {
		return err
	}
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		return err
	}
	router.AddMiddleware(middleware.Retry{MaxRetries: 3, InitialInterval: 100 * time.Millisecond, Logger: logger}.Middleware)
	handle := func(msg *message.Message) error {
		if reason := msg.Metadata.Get(events.MetaMalformed); reason != "" {
			return rdb.RPush(msg.Context(), "example:"+group+":malformed", reason).Err()
		}
		posted, ok, err := events.DecodeMessagePosted(msg)
		if err != nil || !ok {
			return err
		}
		// the effect, idempotent by message id; deliveries counted to show re-deliveries
		pipe := rdb.TxPipeline()
		pipe.SAdd(msg.Context(), "example:"+group+":indexed:"+posted.ConversationID, posted.ID)
		pipe.Incr(msg.Context(), "example:"+group+":deliveries")
		_, err = pipe.Exec(msg.Context())
		time.Sleep(5 * time.Millisecond) // indexing takes a moment
		return err
	}
	// one handler per partition, all in the same group: a conversation's events are in one
	// partition, so they still arrive in seq order
	for p, stream := range events.Streams(partitions) {
		router.AddConsumerHandler(fmt.Sprintf("%s-%d", group, p), stream, sub, handle)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return router.Run(ctx)
}
