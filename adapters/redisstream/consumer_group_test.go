package redisstream_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/messaging"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// addFanoutEntries writes n entries shaped as the relay writes them.
func addFanoutEntries(t *testing.T, rdb *redis.Client, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		uuid := fmt.Sprintf("event-%03d", i)
		if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: redisstream.FanoutStream, Values: map[string]any{
			"_watermill_message_uuid": uuid, "payload": `{"seq":1}`, "conversation_id": "c",
			"stream_key": "stream:conversation:c", "entry_id": fmt.Sprintf("%d-0", i+1),
		}}).Err(); err != nil {
			t.Fatal(err)
		}
		ids[i] = uuid
	}
	return ids
}

func TestConsumerGroupAck(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	const group, n = "test-group", 60

	// given three consumers of one group, which take messages and hold them without acking
	type got struct {
		consumer string
		msg      *message.Message
	}
	received := make(chan got, n*2)
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("consumer-%d", i)
		subs := redisstream.NewGroupSubscribers(redisstream.URL(rds.URL()), 1, nil, redisstream.ConsumerName(name),
			redisstream.GroupConfig{ClaimIdle: time.Hour, ClaimInterval: time.Hour, ConsumerTimeout: time.Hour},
			messaging.FanoutUnmarshaller{}, noHistory{}, quiet)
		sub, err := subs.For(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		ch, err := sub.Subscribe(ctx, redisstream.FanoutStream)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range ch {
				received <- got{name, m}
			}
		}()
	}
	// (each consumer holds one unacked message at a time, so the rest wait in the stream)
	ids := addFanoutEntries(t, rdb, n)

	// when they take messages, the pending list fills; acking each empties it
	handledBy := map[string]string{}
	var mu sync.Mutex
	perConsumer := map[string]int{}
	deadline := time.After(20 * time.Second)
	sawPending := int64(0)
	for len(handledBy) < n {
		select {
		case g := <-received:
			if p, err := rdb.XPending(ctx, redisstream.FanoutStream, group).Result(); err == nil && p.Count > sawPending {
				sawPending = p.Count
			}
			mu.Lock()
			if prev, dup := handledBy[g.msg.UUID]; dup {
				t.Fatalf("%s delivered to %s and %s", g.msg.UUID, prev, g.consumer)
			}
			handledBy[g.msg.UUID] = g.consumer
			perConsumer[g.consumer]++
			mu.Unlock()
			g.msg.Ack()
		case <-deadline:
			t.Fatalf("handled %d of %d", len(handledBy), n)
		}
	}

	// then every message was handled by exactly one consumer, the work was shared, and nothing is pending
	for _, id := range ids {
		if handledBy[id] == "" {
			t.Fatalf("%s never handled", id)
		}
	}
	if sawPending < 2 {
		t.Fatalf("pending list peaked at %d while consumers held messages, want >= 2", sawPending)
	}
	if len(perConsumer) < 2 {
		t.Fatalf("only %d consumer(s) took work: %v", len(perConsumer), perConsumer)
	}
	waitFor(t, 5*time.Second, func() bool {
		p, err := rdb.XPending(ctx, redisstream.FanoutStream, group).Result()
		return err == nil && p.Count == 0
	}, "pending list empties after the acks")
}

