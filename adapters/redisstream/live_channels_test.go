package redisstream_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/messaging"
)

// liveRig is one instance's live delivery on a private Redis: live channels, the stream
// backlog, the hub and the listener, as wire.go puts them together.
type liveRig struct {
	rdb      redis.UniversalClient
	channels *redisstream.LiveChannels
	hub      *delivery.Hub
	pub      *redisstream.DualStreamPublisher
	seqs     map[conversation.ID]int64
}

func startLive(t *testing.T, recheck time.Duration) *liveRig {
	t.Helper()
	return startLiveOn(t, testinfra.StartRedis(t).Client(), 1, recheck)
}

// startLiveOn is startLive on a given Redis (or Redis Cluster) with a number of fan-out partitions.
func startLiveOn(t *testing.T, rdb redis.UniversalClient, partitions redisstream.FanoutPartitions, recheck time.Duration) *liveRig {
	t.Helper()
	return startLiveVia(t, rdb, rdb, partitions, recheck, quiet)
}

// startLiveVia is startLiveOn with the live channels on a client of their own (through a proxy),
// logging to log.
func startLiveVia(t *testing.T, rdb, live redis.UniversalClient, partitions redisstream.FanoutPartitions, recheck time.Duration,
	log *slog.Logger) *liveRig {
	t.Helper()
	return startLiveWith(t, rdb, live, partitions, recheck, noHistory{}, log)
}

// startLiveWith is startLiveVia with history standing in for Postgres.
func startLiveWith(t *testing.T, rdb, live redis.UniversalClient, partitions redisstream.FanoutPartitions, recheck time.Duration,
	history redisstream.HistoryReader, log *slog.Logger) *liveRig {
	t.Helper()
	return startLiveTops(t, rdb, live, partitions, recheck, history, func(b *redisstream.Backlog) messaging.StreamTops { return b }, log)
}

