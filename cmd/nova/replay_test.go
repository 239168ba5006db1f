package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nova-chat/nova/events"
	"github.com/nova-chat/nova/internal/testinfra"
)

func TestReplayWritesStoredMessagesToTheGroupsReplayStream(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t)
	db := testinfra.NewDatabase(t)
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: db, RedisURL: rds.URL()})

	// given 5 messages stored before a moment T and 1,200 after it, in two conversations
	alice := testinfra.NewUser(t, inst.URL)
	c1, c2 := alice.CreateConversation(), alice.CreateConversation()
	for i := range 5 {
		alice.Send(c1, fmt.Sprintf("early-%d", i), i)
	}
	time.Sleep(20 * time.Millisecond)
	since := time.Now().UTC()
	want := map[string]bool{}
	for i := range 1200 {
		conv := c1
		if i%3 == 0 {
			conv = c2
		}
		m, _ := alice.Send(conv, fmt.Sprintf("late-%d", i), i)
		want[m.ID] = true
	}

	// when another service asks for a replay since T
	env := []string{"DATABASE_URL=" + db, "REDIS_URL=" + rds.URL()}
	stdout, stderr, code := runNova(t, env, "replay", "--group", "search", "--since", since.Format(time.RFC3339Nano))
	if code != 0 || !strings.Contains(stdout, "replayed 1200 messages") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// then its replay stream holds exactly those messages, each once, decodable with package
	// events, every conversation in seq order
	entries, err := rds.Client().XRange(ctx, events.ReplayStream("search"), "-", "+").Result()
	if err != nil || len(entries) != 1200 {
		t.Fatalf("%d entries (%v), want 1200", len(entries), err)
	}
	lastSeq := map[string]int64{}
	for _, e := range entries {
		msg, _ := events.Unmarshaller{}.Unmarshal(e.Values)
		posted, ok, err := events.DecodeMessagePosted(msg)
		if err != nil || !ok || !want[posted.ID] || msg.UUID != posted.ID {
			t.Fatalf("entry %s: ok=%v err=%v id=%s uuid=%s", e.ID, ok, err, posted.ID, msg.UUID)
		}
		delete(want, posted.ID)
		if posted.Seq <= lastSeq[posted.ConversationID] {
			t.Fatalf("%s: seq %d after %d", posted.ConversationID, posted.Seq, lastSeq[posted.ConversationID])
		}
		lastSeq[posted.ConversationID] = posted.Seq
	}
	// and mistakes are one-line errors with exit 2
	for _, args := range [][]string{{"replay", "--since", since.Format(time.RFC3339)}, {"replay", "--group", "g", "--since", "yesterday"}} {
		if _, stderr, code := runNova(t, env, args...); code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("nova %v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
