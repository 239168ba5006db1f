package redisstream_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application/monitoring"
	"github.com/nova-chat/nova/internal/testinfra"
)

const four = redisstream.FanoutPartitions(4)

func convEntries(conv string, from, to int64) []redisstream.Entry {
	var out []redisstream.Entry
	for seq := from; seq <= to; seq++ {
		out = append(out, redisstream.Entry{OutboxID: seq, ConversationID: conv, Seq: seq, MessageID: fmt.Sprintf("%s-m%d", conv, seq),
			SenderID: "s", CreatedAt: time.Now(), Payload: []byte(fmt.Sprintf(`{"seq":%d}`, seq)), Participants: []string{"s", "r"}})
	}
	return out
}

// fanoutSeqs lists, per conversation, the seqs of its entries in partition p's stream, in stream order.
func fanoutSeqs(t *testing.T, rdb *redis.Client, p int) map[string][]string {
	t.Helper()
	entries, err := rdb.XRange(context.Background(), four.Stream(p), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range entries {
		conv := fmt.Sprint(e.Values["conversation_id"])
		if got := four.Of(conv); got != p {
			t.Fatalf("conversation %s (partition %d) has an entry in partition %d", conv, got, p)
		}
		id, _, _ := strings.Cut(fmt.Sprint(e.Values["entry_id"]), "-")
		out[conv] = append(out[conv], id)
	}
	return out
}

func seqList(from, to int) string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprint(i))
	}
	return fmt.Sprint(s)
}

