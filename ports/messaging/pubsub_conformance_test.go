package messaging_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/messaging"
)

// restartGracefully restarts the private Redis as an operator would for maintenance: pause
// writes so every command already executed has its reply delivered, then restart in place
// (AOF keeps the data). A hard kill would also drop replies of applied writes, and the suite
// (which counts exact publishes) would see a publisher's retry as a second message.
func restartGracefully(port int) []string {
	p := strconv.Itoa(port)
	return []string{"sh", "-c", "redis-cli -p " + p + " CLIENT PAUSE 3000 WRITE >/dev/null && sleep 0.3 && " +
		"redis-cli -p " + p + " DEBUG RESTART >/dev/null 2>&1; true"}
}

// TestWatermillConformance runs Watermill's universal Pub/Sub suite against the subscriber
// exactly as Nova configures it (GroupSubscribers: FanoutUnmarshaller, NOGROUP recreation,
// claims) with watermill-redisstream's publisher, on a private Redis that the suite restarts
// (AOF with fsync on every write, so a restart keeps what was acknowledged).
func TestWatermillConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the universal suite takes minutes; run without -short")
	}
	rds := testinfra.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always", "--enable-debug-command", "yes")
	features := tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     false,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		RestartServiceCommand:               restartGracefully(rds.Port),
		RequireSingleInstance:               false,
		NewSubscriberReceivesOldMessages:    true,
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		ctx := context.Background()
		client, closeClient, err := redisstream.NewClient(ctx, redisstream.URL(rds.URL()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(closeClient)
		pub, err := wredis.NewPublisher(wredis.PublisherConfig{Client: client}, watermill.NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		subs := redisstream.NewGroupSubscribers(redisstream.URL(rds.URL()), redisstream.ConsumerName(watermill.NewShortUUID()),
			redisstream.GroupConfig{ClaimIdle: 5 * time.Second, ClaimInterval: 3 * time.Second, ConsumerTimeout: time.Minute,
				NackResendSleep: time.Millisecond},
			messaging.FanoutUnmarshaller{}, quiet)
		sub, err := subs.For(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		return pub, sub
	}
	tests.TestPubSub(t, features,
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, watermill.NewShortUUID())
		},
		newPubSub)
}