// startLiveTops is startLiveWith with the listener reading the streams' tops through what tops
// makes of the backlog.
func startLiveTops(t *testing.T, rdb, live redis.UniversalClient, partitions redisstream.FanoutPartitions, recheck time.Duration,
	history redisstream.HistoryReader, tops func(*redisstream.Backlog) messaging.StreamTops, log *slog.Logger) *liveRig {
	t.Helper()
	channels := redisstream.NewLiveChannels(live, partitions, log)
	backlog := redisstream.NewBacklog(rdb, history, quiet)
	hub := delivery.NewHub(backlog, channels, quiet)
	listener := messaging.NewLiveListener(channels, revocations{}, tops(backlog), durableOf{backlog, history}, hub,
		messaging.LiveRecheck(recheck), true, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = listener.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &liveRig{rdb: rdb, channels: channels, hub: hub, seqs: map[conversation.ID]int64{},
		pub: redisstream.NewDualStreamPublisher(rdb, 1000, false, partitions)}
}

// revocations ignores membership notices (these tests send none) and re-checks (everyone stays).
type revocations struct{}

func (revocations) Revoke(conversation.ID, conversation.UserID) {}

func (revocations) Reverify(context.Context, conversation.ID) error { return nil }

func (r *liveRig) entries(conv conversation.ID, n int) []redisstream.Entry {
	out := make([]redisstream.Entry, n)
	for i := range out {
		r.seqs[conv]++
		seq := r.seqs[conv]
		out[i] = redisstream.Entry{OutboxID: seq, ConversationID: string(conv), Seq: seq, MessageID: fmt.Sprintf("m-%s-%d", conv, seq),
			SenderID: "s", CreatedAt: time.Now(), Payload: []byte(fmt.Sprintf(`{"conversation_id":%q,"seq":%d}`, conv, seq))}
	}
	return out
}

// publish sends n new messages of conv the way the relay does (stream, fan-out, live channel).
func (r *liveRig) publish(t *testing.T, conv conversation.ID, n int) {
	t.Helper()
	if _, err := r.pub.Publish(context.Background(), [][]redisstream.Entry{r.entries(conv, n)}); err != nil {
		t.Fatal(err)
	}
}

// storeSilently writes n new messages to conv's stream only: as if Pub/Sub had lost them.
func (r *liveRig) storeSilently(t *testing.T, conv conversation.ID, n int) {
	t.Helper()
	for _, e := range r.entries(conv, n) {
		if err := r.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: redisstream.ConversationStream(string(conv)),
			ID: conversation.StreamID(e.Seq), Values: map[string]any{"payload": string(e.Payload)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *liveRig) shardSubscribers(t *testing.T, conv conversation.ID) int64 {
	t.Helper()
	n, err := r.rdb.PubSubShardNumSub(context.Background(), redisstream.LiveChannel(string(conv))).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[redisstream.LiveChannel(string(conv))]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testinfra.Eventually(t, 5*time.Second, what, cond)
}

// seqSink records what one subscription is handed.
type seqSink struct {
	mu   sync.Mutex
	seqs []int64
}

func (s *seqSink) Deliver(_ conversation.ID, it delivery.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs = append(s.seqs, it.Seq)
	return nil
}

func (s *seqSink) WaitRoom(context.Context) error { return nil }

func (s *seqSink) got() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seqs)
}

func (s *seqSink) expect(t *testing.T, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d messages arrived", n), func() bool { return len(s.got()) >= n })
	got := s.got()
	for i, seq := range got {
		if seq != int64(i+1) {
			t.Fatalf("got %v: not 1..%d in order once each", got, n)
		}
	}
	if len(got) != n {
		t.Fatalf("got %v, want exactly %d", got, n)
	}
}

func TestLiveChannelsCarryOnlyTheFollowedConversations(t *testing.T) {
	rig := startLive(t, time.Hour)
	sink := &seqSink{}

	// given a subscriber of c1 only
	sub := rig.hub.Subscribe(context.Background(), "c1", 0, sink)
	eventually(t, "c1's live channel is subscribed", func() bool { return rig.shardSubscribers(t, "c1") == 1 })

	// when both conversations get messages
	rig.publish(t, "c1", 5)
	rig.publish(t, "c2", 7)

	// then the subscriber gets c1's, and the instance heard nothing of c2
	sink.expect(t, 5)
	if n := rig.channels.Snapshot().Messages; n != 5 {
		t.Fatalf("instance heard %d live messages, want only c1's 5", n)
	}
	if n := rig.shardSubscribers(t, "c2"); n != 0 {
		t.Fatalf("c2 has %d shard subscribers", n)
	}

	// and when the last subscriber of c1 leaves, the channel is given up
	sub.Close()
	eventually(t, "c1's live channel is unsubscribed", func() bool { return rig.shardSubscribers(t, "c1") == 0 })
	if f := rig.channels.Snapshot().Following; f != 0 {
		t.Fatalf("still following %d conversations", f)
	}
}

// Giving a channel up and taking it back at once, over and over (a user reconnecting), sends
// unsubscribes whose confirmations arrive while the channel is wanted again: the instance knows
// them for its own and does not take them for Redis dropping the channel (which opens the
// connection again).
func TestAChannelGivenUpAndTakenBackIsNotTakenForOneRedisDropped(t *testing.T) {
	rig := startLive(t, time.Hour)
	for i := range 300 {
		sub := rig.hub.Subscribe(context.Background(), "c1", 0, &seqSink{})
		time.Sleep(300 * time.Microsecond) // subscribed
		sub.Close()
		// taken back before the unsubscribe went out, or after it did, before or after its
		// confirmation came back
		time.Sleep(time.Duration(i%20) * 25 * time.Microsecond)
	}
	sink := &seqSink{}
	rig.hub.Subscribe(context.Background(), "c1", 0, sink)
	eventually(t, "c1's live channel is subscribed", func() bool { return rig.shardSubscribers(t, "c1") == 1 })
	rig.publish(t, "c1", 3)
	sink.expect(t, 3)
	if n := rig.channels.Snapshot().Reopened; n != 0 {
		t.Fatalf("the live connection was opened again %d times: the instance took its own unsubscribes for Redis's", n)
	}
}

func TestLostLiveMessagesAreFoundInTheStream(t *testing.T) {
	rig := startLive(t, 200*time.Millisecond)
	sink := &seqSink{}
	rig.hub.Subscribe(context.Background(), "c1", 0, sink)
	eventually(t, "c1's live channel is subscribed", func() bool { return rig.shardSubscribers(t, "c1") == 1 })

	// when 1 and 2 arrive live, 3 is lost in Pub/Sub and 4 arrives live: a gap, filled at once
	rig.publish(t, "c1", 2)
	rig.storeSilently(t, "c1", 1)
	rig.publish(t, "c1", 1)
	sink.expect(t, 4)

	// when the last two of a burst are lost and nothing follows, the slow re-check brings them
	rig.publish(t, "c1", 3)
	rig.storeSilently(t, "c1", 2)
	sink.expect(t, 9)
}

func TestLiveConnectionCutIsMadeUpAfterItsResubscription(t *testing.T) {
	rig := startLive(t, time.Hour) // no timer: only the re-subscription can bring what was lost
	sink := &seqSink{}
	rig.hub.Subscribe(context.Background(), "c1", 0, sink)
	eventually(t, "c1's live channel is subscribed", func() bool { return rig.shardSubscribers(t, "c1") == 1 })
	rig.publish(t, "c1", 3)
	sink.expect(t, 3)
	confirmed := rig.channels.Snapshot().Confirmations

	// when messages are stored while the instance's Pub/Sub connection is cut
	rig.storeSilently(t, "c1", 4)
	if err := rig.rdb.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}

	// then the connection comes back, re-subscribes, and the subscriber gets what it missed
	sink.expect(t, 7)
	if rig.channels.Snapshot().Confirmations <= confirmed {
		t.Fatal("no re-subscription was confirmed")
	}
	rig.publish(t, "c1", 2)
	sink.expect(t, 9)
}

