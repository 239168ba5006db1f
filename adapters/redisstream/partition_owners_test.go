package redisstream_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/messaging"
)

// owned is a fixed PartitionOwner.
type owned []int

func (o owned) LeadsShard(p int) bool { return slices.Contains(o, p) }

// subscribeEveryPartition subscribes consumer name of messaging-service to every partition of
// parts, reading the partitions owner gives it (nil: all; with one partition only if
// ownerAlone), and hands each message to handle, which acks it.
func subscribeEveryPartition(ctx context.Context, t *testing.T, url string, parts redisstream.FanoutPartitions, name string,
	owner redisstream.PartitionOwner, ownerAlone bool, handle func(stream string, m *message.Message)) {
	t.Helper()
	subscribeWith(ctx, t, url, parts, name, owner, groupConfig(ownerAlone, 0), handle)
}

// groupConfig is the tests' group configuration: no claims or consumer cleanup within a test.
func groupConfig(ownerAlone bool, helpAfter int) redisstream.GroupConfig {
	return redisstream.GroupConfig{ClaimIdle: time.Hour, ClaimInterval: time.Hour, ConsumerTimeout: time.Hour,
		OwnerReadsAlone: ownerAlone, HelpAfter: helpAfter}
}

// subscribeWith is subscribeEveryPartition with the group configuration cfg; it returns the
// subscribers, for their counts.
func subscribeWith(ctx context.Context, t *testing.T, url string, parts redisstream.FanoutPartitions, name string,
	owner redisstream.PartitionOwner, cfg redisstream.GroupConfig, handle func(stream string, m *message.Message)) *redisstream.GroupSubscribers {
	t.Helper()
	subs := redisstream.NewGroupSubscribers(redisstream.URL(url), parts, owner, redisstream.ConsumerName(name),
		cfg, messaging.FanoutUnmarshaller{}, noHistory{}, quiet)
	sub, err := subs.For(ctx, redisstream.ConsumerGroup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	for _, stream := range parts.Streams() {
		msgs, err := sub.Subscribe(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range msgs {
				handle(stream, m)
				m.Ack()
			}
		}()
	}
	return subs
}

// handled is which consumer handled a message of which stream.
type handled struct{ consumer, stream string }

// startOwnedConsumer is subscribeEveryPartition of the four partitions reporting each message's
// consumer and stream.
func startOwnedConsumer(ctx context.Context, t *testing.T, url string, name string, owner redisstream.PartitionOwner, got chan<- handled) {
	t.Helper()
	startConsumerOf(ctx, t, url, four, name, owner, true, got)
}

// startConsumerOf is startOwnedConsumer on parts, ownerAlone as subscribeEveryPartition's.
func startConsumerOf(ctx context.Context, t *testing.T, url string, parts redisstream.FanoutPartitions, name string,
	owner redisstream.PartitionOwner, ownerAlone bool, got chan<- handled) {
	t.Helper()
	subscribeEveryPartition(ctx, t, url, parts, name, owner, ownerAlone, func(stream string, _ *message.Message) { got <- handled{name, stream} })
}

// receiveN takes n handled messages from got, each within the given time, and checks each.
func receiveN(t *testing.T, got <-chan handled, n int, within time.Duration, check func(handled)) {
	t.Helper()
	for i := range n {
		select {
		case h := <-got:
			check(h)
		case <-time.After(within):
			t.Fatalf("only %d of %d messages arrived", i, n)
		}
	}
}

// publishToEveryPartition publishes one message into each of n new conversations until every
// partition holds some, and returns how many it published.
func publishToEveryPartition(ctx context.Context, t *testing.T, pub *redisstream.DualStreamPublisher) int {
	t.Helper()
	hit := map[int]bool{}
	n := 0
	for len(hit) < four.Count() || n < 40 {
		conv := uuid.NewString()
		if _, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(conv, 1, 1)}); err != nil {
			t.Fatal(err)
		}
		hit[four.Of(conv)] = true
		n++
	}
	return n
}

// With partitions, each instance's consumer reads only the partitions it owns (the relay shards
// it leads): two instances owning two partitions each handle only their own partitions' entries,
// and every entry is handled once.
func TestEachConsumerReadsOnlyThePartitionsItOwns(t *testing.T) {
	ctx := t.Context()
	rds := testinfra.StartRedis(t)
	got := make(chan handled, 1000)
	startOwnedConsumer(ctx, t, rds.URL(), "n1", owned{0, 1}, got)
	startOwnedConsumer(ctx, t, rds.URL(), "n2", owned{2, 3}, got)

	n := publishToEveryPartition(ctx, t, redisstream.NewDualStreamPublisher(rds.Client(), 1000, false, four))

	mine := map[string][]string{"n1": {four.Stream(0), four.Stream(1)}, "n2": {four.Stream(2), four.Stream(3)}}
	receiveN(t, got, n, 10*time.Second, func(h handled) {
		if !slices.Contains(mine[h.consumer], h.stream) {
			t.Fatalf("consumer %s handled an entry of %s, which it does not own", h.consumer, h.stream)
		}
	})
	select {
	case h := <-got:
		t.Fatalf("an entry was handled twice (by %s, from %s)", h.consumer, h.stream)
	case <-time.After(500 * time.Millisecond):
	}
}