func TestASplitPublishWritesEachConversationOnceToItsPartitionInSeqOrder(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	pub := redisstream.NewDualStreamPublisher(rdb, 1000, true, four)
	const convs = 24

	// given conversations published in two rounds, the second by the fast path (strict), and
	// the first round sent again as a relay would after a lost delete
	var ids []string
	var batch1, batch2 [][]redisstream.Entry
	for range convs {
		c := uuid.NewString()
		ids = append(ids, c)
		batch1 = append(batch1, convEntries(c, 1, 3))
		batch2 = append(batch2, convEntries(c, 4, 5))
	}
	live := rdb.SSubscribe(ctx, four.LiveChannel(ids[0]))
	defer live.Close()
	if _, err := live.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := pub.Publish(ctx, batch1)
	if err != nil || res.Added != 3*convs || len(res.Done) != 3*convs {
		t.Fatalf("first round: %+v, %v", res, err)
	}
	if res, err = pub.PublishNext(ctx, batch2); err != nil || res.Added != 2*convs || res.Deferred != 0 {
		t.Fatalf("second round (strict): %+v, %v", res, err)
	}
	if res, err = pub.Publish(ctx, batch1); err != nil || res.Duplicates != 3*convs || len(res.Done) != 3*convs {
		t.Fatalf("re-send: %+v, %v; want every entry a duplicate", res, err)
	}

	// then each conversation's five entries are in its partition, once, in seq order, and indexed there
	seen, used := 0, 0
	for p := range four.Count() {
		got := fanoutSeqs(t, rdb, p)
		if len(got) > 0 {
			used++
		}
		for conv, seqs := range got {
			if fmt.Sprint(seqs) != seqList(1, 5) {
				t.Fatalf("conversation %s in partition %d: %v, want %s", conv, p, seqs, seqList(1, 5))
			}
			seen++
		}
		if n, want := rdb.ZCard(ctx, four.Index(p)).Val(), rdb.XLen(ctx, four.Stream(p)).Val(); n != want {
			t.Fatalf("partition %d: index holds %d members for %d entries", p, n, want)
		}
	}
	if seen != convs || used < 2 {
		t.Fatalf("%d conversations found in %d partitions; want %d over several", seen, used, convs)
	}
	if rdb.Exists(ctx, redisstream.FanoutStream, redisstream.FanoutIndex).Val() != 0 {
		t.Fatal("the unpartitioned fan-out stream or index was written")
	}
	last := four.LastSeq(four.Of(ids[0]), ids[0])
	if v, ttl := rdb.Get(ctx, last).Val(), rdb.TTL(ctx, last).Val(); v != "5" || ttl < 6*24*time.Hour {
		t.Fatalf("%s = %q (ttl %s), want 5 for about 7 days", last, v, ttl)
	}
	// and the live channel carried each new message once, after its stream entry
	for seq := int64(1); seq <= 5; seq++ {
		select {
		case m := <-live.Channel():
			it, err := redisstream.DecodeLive([]byte(m.Payload))
			if err != nil || it.Seq != seq {
				t.Fatalf("live message %q (%v), want seq %d", m.Payload, err, seq)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("live seq %d never came", seq)
		}
	}
	select {
	case m := <-live.Channel():
		t.Fatalf("a re-send was published live: %q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	// and the conversation streams hold them as in the atomic publish
	if n := rdb.XLen(ctx, redisstream.ConversationStream(ids[0])).Val(); n != 5 {
		t.Fatalf("conversation stream holds %d entries, want 5", n)
	}
}

func TestACrashBetweenTheHalvesOfASplitPublishYieldsOneFanoutEntry(t *testing.T) {
	ctx := context.Background()
	rdb := testinfra.StartRedis(t).Client()
	pub := redisstream.NewDualStreamPublisher(rdb, 1000, false, four)
	conv := uuid.NewString()
	p := four.Of(conv)

	// given a publisher that wrote the conversation half of seqs 1..2 and stopped
	if err := redisstream.PublishConversationHalf(ctx, pub, convEntries(conv, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if n := rdb.XLen(ctx, four.Stream(p)).Val(); n != 0 {
		t.Fatalf("the conversation half wrote %d fan-out entries", n)
	}

	// when the relay sends the rows again (twice)
	res, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(conv, 1, 2)})
	if err != nil || res.FanoutRepaired != 2 || len(res.Done) != 2 || res.Added != 0 {
		t.Fatalf("re-send: %+v, %v; want both fan-out entries repaired", res, err)
	}
	res, err = pub.Publish(ctx, [][]redisstream.Entry{convEntries(conv, 1, 2)})
	if err != nil || res.Duplicates != 2 || len(res.Done) != 2 {
		t.Fatalf("second re-send: %+v, %v; want duplicates", res, err)
	}

	// then the partition has each entry exactly once, in order
	if got := fanoutSeqs(t, rdb, p)[conv]; fmt.Sprint(got) != seqList(1, 2) {
		t.Fatalf("partition %d holds %v, want %s", p, got, seqList(1, 2))
	}
}

// The fast path must not write seq n+1 to the partition while seq n, already in the
// conversation stream, has not reached it: n would then look written. It defers to the relay,
// which writes both in order.
func TestTheFastPathDefersAFanoutEntryWhosePredecessorIsMissing(t *testing.T) {
	ctx := context.Background()
	rdb := testinfra.StartRedis(t).Client()
	pub := redisstream.NewDualStreamPublisher(rdb, 1000, false, four)
	conv := uuid.NewString()
	p := four.Of(conv)
	if _, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(conv, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	// given seq 2 in the conversation stream only (its publisher died between the halves)
	if err := redisstream.PublishConversationHalf(ctx, pub, convEntries(conv, 2, 2)); err != nil {
		t.Fatal(err)
	}

	// when the fast path publishes seq 3
	res, err := pub.PublishNext(ctx, [][]redisstream.Entry{convEntries(conv, 3, 3)})

	// then the conversation stream takes it (counted as added), the partition does not yet, and
	// the row stays
	if err != nil || res.Deferred != 1 || len(res.Done) != 0 || res.Added != 1 {
		t.Fatalf("fast path: %+v, %v; want it added to the conversation stream and its fan-out entry deferred", res, err)
	}
	if n := rdb.XLen(ctx, redisstream.ConversationStream(conv)).Val(); n != 3 {
		t.Fatalf("conversation stream holds %d, want 3 (live delivery does not wait)", n)
	}
	// and the relay, reading the outbox in order, writes 2 and 3 after 1
	res, err = pub.Publish(ctx, [][]redisstream.Entry{convEntries(conv, 2, 3)})
	if err != nil || res.FanoutRepaired != 2 || len(res.Done) != 2 || res.Added != 0 {
		t.Fatalf("relay: %+v, %v; want both fan-out entries repaired, none added again", res, err)
	}
	if got := fanoutSeqs(t, rdb, p)[conv]; fmt.Sprint(got) != seqList(1, 3) {
		t.Fatalf("partition %d holds %v, want %s", p, got, seqList(1, 3))
	}
}

// Without the partition's mark of a conversation (its first messages, a mark that expired after
// a quiet week, a partition lost with its node) the fast path writes no fan-out entry but a
// first message's: the seq before may be on its way from an instance that stopped between its
// halves, and writing past it would make that one look written and leave it without an entry.
func TestWithoutThePartitionsMarkTheFastPathDefersAllButAFirstMessage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		published int64 // published whole before the mark is gone
	}{{"a new conversation", 0}, {"a mark that expired", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := testinfra.StartRedis(t).Client()
			pub := redisstream.NewDualStreamPublisher(rdb, 1000, false, four)
			conv := uuid.NewString()
			p := four.Of(conv)
			if tc.published > 0 {
				if _, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(conv, 1, tc.published)}); err != nil {
					t.Fatal(err)
				}
				if err := rdb.Del(ctx, four.LastSeq(p, conv)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			// given the next message in the conversation stream only (its publisher died
			// between the halves)
			next := tc.published + 1
			if err := redisstream.PublishConversationHalf(ctx, pub, convEntries(conv, next, next)); err != nil {
				t.Fatal(err)
			}

			// when the fast path publishes the two after it
			res, err := pub.PublishNext(ctx, [][]redisstream.Entry{convEntries(conv, next+1, next+2)})

			// then the conversation stream takes both (counted as added), the partition neither
			// yet, and the relay writes all three, in order
			if err != nil || res.Deferred != 2 || res.Added != 2 || len(res.Done) != 0 {
				t.Fatalf("fast path: %+v, %v; want both added to the conversation stream and deferred", res, err)
			}
			if res, err = pub.Publish(ctx, [][]redisstream.Entry{convEntries(conv, next, next+2)}); err != nil || len(res.Done) != 3 {
				t.Fatalf("relay: %+v, %v", res, err)
			}
			if got := fanoutSeqs(t, rdb, p)[conv]; fmt.Sprint(got) != seqList(1, int(next+2)) {
				t.Fatalf("partition %d holds %v, want %s", p, got, seqList(1, int(next+2)))
			}
		})
	}
}

// A one-node Redis Cluster refuses a script that touches keys of two hash slots: the split
// publish passes it; the atomic one (one partition) does not, which shows the check is real.
func TestEverySplitPublishScriptStaysInOneHashSlot(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"))
	rdb := rds.Client()
	if err := rdb.ClusterAddSlotsRange(ctx, 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		return strings.Contains(rdb.ClusterInfo(ctx).Val(), "cluster_state:ok")
	}, "the one-node cluster is up")

	var batch [][]redisstream.Entry
	for range 8 {
		batch = append(batch, convEntries(uuid.NewString(), 1, 3))
	}
	_, err := redisstream.NewDualStreamPublisher(rdb, 1000, true, 1).Publish(ctx, batch[:1])
	if err == nil || !strings.Contains(err.Error(), "same slot") {
		t.Fatalf("atomic publish on a cluster: %v, want a cross-slot refusal", err)
	}
	pub := redisstream.NewDualStreamPublisher(rdb, 1000, true, four)
	if res, err := pub.Publish(ctx, batch); err != nil || res.Added != 24 {
		t.Fatalf("split publish on a cluster: %+v, %v", res, err)
	}
	if res, err := pub.PublishNext(ctx, [][]redisstream.Entry{convEntries(batch[0][0].ConversationID, 4, 4)}); err != nil || res.Added != 1 {
		t.Fatalf("split fast path on a cluster: %+v, %v", res, err)
	}
	if _, err := redisstream.NewFanoutTrimmer(rdb, four, redisstream.DeclaredGroups{"g"}).Trim(ctx); err != nil {
		t.Fatalf("trim on a cluster: %v", err)
	}
}