// A Redis that comes back (a restart, a failover) may have lost a stream's newest entries with
// their Pub/Sub messages; only Postgres holds them then. The re-subscription after the reconnect
// makes the subscription catch up from Postgres, though the stream shows nothing newer.
func TestAfterAReconnectWhatOnlyPostgresHoldsArrives(t *testing.T) {
	history := &storedHistory{}
	rdb := testinfra.StartRedis(t).Client()
	rig := startLiveWith(t, rdb, rdb, 1, time.Hour, history, quiet) // no timer: only the re-subscription can bring it
	sink := &seqSink{}
	rig.hub.Subscribe(context.Background(), "c1", 0, sink)
	eventually(t, "c1's live channel is subscribed", func() bool { return rig.shardSubscribers(t, "c1") == 1 })
	rig.publish(t, "c1", 3)
	sink.expect(t, 3)

	// when message 4 was committed and published, but Redis lost it (stream entry and Pub/Sub
	// message) and the instance's Pub/Sub connection with it
	history.add("c1", 4)
	if err := rig.rdb.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}

	// then after the re-subscription the subscriber gets it from Postgres, and what follows live
	sink.expect(t, 4)
	rig.seqs["c1"] = 4
	rig.publish(t, "c1", 1)
	sink.expect(t, 5)
}

// The comparison that follows a new subscription's confirmation covers what was published
// between its backlog read and the channel's subscription; when reading the stream fails
// (Redis busy or failing over), it is tried again shortly, not left to the full round.
func TestAComparisonThatFailedIsTriedAgain(t *testing.T) {
	rdb := testinfra.StartRedis(t).Client()
	var rig *liveRig
	failing := &failOnce{}
	rig = startLiveTops(t, rdb, rdb, 1, time.Hour, noHistory{}, func(b *redisstream.Backlog) messaging.StreamTops {
		failing.tops = b
		// the first comparison fails, and message 1 reaches the stream (and not Pub/Sub) meanwhile
		failing.before = func() { rig.storeSilently(t, "c1", 1) }
		return failing
	}, quiet)
	sink := &seqSink{}
	rig.hub.Subscribe(context.Background(), "c1", 0, sink)
	sink.expect(t, 1)
}