// A partition whose owner makes no progress (frozen, or its shard not yet taken over) is read by
// another instance once the group has stood still on it for a check: nothing waits for the owner.
func TestAPartitionWhoseOwnerStallsIsReadByAnotherInstance(t *testing.T) {
	ctx := t.Context()
	rds := testinfra.StartRedis(t)
	got := make(chan handled, 1000)
	// n1 owns partitions 0 and 1; the owner of 2 and 3 never reads
	startOwnedConsumer(ctx, t, rds.URL(), "n1", owned{0, 1}, got)

	n := publishToEveryPartition(ctx, t, redisstream.NewDualStreamPublisher(rds.Client(), 1000, false, four))

	from := map[string]bool{}
	receiveN(t, got, n, 15*time.Second, func(h handled) { from[h.stream] = true })
	if len(from) != four.Count() {
		t.Fatalf("n1 read from %v, want every partition", from)
	}
}

// An owner that is alive keeps its partitions: while messages flow for longer than the stall
// checks, an instance that owns nothing reads nothing.
func TestAnInstanceOwningNothingLeavesALiveOwnersPartitionsAlone(t *testing.T) {
	requireOwnerReadsAlone(t, four)
}

// With one partition (one Redis, the default) and NOVA_GROUP_READERS=owner (the default), its owner is the
// relay leader, so every other instance (one with no subscriber of the busy conversations, say)
// handles no entry while the leader is alive: consumer-group work costs them nothing per message.
func TestWithOnePartitionOnlyItsOwnerReadsIt(t *testing.T) {
	requireOwnerReadsAlone(t, redisstream.FanoutPartitions(1))
}

// And when that owner stops reading, another instance reads the one stream in its place.
func TestWithOnePartitionAStalledOwnersStreamIsReadByAnotherInstance(t *testing.T) {
	ctx := t.Context()
	rds := testinfra.StartRedis(t)
	one := redisstream.FanoutPartitions(1)
	got := make(chan handled, 1000)
	startConsumerOf(ctx, t, rds.URL(), one, "bystander", owned{}, true, got) // the owner never reads

	pub := redisstream.NewDualStreamPublisher(rds.Client(), 1000, false, one)
	for range 10 {
		if _, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(uuid.NewString(), 1, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	// the assertion is that all 10 arrive although their owner never reads; with one partition
	// there is one stream and one consumer, so who read them from where needs no check
	receiveN(t, got, 10, 15*time.Second, func(handled) {})
}

// An owner that keeps reading but cannot keep up is helped: once the group's lag reaches
// HelpAfter, an instance that owns nothing reads the stream too (DESIGN.md goal 4: instances
// share the group's work when there is work to share), and it stops again once the lag is back.
// The backlog outlasts a check with both reading, the helper five times as often as the owner,
// so that at a check the helper is likely the one that read last: that must not make it take
// the owner for stalled (and read for good).
func TestWithOnePartitionAnOwnerFallingBehindIsHelpedUntilItCatchesUp(t *testing.T) {
	ctx := t.Context()
	rds := testinfra.StartRedis(t)
	one := redisstream.FanoutPartitions(1)
	got := make(chan handled, 10000)
	cfg := groupConfig(true, 200)
	// the owner handles at most 200 messages a second, the helper 1,000 (one conversation's,
	// one at a time)
	for _, c := range []struct {
		name  string
		owner owned
		each  time.Duration
	}{{"owner", owned{0}, 5 * time.Millisecond}, {"helper", owned{}, time.Millisecond}} {
		subscribeWith(ctx, t, rds.URL(), one, c.name, c.owner, cfg, func(stream string, _ *message.Message) {
			time.Sleep(c.each)
			got <- handled{c.name, stream}
		})
	}

	// given 5,000 messages of one conversation at once: 25 s of the owner's work alone
	pub := redisstream.NewDualStreamPublisher(rds.Client(), 10000, false, one)
	conv := uuid.NewString()
	for from := int64(1); from <= 5000; from += 100 {
		if _, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(conv, from, from+99)}); err != nil {
			t.Fatal(err)
		}
	}
	// then the instance that owns nothing takes a share (all done in about 6 s with help)
	by := map[string]int{}
	receiveN(t, got, 5000, 8*time.Second, func(h handled) { by[h.consumer]++ })
	if by["helper"] == 0 {
		t.Fatalf("handled by consumer: %v; want the helper to take a share of the owner's backlog", by)
	}

	// and once the lag is back under HelpAfter (seen at its next check, about 2 s on), a
	// trickle the owner keeps up with is the owner's alone
	time.Sleep(4500 * time.Millisecond)
	sent := publishFor(ctx, t, pub, 3*time.Second, 30*time.Millisecond)
	receiveN(t, got, sent, 10*time.Second, func(h handled) {
		if h.consumer != "owner" {
			t.Fatalf("the helper still read after the owner had caught up")
		}
	})
}