func TestTrimmingNeverRemovesWhatASlowGroupHasNotAcked(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	addFanoutEntries(t, rdb, 100)
	// given a fast group that read and acked everything, and a slow one that read 40 and acked 10
	for _, g := range []string{"fast", "slow"} {
		if err := rdb.XGroupCreate(ctx, redisstream.FanoutStream, g, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	fast := readGroup(t, rdb, "fast", 100)
	if err := rdb.XAck(ctx, redisstream.FanoutStream, "fast", fast...).Err(); err != nil {
		t.Fatal(err)
	}
	slow := readGroup(t, rdb, "slow", 40)
	if err := rdb.XAck(ctx, redisstream.FanoutStream, "slow", slow[:10]...).Err(); err != nil {
		t.Fatal(err)
	}

	// when the trimmer runs
	trimmer := redisstream.NewFanoutTrimmer(rdb, 1, nil)
	if _, err := trimmer.Trim(ctx); err != nil {
		t.Fatal(err)
	}

	// then the slow group's 30 unacked entries and the 60 it has not read are all still there
	entries, _ := rdb.XRange(ctx, redisstream.FanoutStream, "-", "+").Result()
	if len(entries) != 90 || entries[0].ID != slow[10] {
		t.Fatalf("after trim: %d entries starting %v, want 90 starting at %s", len(entries), first(entries), slow[10])
	}

	// and once the slow group catches up and acks, the trimmer may drop everything it has read
	rest := readGroup(t, rdb, "slow", 60)
	_ = rdb.XAck(ctx, redisstream.FanoutStream, "slow", append(slow[10:], rest...)...).Err()
	if _, err := trimmer.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rdb.XLen(ctx, redisstream.FanoutStream).Val(); n != 0 {
		t.Fatalf("after everything was acked %d entries remain, want 0", n)
	}
}

func readGroup(t *testing.T, rdb *redis.Client, group string, n int64) []string {
	t.Helper()
	res, err := rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: group, Consumer: "c1",
		Streams: []string{redisstream.FanoutStream, ">"}, Count: n}).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range res[0].Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

func first(e []redis.XMessage) string {
	if len(e) == 0 {
		return "(none)"
	}
	return e[0].ID
}

func waitFor(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noHistory is the Postgres side of redrives, which these tests never reach (nothing is trimmed).
type noHistory struct{}

func (noHistory) MessagesAfter(context.Context, conversation.ID, int64, int) ([]conversation.Message, error) {
	return nil, nil
}

// addConversationEntries writes perConv entries for each of convs conversations, interleaved,
// with the seq of each in its payload.
func addConversationEntries(t *testing.T, rdb *redis.Client, convs, perConv int) {
	t.Helper()
	pipe := rdb.Pipeline()
	for seq := 1; seq <= perConv; seq++ {
		for c := 0; c < convs; c++ {
			conv := fmt.Sprintf("c%02d", c)
			pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: redisstream.FanoutStream, Values: map[string]any{
				"_watermill_message_uuid": fmt.Sprintf("%s-%04d", conv, seq), "payload": fmt.Sprint(seq),
				"conversation_id": conv, "stream_key": "stream:conversation:" + conv, "entry_id": fmt.Sprintf("%d-0", seq),
			}})
		}
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAGroupReadsAndAcksInBatchesAndKeepsEachConversationsOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	const convs, perConv = 20, 50
	// given 1,000 entries of 20 conversations already in the stream
	addConversationEntries(t, rdb, convs, perConv)

	// when one consumer handles them, each handler taking a moment
	subs := redisstream.NewGroupSubscribers(redisstream.URL(rds.URL()), 1, nil, "only",
		redisstream.GroupConfig{ClaimIdle: time.Hour, ClaimInterval: time.Hour, ConsumerTimeout: time.Hour},
		messaging.FanoutUnmarshaller{}, noHistory{}, quiet)
	sub, err := subs.For(ctx, "batched")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(ctx, redisstream.FanoutStream)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		last     = map[string]int{}
		inFlight atomic.Int32
		overlap  atomic.Int32
		handled  int
	)
	deadline := time.After(30 * time.Second)
	for handled < convs*perConv {
		select {
		case m := <-ch:
			go func() {
				if n := inFlight.Add(1); n > overlap.Load() {
					overlap.Store(n)
				}
				time.Sleep(time.Millisecond)
				conv, seq := m.Metadata.Get("conversation_id"), 0
				_, _ = fmt.Sscan(string(m.Payload), &seq)
				mu.Lock()
				if seq != last[conv]+1 {
					t.Errorf("%s: seq %d after %d", conv, seq, last[conv])
				}
				last[conv] = seq
				mu.Unlock()
				inFlight.Add(-1)
				m.Ack()
			}()
			handled++
		case <-deadline:
			t.Fatalf("handled %d of %d", handled, convs*perConv)
		}
	}

	// then every conversation's entries came in order, conversations were handled side by side,
	// and the reads and acks took a few round trips, not one per entry
	waitFor(t, 5*time.Second, func() bool {
		p, err := rdb.XPending(ctx, redisstream.FanoutStream, "batched").Result()
		return err == nil && p.Count == 0
	}, "pending list empties after the acks")
	if overlap.Load() < 2 {
		t.Errorf("at most %d message in the handlers at once, want conversations side by side", overlap.Load())
	}
	if reads, acks := commandStat(t, rdb, "xreadgroup", "calls"), commandStat(t, rdb, "xack", "calls"); reads > 30 || acks > 20 {
		t.Errorf("%d XREADGROUP and %d XACK calls for %d entries, want batches of up to 128", reads, acks, convs*perConv)
	}
}