// failOnce fails its first Tops call, after running before.
type failOnce struct {
	tops   messaging.StreamTops
	before func()
	failed bool
	mu     sync.Mutex
}

func (f *failOnce) Tops(ctx context.Context, convs []conversation.ID) (map[conversation.ID]int64, error) {
	f.mu.Lock()
	first := !f.failed
	f.failed = true
	f.mu.Unlock()
	if first {
		f.before()
		return nil, fmt.Errorf("LOADING Redis is loading the dataset in memory")
	}
	return f.tops.Tops(ctx, convs)
}

// durableOf stands in for Postgres's last seqs: Postgres holds what the streams hold, and what
// history holds beyond.
type durableOf struct {
	streams messaging.StreamTops
	history redisstream.HistoryReader
}

func (d durableOf) LastSeqs(ctx context.Context, convs []conversation.ID) (map[conversation.ID]int64, error) {
	tops, err := d.streams.Tops(ctx, convs)
	if err != nil {
		return nil, err
	}
	for _, conv := range convs {
		msgs, err := d.history.MessagesAfter(ctx, conv, tops[conv], 1<<20)
		if err != nil {
			return nil, err
		}
		if n := len(msgs); n > 0 {
			tops[conv] = msgs[n-1].Seq
		}
	}
	return tops, nil
}

// storedHistory stands in for Postgres: the messages added to it.
type storedHistory struct {
	mu   sync.Mutex
	msgs map[conversation.ID][]conversation.Message
}

func (h *storedHistory) add(conv conversation.ID, seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msgs == nil {
		h.msgs = map[conversation.ID][]conversation.Message{}
	}
	h.msgs[conv] = append(h.msgs[conv], conversation.Message{ID: fmt.Sprintf("m-%s-%d", conv, seq), ConversationID: conv,
		Seq: seq, StreamID: conversation.StreamID(seq), SenderID: "s", ClientMsgID: fmt.Sprint(seq), Body: []byte(`1`), CreatedAt: time.Now()})
}