// With partitions the help rule is per partition: an instance helps the partition whose owner
// falls behind, not the owner's other partitions, which it keeps up with, and once the owner has
// caught up every partition is its owner's alone again.
func TestWithPartitionsOnlyThePartitionFallingBehindIsHelped(t *testing.T) {
	ctx := t.Context()
	rds := testinfra.StartRedis(t)
	got := make(chan handled, 10000)
	cfg := groupConfig(true, 200)
	subs := map[string]*redisstream.GroupSubscribers{}
	// "slow" owns partitions 0 and 1 and handles at most 200 messages a second on each, "fast"
	// owns 2 and 3 and handles 1,000 (each partition is read, and handled, on its own)
	for _, c := range []struct {
		name  string
		owner owned
		each  time.Duration
	}{{"slow", owned{0, 1}, 5 * time.Millisecond}, {"fast", owned{2, 3}, time.Millisecond}} {
		subs[c.name] = subscribeWith(ctx, t, rds.URL(), four, c.name, c.owner, cfg, func(stream string, _ *message.Message) {
			time.Sleep(c.each)
			got <- handled{c.name, stream}
		})
	}
	busy, calm := conversationIn(0), conversationIn(1)
	busyStream, calmStream := four.Streams()[0], four.Streams()[1]

	// given 5,000 messages of one conversation of partition 0 at once (25 s of its owner's work)
	// while a trickle its owner keeps up with flows on partition 1
	pub := redisstream.NewDualStreamPublisher(rds.Client(), 10000, false, four)
	for from := int64(1); from <= 5000; from += 100 {
		if _, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(busy, from, from+99)}); err != nil {
			t.Fatal(err)
		}
	}
	trickle := make(chan int)
	go func() {
		n := int64(0)
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && ctx.Err() == nil; {
			n++
			if _, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(calm, n, n)}); err != nil {
				t.Error(err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		trickle <- int(n)
	}()

	// then the other instance takes a share of partition 0 only
	by := map[handled]int{}
	receiveN(t, got, 5000, 8*time.Second, func(h handled) { by[h]++ })
	receiveN(t, got, <-trickle, 8*time.Second, func(h handled) { by[h]++ })
	if by[handled{"fast", busyStream}] == 0 {
		t.Fatalf("handled: %v; want the fast instance to take a share of partition 0's backlog", by)
	}
	if n := by[handled{"fast", calmStream}]; n > 0 {
		t.Fatalf("the fast instance handled %d messages of partition 1, whose owner kept up with it", n)
	}
	// nova_consumer_group_helped_total counts what each instance read in an owner's place
	fast, slow := subs["fast"].Helped()[redisstream.ConsumerGroup], subs["slow"].Helped()[redisstream.ConsumerGroup]
	if want := int64(by[handled{"fast", busyStream}]); fast != want || slow != 0 {
		t.Fatalf("helped: fast %d, slow %d; want %d and 0", fast, slow, want)
	}

	// and once partition 0's lag is back under HelpAfter (seen at the next check, about 2 s
	// on), a trickle on every partition is each owner's alone
	time.Sleep(4500 * time.Millisecond)
	sent := publishFor(ctx, t, pub, 3*time.Second, 20*time.Millisecond)
	receiveN(t, got, sent, 10*time.Second, func(h handled) {
		if p := slices.Index(four.Streams(), h.stream); !slices.Contains(map[string]owned{"slow": {0, 1}, "fast": {2, 3}}[h.consumer], p) {
			t.Fatalf("%s handled a message of partition %d after its owner had caught up", h.consumer, p)
		}
	})
}

// conversationIn returns a new conversation id of partition p of four.
func conversationIn(p int) string { return testinfra.ConversationIn(p, four.Count()) }