func TestEntriesAConsumerHeldWhenItStoppedAreHandledAtItsRestart(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	cfg := redisstream.GroupConfig{ClaimIdle: time.Hour, ClaimInterval: time.Hour, ConsumerTimeout: time.Hour}
	ids := addFanoutEntries(t, rdb, 5)
	// given a consumer that took the entries and stopped before acking them
	first, err := redisstream.NewGroupSubscribers(redisstream.URL(rds.URL()), 1, nil, "n1", cfg,
		messaging.FanoutUnmarshaller{}, noHistory{}, quiet).For(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := first.Subscribe(ctx, redisstream.FanoutStream)
	if err != nil {
		t.Fatal(err)
	}
	<-ch // holds the first, never acks it
	_ = first.Close()
	if p := rdb.XPending(ctx, redisstream.FanoutStream, "g").Val(); p.Count != 5 {
		t.Fatalf("pending after the stop: %d, want 5", p.Count)
	}

	// when it starts again under the same name (claims would wait an hour)
	again, err := redisstream.NewGroupSubscribers(redisstream.URL(rds.URL()), 1, nil, "n1", cfg,
		messaging.FanoutUnmarshaller{}, noHistory{}, quiet).For(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	ch, err = again.Subscribe(ctx, redisstream.FanoutStream)
	if err != nil {
		t.Fatal(err)
	}

	// then it handles them again at once, in order
	for i, want := range ids {
		select {
		case m := <-ch:
			if m.UUID != want {
				t.Fatalf("entry %d: %s, want %s", i, m.UUID, want)
			}
			m.Ack()
		case <-time.After(5 * time.Second):
			t.Fatalf("entry %d (%s) not handled again", i, want)
		}
	}
	waitFor(t, 5*time.Second, func() bool { return rdb.XPending(ctx, redisstream.FanoutStream, "g").Val().Count == 0 },
		"nothing pending after the restart")
}

func TestADeclaredGroupIsRecreatedAndNotTrimmedPastAfterRedisComesBackEmpty(t *testing.T) {
	ctx := context.Background()
	rdb := testinfra.StartRedis(t).Client()
	// given Redis came back empty: Nova's own group is back at once and has read and acked
	// the 50 events published since, while the search service has not noticed yet
	ownGroupReadAndAcked(t, rdb, "$", 50, 50)

	// when the trimmer of an instance that declares the search group runs
	trimmer := redisstream.NewFanoutTrimmer(rdb, 1, redisstream.DeclaredGroups{"search"})
	if _, err := trimmer.Trim(ctx); err != nil {
		t.Fatal(err)
	}

	// then the search group exists again, from the stream's start, and all 50 events wait for it
	if n := rdb.XLen(ctx, redisstream.FanoutStream).Val(); n != 50 {
		t.Fatalf("%d entries left, want the 50 the search group has not read", n)
	}
	if got := readGroup(t, rdb, "search", 100); len(got) != 50 {
		t.Fatalf("the search group reads %d entries, want 50", len(got))
	}

	// and without the declaration the same trim drops them (what happened before)
	if err := rdb.XGroupDestroy(ctx, redisstream.FanoutStream, "search").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := redisstream.NewFanoutTrimmer(rdb, 1, nil).Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rdb.XLen(ctx, redisstream.FanoutStream).Val(); n != 0 {
		t.Fatalf("%d entries left without the declaration, want 0", n)
	}
}

// Help for an owner that falls behind reads the group's lag off XINFO GROUPS. Redis reports no
// lag (go-redis: -1) when it cannot tell, which would silently leave an owner without help; it
// can tell after the trimmer's XTRIM MINID (unlike after XDEL, which Nova never uses), also for a
// group created from "0" after a trim (a group declared later, or recreated after Redis came back
// empty).
func TestTheGroupLagStaysKnownAfterTheFanoutStreamIsTrimmed(t *testing.T) {
	ctx := t.Context()
	rdb := testinfra.StartRedis(t).Client()
	ownGroupReadAndAcked(t, rdb, "0", 300, 100)
	if n, err := redisstream.NewFanoutTrimmer(rdb, 1, nil).Trim(ctx); err != nil || n != 100 {
		t.Fatalf("trimmed %d entries (%v), want the 100 the group acked", n, err)
	}
	if err := rdb.XGroupCreate(ctx, redisstream.FanoutStream, "search", "0").Err(); err != nil {
		t.Fatal(err)
	}
	addFanoutEntries(t, rdb, 10)

	groups, err := rdb.XInfoGroups(ctx, redisstream.FanoutStream).Result()
	if err != nil {
		t.Fatal(err)
	}
	lag := map[string]int64{}
	for _, g := range groups {
		lag[g.Name] = g.Lag
	}
	if lag["messaging-service"] != 210 || lag["search"] != 210 {
		t.Fatalf("lag by group: %v; want 210 entries for each", lag)
	}
}

// ownGroupReadAndAcked creates Nova's own group on the fan-out stream from start, adds n entries
// and has the group read and acknowledge the first acked of them.
func ownGroupReadAndAcked(t *testing.T, rdb *redis.Client, start string, n int, acked int64) {
	t.Helper()
	ctx := context.Background()
	if err := rdb.XGroupCreateMkStream(ctx, redisstream.FanoutStream, "messaging-service", start).Err(); err != nil {
		t.Fatal(err)
	}
	addFanoutEntries(t, rdb, n)
	read := readGroup(t, rdb, "messaging-service", acked)
	if err := rdb.XAck(ctx, redisstream.FanoutStream, "messaging-service", read...).Err(); err != nil {
		t.Fatal(err)
	}
}

// A consumer's own pending entries are its read loop's: the claim loop, which takes over the
// entries of consumers that died, neither hands them to the router a second time while they are
// being handled nor spins on a pending list full of them.
func TestAConsumerLeavesItsOwnPendingEntriesToItsReadLoop(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	const n = 150 // more than one page of the claim loop's XPENDING
	ids := addFanoutEntries(t, rdb, n)
	// given 150 entries consumer n1 took before it stopped
	if err := rdb.XGroupCreate(ctx, redisstream.FanoutStream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "n1",
		Streams: []string{redisstream.FanoutStream, ">"}, Count: n}).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // idle past ClaimIdle below

	// when n1 starts again, claims running every 100 ms for entries idle 100 ms, and its handler
	// takes a second over the first entry
	subs := redisstream.NewGroupSubscribers(redisstream.URL(rds.URL()), 1, nil, "n1",
		redisstream.GroupConfig{ClaimIdle: 100 * time.Millisecond, ClaimInterval: 100 * time.Millisecond, ConsumerTimeout: time.Hour},
		messaging.FanoutUnmarshaller{}, noHistory{}, quiet)
	sub, err := subs.For(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	xpendingBefore := commandStat(t, rdb, "xpending", "calls")
	ch, err := sub.Subscribe(ctx, redisstream.FanoutStream)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	held := <-ch
	seen[held.UUID]++
	hold := time.After(time.Second)
holding:
	for {
		select {
		case m := <-ch:
			seen[m.UUID]++
			t.Errorf("%s handed over while %s was being handled (entries of one conversation go one at a time)", m.UUID, held.UUID)
			m.Ack()
		case <-hold:
			break holding
		}
	}
	xpending := commandStat(t, rdb, "xpending", "calls") - xpendingBefore
	t.Logf("XPENDING ran %d times while the first entry was held", xpending)
	held.Ack()
	for len(seen) < n {
		select {
		case m := <-ch:
			seen[m.UUID]++
			m.Ack()
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d entries handled", len(seen), n)
		}
	}

	// then each entry was handed over once, nothing was claimed, and the claim loop listed the
	// pending entries page by page, about ten rounds in that second
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("%s handed over %d times, want once", id, seen[id])
		}
	}
	if c := subs.Claims()["g"]; c != 0 {
		t.Errorf("%d entries claimed, want none (they were n1's own)", c)
	}
	if xpending > 60 {
		t.Errorf("XPENDING ran %d times in a second, want two pages per round, about 20", xpending)
	}
	waitFor(t, 5*time.Second, func() bool { return rdb.XPending(ctx, redisstream.FanoutStream, "g").Val().Count == 0 },
		"nothing pending")
}