func (h *storedHistory) MessagesAfter(_ context.Context, conv conversation.ID, after int64, limit int) ([]conversation.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []conversation.Message
	for _, m := range h.msgs[conv] {
		if m.Seq > after && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

func TestASilentLiveConnectionIsPingedAndKeepsItsChannels(t *testing.T) {
	rig := startLive(t, time.Hour)
	rig.hub.Subscribe(context.Background(), "c1", 0, &seqSink{})
	eventually(t, "c1's live channel is subscribed", func() bool { return rig.shardSubscribers(t, "c1") == 1 })

	// when nothing is published for longer than the health interval, the instance itself pings
	// its Pub/Sub connection (Redis shows the connection's last command)
	testinfra.Eventually(t, 10*time.Second, "the live connection's last command is a ping", func() bool {
		list, err := rig.rdb.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(list) {
			if strings.Contains(line, "sub=0 psub=0 ssub=1") && strings.Contains(line, "cmd=ping") {
				return true
			}
		}
		return false
	})
	// and the connection still carries the conversation
	sink := &seqSink{}
	rig.hub.Subscribe(context.Background(), "c1", 0, sink)
	rig.publish(t, "c1", 2)
	sink.expect(t, 2)
}

func TestAHalfOpenLiveConnectionIsOpenedAgainAndWhatItSwallowedArrives(t *testing.T) {
	srv := testinfra.StartRedis(t)
	proxy := testinfra.StartProxy(t, srv.Addr())
	live := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	t.Cleanup(func() { _ = live.Close() })
	var logged lockedBuffer
	rig := startLiveVia(t, srv.Client(), live, 1, time.Hour, slog.New(slog.NewTextHandler(&logged, nil))) // no timer: only a new connection can bring what was lost
	sink := &seqSink{}
	rig.hub.Subscribe(context.Background(), "c1", 0, sink)
	eventually(t, "c1's live channel is subscribed", func() bool { return rig.shardSubscribers(t, "c1") == 1 })
	rig.publish(t, "c1", 3)
	sink.expect(t, 3)

	// when the path to Redis dies without a word (no FIN, no reset: the connection stays open on
	// both ends and swallows the messages and the keep-alive pings)
	proxy.Swallow()
	rig.publish(t, "c1", 4)

	// then the instance takes the silent connection for dead, opens another, subscribes again,
	// and finds what was swallowed in the stream
	testinfra.Eventually(t, 20*time.Second, "the swallowed messages arrived", func() bool { return len(sink.got()) >= 7 })
	sink.expect(t, 7)
	rig.publish(t, "c1", 2)
	sink.expect(t, 9)
	// and the operator reads of it once when it starts and once when it ends
	out := logged.String()
	if strings.Count(out, "live channels cannot read Redis") != 1 || strings.Count(out, "live channels read Redis again") != 1 {
		t.Fatalf("want the outage logged once as it starts and once as it ends, got:\n%s", out)
	}
}

// lockedBuffer is a bytes.Buffer that goroutines may write to at once (a test's log).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLiveMessageCodec(t *testing.T) {
	it := delivery.Item{Seq: 42, CreatedAtMs: 1700000000123, JSON: []byte(`{"seq":42,"body":"a b"}`)}
	got, err := redisstream.DecodeLive(redisstream.EncodeLive(it))
	if err != nil || got.Seq != 42 || got.CreatedAtMs != it.CreatedAtMs || string(got.JSON) != string(it.JSON) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "42", "42 1", "x 1 {}", "0 1 {}", "42 y {}", "42 1 not-json", "-3 1 {}"} {
		if _, err := redisstream.DecodeLive([]byte(bad)); err == nil {
			t.Errorf("DecodeLive(%q) accepted", bad)
		}
	}
}

func TestALostOnlyMessageOfAQuietConversationArrivesAtTheFullRecheck(t *testing.T) {
	rig := startLive(t, 50*time.Millisecond) // a full comparison every 12 rounds: 600 ms
	sink := &seqSink{}
	rig.hub.Subscribe(context.Background(), "quiet", 0, sink)
	eventually(t, "the live channel is subscribed", func() bool { return rig.shardSubscribers(t, "quiet") == 1 })
	time.Sleep(100 * time.Millisecond) // past the comparison that followed the confirmation

	// when the conversation's only message is lost in Pub/Sub
	rig.storeSilently(t, "quiet", 1)

	// then a full re-check round still brings it
	sink.expect(t, 1)
}

func TestOnRedisClusterLiveChannelsFollowEachPartitionOnItsOwnConnectionAndSurviveAFailover(t *testing.T) {
	cluster := testinfra.StartRedisCluster(t, 3)
	// no re-check timer: whatever arrives comes through the live channels (or a subscription's
	// confirmation, which compares with the stream)
	rig := startLiveOn(t, cluster.Client(), 4, time.Hour)

	// given subscribers of 12 conversations, whose live channels fall in several slots
	convs := make([]conversation.ID, 12)
	sinks := make([]*seqSink, len(convs))
	for i := range convs {
		convs[i] = conversation.ID(fmt.Sprintf("conv-%02d", i))
		sinks[i] = &seqSink{}
		rig.hub.Subscribe(context.Background(), convs[i], 0, sinks[i])
	}
	eventually(t, "every live channel is subscribed", func() bool {
		return rig.channels.Snapshot().Confirmations >= int64(len(convs))
	})

	// when each gets 5 messages through the split publish
	for _, c := range convs {
		rig.publish(t, c, 5)
	}

	// then each subscriber has its 5, in order, heard live
	for _, s := range sinks {
		s.expect(t, 5)
	}
	if n := rig.channels.Snapshot().Messages; n != int64(5*len(convs)) {
		t.Fatalf("heard %d live messages, want %d", n, 5*len(convs))
	}

	// and when the master of one conversation's live channel fails over, the connection to it
	// comes back on the new master and its messages arrive again
	victim := convs[0]
	cluster.StopMasterOf(redisstream.FanoutPartitions(4).LiveChannel(string(victim)), 30*time.Second)
	testinfra.Eventually(t, 20*time.Second, "publishing works after the failover", func() bool {
		_, err := rig.pub.Publish(context.Background(), [][]redisstream.Entry{rig.entries(victim, 1)})
		if err != nil {
			rig.seqs[victim]-- // not written: the same seq is published again
		}
		return err == nil
	})
	rig.publish(t, victim, 2)
	sinks[0].expect(t, 8)
}