// requireOwnerReadsAlone: with an owner of every partition of parts and an instance that owns
// none, while messages flow for 6 s (three stall checks), one every 20 ms, the owner handles
// every one and the bystander none.
func requireOwnerReadsAlone(t *testing.T, parts redisstream.FanoutPartitions) {
	t.Helper()
	ctx := t.Context()
	rds := testinfra.StartRedis(t)
	got := make(chan handled, 10000)
	all := make(owned, parts.Count())
	for p := range all {
		all[p] = p
	}
	startConsumerOf(ctx, t, rds.URL(), parts, "owner", all, true, got)
	startConsumerOf(ctx, t, rds.URL(), parts, "bystander", owned{}, true, got)

	sent := publishFor(ctx, t, redisstream.NewDualStreamPublisher(rds.Client(), 1000, false, parts), 6*time.Second, 20*time.Millisecond)

	receiveN(t, got, sent, 10*time.Second, func(h handled) {
		if h.consumer != "owner" {
			t.Fatalf("the bystander read %s although its owner is alive", h.stream)
		}
	})
}

// With NOVA_GROUP_READERS=all every instance reads the one partition and takes a share of the
// work (DESIGN.md goal 4), owner or not, however little there is.
func TestWithOnePartitionEveryInstanceTakesAShareInAllMode(t *testing.T) {
	ctx := t.Context()
	rds := testinfra.StartRedis(t)
	one := redisstream.FanoutPartitions(1)
	got := make(chan handled, 10000)
	startConsumerOf(ctx, t, rds.URL(), one, "owner", owned{0}, false, got)
	startConsumerOf(ctx, t, rds.URL(), one, "other", owned{}, false, got)

	sent := publishFor(ctx, t, redisstream.NewDualStreamPublisher(rds.Client(), 1000, false, one), 2*time.Second, 10*time.Millisecond)
	by := map[string]int{}
	receiveN(t, got, sent, 10*time.Second, func(h handled) { by[h.consumer]++ })
	if by["owner"] == 0 || by["other"] == 0 {
		t.Fatalf("handled by consumer: %v; want both to take a share", by)
	}
}

// publishFor publishes one message into a new conversation every pause for d, and returns how
// many it published.
func publishFor(ctx context.Context, t *testing.T, pub *redisstream.DualStreamPublisher, d, pause time.Duration) int {
	t.Helper()
	sent := 0
	for end := time.Now().Add(d); time.Now().Before(end); sent++ {
		if _, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(uuid.NewString(), 1, 1)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(pause)
	}
	return sent
}

// Help for an owner that falls behind reads the group's lag off XINFO GROUPS, which Redis reports
// from 7.0 on: on an older server the instances warn that only a stall brings help. They do not
// on this Redis (7 or later), nor when the lag is not used (NOVA_GROUP_READERS=all, or
// NOVA_GROUP_HELP_AFTER=0).
func TestOwnersReadingFirstWarnWhenRedisCannotReportTheLag(t *testing.T) {
	rds := testinfra.StartRedis(t)
	subscribers := func(owner redisstream.PartitionOwner, parts redisstream.FanoutPartitions, cfg redisstream.GroupConfig) (*redisstream.GroupSubscribers, *lockedBuffer) {
		logged := &lockedBuffer{}
		return redisstream.NewGroupSubscribers(redisstream.URL(rds.URL()), parts, owner, "n1", cfg,
			messaging.FanoutUnmarshaller{}, noHistory{}, slog.New(slog.NewTextHandler(logged, nil))), logged
	}
	const warning = "does not report a consumer group's lag"

	for _, c := range []struct {
		name  string
		parts redisstream.FanoutPartitions
		cfg   redisstream.GroupConfig
		warns bool // on a Redis before 7.0
	}{
		{"owner reads first", 1, groupConfig(true, 200), true},
		{"partitions", four, groupConfig(false, 200), true},
		{"every instance reads", 1, groupConfig(false, 200), false},
		{"help on a stall only", 1, groupConfig(true, 0), false},
	} {
		subs, logged := subscribers(owned{0}, c.parts, c.cfg)
		sub, err := subs.For(t.Context(), redisstream.ConsumerGroup)
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logged.String(), warning) {
			t.Errorf("%s: warned on this Redis, which reports the lag:\n%s", c.name, logged)
		}
		subs.WarnIfLagUnreported(6)
		if got := strings.Contains(logged.String(), warning); got != c.warns {
			t.Errorf("%s: warned on Redis 6 = %v, want %v:\n%s", c.name, got, c.warns, logged)
		}
	}
}

func TestMajorVersionIsReadOffInfoServer(t *testing.T) {
	for info, want := range map[string]int{
		"# Server\r\nredis_version:6.2.14\r\nredis_git_sha1:00000000\r\n": 6,
		"# Server\r\nredis_version:7.0.15\r\n":                            7,
		"# Server\r\nredis_version:10.0.0\r\n":                            10,
	} {
		if got, err := redisstream.MajorVersion(info); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", info, got, err, want)
		}
	}
	for _, bad := range []string{"", "# Server\r\nredis_version:x.1\r\n"} {
		if _, err := redisstream.MajorVersion(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