// Consumers of instances gone for good (idle past ConsumerTimeout, nothing pending) are removed
// from the group; one that holds entries is not, even when the listing that named it is out of
// date by the time it would be removed (XGROUP DELCONSUMER would drop its entries with it).
func TestIdleConsumersAreRemovedAndOnesHoldingEntriesAreKept(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	addFanoutEntries(t, rdb, 1)
	stream := redisstream.FanoutStream
	if err := rdb.XGroupCreate(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	// given a consumer gone for good and one that holds an entry
	if err := rdb.XGroupCreateConsumer(ctx, stream, "g", "gone").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "holder",
		Streams: []string{stream, ">"}, Count: 1}).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)

	// then the one step removes neither the holder (as if a listing had said it held nothing)
	// nor a consumer idle for less than asked, and removes one that is idle and holds nothing
	for _, tc := range []struct {
		consumer string
		idle     time.Duration
		removed  bool
	}{{"holder", 50 * time.Millisecond, false}, {"gone", time.Hour, false}, {"gone", 50 * time.Millisecond, true}} {
		removed, err := redisstream.RemoveConsumerIfIdle(ctx, rdb, stream, "g", tc.consumer, tc.idle)
		if err != nil || removed != tc.removed {
			t.Errorf("%s idle %v: removed %v (%v), want %v", tc.consumer, tc.idle, removed, err, tc.removed)
		}
	}
	if p := rdb.XPending(ctx, stream, "g").Val(); p.Count != 1 || p.Consumers["holder"] != 1 {
		t.Errorf("pending %+v, want the holder's entry still there", p)
	}

	// and a subscriber's cleanup loop does the same on its own
	if err := rdb.XGroupCreateConsumer(ctx, stream, "g", "gone-too").Err(); err != nil {
		t.Fatal(err)
	}
	sub, err := redisstream.NewGroupSubscribers(redisstream.URL(rds.URL()), 1, nil, "n1",
		redisstream.GroupConfig{ClaimIdle: time.Hour, ClaimInterval: time.Hour, ConsumerTimeout: time.Second},
		messaging.FanoutUnmarshaller{}, noHistory{}, quiet).For(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, stream); err != nil {
		t.Fatal(err)
	}
	consumers := func() map[string]bool {
		names := map[string]bool{}
		cs, _ := rdb.XInfoConsumers(ctx, stream, "g").Result()
		for _, c := range cs {
			names[c.Name] = true
		}
		return names
	}
	waitFor(t, 5*time.Second, func() bool { return !consumers()["gone-too"] }, "the idle consumer removed")
	if !consumers()["holder"] {
		t.Error("the consumer holding an entry was removed")
	}
}
