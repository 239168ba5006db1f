package redisstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/messaging"
)

type noSignal struct{}

func (noSignal) Committed([]postgres.CommittedMessage) {}

// Entries a consumer took and never acked, trimmed from the stream meanwhile, are published
// again from Postgres: by another instance's claim loop when the consumer is gone, and by the
// consumer itself when it comes back under its own name (it reads its own pending entries
// first; the claim loop, set not to run here, must not be what saves them).
func TestEntriesTrimmedBeforeTheyWereAckedAreRepublishedFromPostgres(t *testing.T) {
	for _, n := range []redisstream.FanoutPartitions{1, 4} {
		t.Run(fmt.Sprintf("%d partitions, claimed by another consumer", n), func(t *testing.T) {
			trimmedEntriesAreRepublished(t, n, "alive",
				redisstream.GroupConfig{ClaimIdle: 200 * time.Millisecond, ClaimInterval: 300 * time.Millisecond, ConsumerTimeout: time.Hour})
		})
		t.Run(fmt.Sprintf("%d partitions, read again by their own consumer", n), func(t *testing.T) {
			trimmedEntriesAreRepublished(t, n, "dead",
				redisstream.GroupConfig{ClaimIdle: time.Hour, ClaimInterval: time.Hour, ConsumerTimeout: time.Hour})
		})
		// its claim loop, which would take them too (they have been idle longer than ClaimIdle),
		// waits until its read loop went through them: each is re-published once
		t.Run(fmt.Sprintf("%d partitions, read again by their own consumer, claims on", n), func(t *testing.T) {
			trimmedEntriesAreRepublished(t, n, "dead",
				redisstream.GroupConfig{ClaimIdle: time.Millisecond, ClaimInterval: 300 * time.Millisecond, ConsumerTimeout: time.Hour})
		})
	}
}

func trimmedEntriesAreRepublished(t *testing.T, partitions redisstream.FanoutPartitions, consumer redisstream.ConsumerName, cfg redisstream.GroupConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// given 5 messages a consumer took and never acked, trimmed from the stream
	tp := trimmedPending(t, partitions)
	pool, rds, rdb, stream, want := tp.pool, tp.rds, tp.rdb, tp.stream, tp.want

	// when a consumer of the group starts
	subs := redisstream.NewGroupSubscribers(redisstream.URL(rds.URL()), partitions, nil, consumer, cfg,
		messaging.FanoutUnmarshaller{}, postgres.NewReadModel(pool), quiet)
	sub, err := subs.For(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}

	// then every message is re-published from Postgres (same event id) and handled, none acked away
	got := map[string]bool{}
	deadline := time.After(15 * time.Second)
	for len(got) < len(want) {
		select {
		case m := <-msgs:
			if !want[m.UUID] {
				t.Fatalf("unexpected message %s", m.UUID)
			}
			got[m.UUID] = true
			m.Ack()
		case <-deadline:
			t.Fatalf("got %d of %d trimmed messages back", len(got), len(want))
		}
	}
	waitFor(t, 5*time.Second, func() bool { return subs.RedriveStats().Republished == 5 }, "5 counted as republished")
	waitFor(t, 5*time.Second, func() bool {
		p, err := rdb.XPending(ctx, stream, "slow").Result()
		return err == nil && p.Count == 0
	}, "the dead ids are acknowledged")
	time.Sleep(time.Second) // a second more (two claim rounds where they run): nothing is re-published twice
	if n, u := subs.RedriveStats().Republished, subs.RedriveStats().Unrecoverable; n != 5 || u != 0 {
		t.Fatalf("republished %d, unrecoverable %d; want 5 and 0", n, u)
	}
}

