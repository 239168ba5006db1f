package systemtest_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/events"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/messaging"
)

// With NOVA_FANOUT_PARTITIONS=4 the publish is split in two (conversation half, partition half)
// and every consumer group reads four streams: the product must still deliver across instances
// and count each message once.
func TestPartitionedFanoutDeliversAndCountsEachMessageOnceAcrossTwoInstances(t *testing.T) {
	const partitions, conversations, perConversation = 4, 8, 3
	settings := map[string]string{"NOVA_FANOUT_PARTITIONS": fmt.Sprint(partitions)}
	maps.Copy(settings, fastClaims) // so that a redelivery would happen, and show, within the test
	a, b, rds := twoProcesses(t, settings)
	rdb := rds.Client()
	ctx := context.Background()
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL)   // online on the other instance
	carol := testinfra.NewUser(t, a.URL) // offline

	// given conversations spread over the partitions, bob subscribed to all of them on B
	var convs []conversation.ID
	ws := bob.DialWS("", "")
	for range conversations {
		c := alice.CreateConversation(bob.User, carol.User)
		convs = append(convs, c)
		ws.Subscribe(c, nil)
	}

	// when alice sends on A
	for i := 1; i <= perConversation; i++ {
		for _, c := range convs {
			alice.Send(c, fmt.Sprint(i), i)
		}
	}

	// then bob gets every message on B, each conversation in seq order
	next := map[conversation.ID]int64{}
	for _, m := range ws.Messages(conversations*perConversation, 10*time.Second) {
		if m.Seq != next[m.ConversationID]+1 {
			t.Fatalf("conversation %s: seq %d after %d", m.ConversationID, m.Seq, next[m.ConversationID])
		}
		next[m.ConversationID] = m.Seq
	}

	// and messaging-service counts each message once for carol, in every partition
	for _, c := range convs {
		eventually(t, 10*time.Second, "carol's offline count reaches 3", func() bool { return offlineCount(t, rdb, carol.User, c) == perConversation })
	}
	used := map[string]bool{}
	for _, c := range convs {
		stream := events.PartitionStream(events.Partition(string(c), partitions), partitions)
		used[stream] = true
		entries := rdb.XRange(ctx, stream, "-", "+").Val()
		var seqs []string
		for _, e := range entries {
			if e.Values["conversation_id"] == string(c) {
				seqs = append(seqs, fmt.Sprint(e.Values["entry_id"]))
			}
		}
		if fmt.Sprint(seqs) != "[1-0 2-0 3-0]" {
			t.Fatalf("conversation %s in %s: entries %v, want 1-0 2-0 3-0", c, stream, seqs)
		}
	}
	if len(used) < 2 {
		t.Fatalf("%d conversations all landed in one partition", conversations)
	}
	for _, stream := range events.Streams(partitions) {
		eventually(t, 10*time.Second, "the group acknowledged everything in "+stream, func() bool {
			p, err := rdb.XPending(ctx, stream, messaging.GroupMessagingService).Result()
			return err == nil && p.Count == 0
		})
	}
	if n := rdb.Exists(ctx, redisstream.FanoutStream).Val(); n != 0 {
		t.Fatal("the unpartitioned fan-out stream was written although there are partitions")
	}
	time.Sleep(4 * time.Second) // a claim (after 2 s idle, looked for every second) would show by now
	for _, c := range convs {
		if n := offlineCount(t, rdb, carol.User, c); n != perConversation {
			t.Fatalf("carol's offline count in %s is %d, want %d", c, n, perConversation)
		}
	}
}
