package redisstream_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
)

func entry(seq int64, payload string) redisstream.Entry {
	return redisstream.Entry{OutboxID: seq, ConversationID: "c1", Seq: seq, MessageID: "m" + payload, SenderID: "s",
		CreatedAt: time.Now(), Payload: []byte(payload)}
}

func TestAnIDBelowTheTopIsCheckedNotAssumed(t *testing.T) {
	rdb := testinfra.StartRedis(t).Client()
	ctx := context.Background()
	pub := redisstream.NewDualStreamPublisher(rdb, 1000, false, 1)
	one, two, three := entry(1, `{"seq":1}`), entry(2, `{"seq":2}`), entry(3, `{"seq":3}`)
	if _, err := pub.Publish(ctx, [][]redisstream.Entry{{one, two, three}}); err != nil {
		t.Fatal(err)
	}
	fanout := func() int64 { return rdb.XLen(ctx, redisstream.FanoutStream).Val() }

	// a re-send of what the stream holds is a duplicate, written nowhere
	res, err := pub.Publish(ctx, [][]redisstream.Entry{{two}})
	if err != nil || res.Duplicates != 1 || res.Added != 0 || fanout() != 3 {
		t.Fatalf("re-send: %+v %v, fan-out %d", res, err, fanout())
	}

	// a message the stream lost (its id is below the top) is not taken as published: its fan-out
	// entry is written again, so consumer groups hear of it, and the row counts as done
	if err := rdb.XDel(ctx, redisstream.ConversationStream("c1"), "2-0").Err(); err != nil {
		t.Fatal(err)
	}
	for _, strict := range []bool{false, true} {
		publish := pub.Publish
		if strict {
			publish = pub.PublishNext
		}
		before := fanout()
		res, err = publish(ctx, [][]redisstream.Entry{{two}})
		if err != nil || res.Behind != 1 || len(res.Done) != 1 || fanout() != before+1 {
			t.Fatalf("lost entry (strict %v): %+v %v, fan-out %d -> %d", strict, res, err, before, fanout())
		}
	}

	// another message at an id below the top is an error, never a silent "already there"
	_, err = pub.Publish(ctx, [][]redisstream.Entry{{entry(3, `{"seq":3,"other":true}`)}})
	if err == nil || !strings.Contains(err.Error(), "another message") {
		t.Fatalf("another message at 3-0: %v, want an error", err)
	}
}