// A consumer's own trimmed entries whose message cannot be re-published (Postgres away, or
// without it) stay pending for the claim loop: the read loop does not read them again and
// again, and goes on to new entries.
func TestOwnTrimmedEntriesThatCannotBeRepublishedDoNotHoldUpTheReadLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tp := trimmedPending(t, 1)
	// given their consumer restarting, with a history that does not hold them
	subs := redisstream.NewGroupSubscribers(redisstream.URL(tp.rds.URL()), 1, nil, "dead",
		redisstream.GroupConfig{ClaimIdle: time.Hour, ClaimInterval: time.Hour, ConsumerTimeout: time.Hour},
		messaging.FanoutUnmarshaller{}, noHistory{}, quiet)
	sub, err := subs.For(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	reads := commandStat(t, tp.rdb, "xreadgroup", "calls")
	msgs, err := sub.Subscribe(ctx, tp.stream)
	if err != nil {
		t.Fatal(err)
	}

	// when a new message is relayed a second later
	time.Sleep(time.Second)
	var sent string
	if err := tp.repo.Update(ctx, tp.conv, func(c *conversation.Conversation) error {
		m, err := c.PostMessage(conversation.NewMessageDraft{ID: uuid.NewString(), SenderID: tp.alice,
			ClientMsgID: "new", Body: json.RawMessage(`1`), At: time.Now()})
		sent = m.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.relay.RelayOnce(ctx); err != nil {
		t.Fatal(err)
	}

	// then it is handed over, the trimmed ones stay pending, and the read loop did not spin
	select {
	case m := <-msgs:
		if m.UUID != sent {
			t.Fatalf("handed over %s, want the new message %s", m.UUID, sent)
		}
		m.Ack()
	case <-time.After(5 * time.Second):
		t.Fatal("the new message was not handed over")
	}
	if n := commandStat(t, tp.rdb, "xreadgroup", "calls") - reads; n > 20 {
		t.Errorf("XREADGROUP ran %d times in about a second, want a few (no spinning on the trimmed entries)", n)
	}
	if p := tp.rdb.XPending(ctx, tp.stream, "slow").Val(); p.Count != 5 {
		t.Errorf("%d entries pending, want the 5 trimmed ones left for the claim loop", p.Count)
	}
}

// trimmedSetup is what trimmedPending leaves: 5 messages stored and relayed, taken by consumer
// "dead" of group "slow", never acked, and trimmed from the stream.
type trimmedSetup struct {
	pool   *pgxpool.Pool
	rds    *testinfra.Redis
	rdb    *redis.Client
	repo   *postgres.ConversationRepository
	relay  *outbox.Relay
	conv   conversation.ID
	alice  conversation.UserID
	stream string
	want   map[string]bool
}

func trimmedPending(t *testing.T, partitions redisstream.FanoutPartitions) trimmedSetup {
	t.Helper()
	ctx := context.Background()
	pool := testinfra.NewMigratedPool(t)
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()

	// 5 stored messages relayed to the fan-out stream
	repo := postgres.NewConversationRepository(pool, noSignal{})
	alice := conversation.UserID(uuid.NewString())
	c, _ := conversation.Start(conversation.ID(uuid.NewString()), "t", alice, nil, time.Now())
	if err := repo.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := 1; i <= 5; i++ {
		if err := repo.Update(ctx, c.ID(), func(c *conversation.Conversation) error {
			m, err := c.PostMessage(conversation.NewMessageDraft{ID: uuid.NewString(), SenderID: alice,
				ClientMsgID: fmt.Sprint(i), Body: json.RawMessage(`1`), At: time.Now()})
			want[m.ID] = true
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	relay := outbox.NewRelay(pool, redisstream.NewDualStreamPublisher(rdb, 1000, false, partitions), partitions, quiet)
	if _, err := relay.RelayOnce(ctx); err != nil {
		t.Fatal(err)
	}
	stream := partitions.Stream(partitions.Of(string(c.ID())))
	// taken by a consumer of group "slow" that died without acking them
	if err := rdb.XGroupCreate(ctx, stream, "slow", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "slow", Consumer: "dead",
		Streams: []string{stream, ">"}, Count: 100}).Err(); err != nil {
		t.Fatal(err)
	}

	// and trimmed from the stream by hand
	if err := rdb.XTrimMaxLen(ctx, stream, 0).Err(); err != nil {
		t.Fatal(err)
	}
	return trimmedSetup{pool: pool, rds: rds, rdb: rdb, repo: repo, relay: relay, conv: c.ID(), alice: alice, stream: stream, want: want}
}