func TestOnRedisClusterASubscriptionRedirectedByAStaleSlotMapIsOpenedAgainAndBacksOff(t *testing.T) {
	cluster := testinfra.StartRedisCluster(t, 3)
	ctx := context.Background()
	truth, err := cluster.Client().ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// the live channels' client reads a slot map on which every range is served by the next
	// range's master while stale holds: each subscription goes to a node that answers MOVED
	var stale atomic.Bool
	stale.Store(true)
	live := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(cluster.Seeds(), ","),
		ClusterSlots: func(context.Context) ([]redis.ClusterSlot, error) {
			if !stale.Load() {
				return truth, nil
			}
			wrong := make([]redis.ClusterSlot, len(truth))
			for i, s := range truth {
				wrong[i] = redis.ClusterSlot{Start: s.Start, End: s.End, Nodes: truth[(i+1)%len(truth)].Nodes}
			}
			return wrong, nil
		}})
	t.Cleanup(func() { _ = live.Close() })
	rig := startLiveVia(t, cluster.Client(), live, 4, time.Hour, quiet)

	// given a subscriber whose live channel the stale map sends to the wrong node
	conv := conversation.ID("conv-redirected")
	sink := &seqSink{}
	rig.hub.Subscribe(ctx, conv, 0, sink)

	// then its connection is opened again and again, each time a little later: a few times in
	// 4 s (0, 0.2, 0.4, 0.8, 1.6 s apart, plus the reload's settle), not every settle (20 times)
	testinfra.Eventually(t, 10*time.Second, "the redirected subscription is opened again", func() bool {
		return rig.channels.Snapshot().Redirected >= 2
	})
	time.Sleep(4 * time.Second)
	snap := rig.channels.Snapshot()
	if snap.Redirected > 8 {
		t.Fatalf("opened again %d times in about 4 s of redirects; want it to back off (at most 8)", snap.Redirected)
	}
	if snap.Reopened != 0 {
		t.Fatalf("a redirect was counted as Redis dropping channels (%d)", snap.Reopened)
	}

	// and once the slot map is right, the next opening lands on the slot's master and the
	// conversation's messages arrive live
	stale.Store(false)
	// (within a back-off of up to 5 s, twice should go-redis's background reload come late once)
	testinfra.Eventually(t, 25*time.Second, "the live channel is confirmed on the slot's master", func() bool {
		return rig.channels.Snapshot().Confirmations >= 1
	})
	rig.publish(t, conv, 3)
	sink.expect(t, 3)
	if n := rig.channels.Snapshot().Messages; n != 3 {
		t.Fatalf("heard %d live messages, want 3 (each heard live, not only found in the stream)", n)
	}
}

func TestTheRedirectBackOffDoublesToFiveSecondsAndStaysThere(t *testing.T) {
	want := map[int]time.Duration{0: 0, 1: 200 * time.Millisecond, 2: 400 * time.Millisecond, 3: 800 * time.Millisecond,
		5: 3200 * time.Millisecond, 6: 5 * time.Second, 7: 5 * time.Second, 37: 5 * time.Second, 64: 5 * time.Second,
		65: 5 * time.Second, 1 << 20: 5 * time.Second}
	for n, d := range want {
		if got := redisstream.RedirectBackoff(n); got != d {
			t.Errorf("back-off after %d redirects in a row: %v, want %v", n, got, d)
		}
	}
}