// Each partition is trimmed behind the slowest group of that partition, with its index.
func TestEachPartitionIsTrimmedBehindItsOwnSlowestGroup(t *testing.T) {
	ctx := context.Background()
	rdb := testinfra.StartRedis(t).Client()
	pub := redisstream.NewDualStreamPublisher(rdb, 1000, false, four)
	byPartition := map[int]string{}
	for len(byPartition) < four.Count() {
		c := uuid.NewString()
		if _, ok := byPartition[four.Of(c)]; !ok {
			byPartition[four.Of(c)] = c
			if _, err := pub.Publish(ctx, [][]redisstream.Entry{convEntries(c, 1, 10)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// given group g created on every partition (declared), which read and acked everything of partition 0 only
	trimmer := redisstream.NewFanoutTrimmer(rdb, four, redisstream.DeclaredGroups{"g"})
	if err := trimmer.EnsureDeclaredGroups(ctx); err != nil {
		t.Fatal(err)
	}
	read := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{four.Stream(0), ">"}, Count: 100}).Val()
	var acked []string
	for _, m := range read[0].Messages {
		acked = append(acked, m.ID)
	}
	if err := rdb.XAck(ctx, four.Stream(0), "g", acked...).Err(); err != nil || len(acked) != 10 {
		t.Fatalf("ack %d: %v", len(acked), err)
	}

	// when the trimmer runs
	n, err := trimmer.Trim(ctx)

	// then partition 0 is empty and its index keeps nothing older than the millisecond of the
	// last acked entry (it is trimmed by score); the others keep all 10 unread entries indexed
	if err != nil || n != 10 {
		t.Fatalf("trimmed %d, %v; want 10", n, err)
	}
	lastMs, _, _ := strings.Cut(acked[len(acked)-1], "-")
	if l, old := rdb.XLen(ctx, four.Stream(0)).Val(), rdb.ZCount(ctx, four.Index(0), "-inf", "("+lastMs).Val(); l != 0 || old != 0 {
		t.Errorf("partition 0: %d entries, %d index members older than the last acked; want none", l, old)
	}
	for p := 1; p < four.Count(); p++ {
		if l, idx := rdb.XLen(ctx, four.Stream(p)).Val(), rdb.ZCard(ctx, four.Index(p)).Val(); l != 10 || idx != 10 {
			t.Errorf("partition %d: %d entries, %d index members; want 10", p, l, idx)
		}
	}
}

// A consumer group reads every partition: each message once, each conversation in seq order.
func TestAGroupReadsEveryPartitionOnceAndInOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	pub := redisstream.NewDualStreamPublisher(rdb, 1000, false, four)
	const convs, per = 16, 6
	var batch [][]redisstream.Entry
	for range convs {
		batch = append(batch, convEntries(uuid.NewString(), 1, per))
	}
	if _, err := pub.Publish(ctx, batch); err != nil {
		t.Fatal(err)
	}

	// given two instances' consumers of messaging-service, each subscribed to every partition
	type delivered struct {
		consumer string
		msg      *message.Message
	}
	got := make(chan delivered, convs*per*2)
	for _, name := range []string{"n1", "n2"} {
		subscribeEveryPartition(ctx, t, rds.URL(), four, name, nil, false, func(_ string, m *message.Message) { got <- delivered{name, m} })
	}

	// then every message arrives once; each consumer gets a conversation's entries in seq order
	seen := map[string]bool{}
	last := map[string]int{} // consumer|conversation -> seq
	for range convs * per {
		select {
		case d := <-got:
			conv := d.msg.Metadata.Get("conversation_id")
			var seq int
			_, _ = fmt.Sscan(d.msg.Metadata.Get("seq"), &seq)
			if key := fmt.Sprint(conv, seq); seen[key] {
				t.Fatalf("conversation %s seq %d came twice", conv, seq)
			} else {
				seen[key] = true
			}
			if k := d.consumer + "|" + conv; seq <= last[k] {
				t.Fatalf("consumer %s, conversation %s: seq %d after %d", d.consumer, conv, seq, last[k])
			} else {
				last[k] = seq
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d messages arrived", len(seen), convs*per)
		}
	}
	select {
	case d := <-got:
		t.Fatalf("a message came twice: %s seq %s", d.msg.Metadata.Get("conversation_id"), d.msg.Metadata.Get("seq"))
	case <-time.After(500 * time.Millisecond):
	}
	for _, stream := range four.Streams() {
		waitFor(t, 5*time.Second, func() bool {
			p, err := rdb.XPending(ctx, stream, redisstream.ConsumerGroup).Result()
			return err == nil && p.Count == 0
		}, "everything acked in "+stream)
	}
}

// `nova streams`, /admin and the stream metrics read every partition as a fan-out stream.
func TestTheInspectorReportsEveryPartitionAndFindsTheBusiestConversationsInAll(t *testing.T) {
	ctx := context.Background()
	rdb := testinfra.StartRedis(t).Client()
	pub := redisstream.NewDualStreamPublisher(rdb, 1000, false, four)
	var batch [][]redisstream.Entry
	for i := range 6 {
		batch = append(batch, convEntries(uuid.NewString(), 1, int64(i+1)))
	}
	if _, err := pub.Publish(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := redisstream.NewFanoutTrimmer(rdb, four, redisstream.DeclaredGroups{"g"}).EnsureDeclaredGroups(ctx); err != nil {
		t.Fatal(err)
	}

	streams, err := redisstream.NewStreamInspector(rdb, four).Streams(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var fanout, total int64
	var busiest []string
	for _, st := range streams {
		switch st.Kind {
		case monitoring.KindFanout:
			if len(st.Groups) != 1 || st.Groups[0].Name != "g" {
				t.Errorf("%s: groups %+v, want g", st.Key, st.Groups)
			}
			if st.Key != four.Stream(int(fanout)) {
				t.Errorf("fan-out stream %d is %s, want %s", fanout, st.Key, four.Stream(int(fanout)))
			}
			fanout++
			total += st.Length
		case monitoring.KindConversation:
			busiest = append(busiest, st.Key)
		}
	}
	if fanout != 4 || total != 21 {
		t.Fatalf("%d fan-out streams holding %d entries, want 4 holding 21", fanout, total)
	}
	want := []string{redisstream.ConversationStream(batch[5][0].ConversationID), redisstream.ConversationStream(batch[4][0].ConversationID),
		redisstream.ConversationStream(batch[3][0].ConversationID)}
	if fmt.Sprint(busiest) != fmt.Sprint(want) {
		t.Fatalf("busiest %v, want %v", busiest, want)
	}
}
