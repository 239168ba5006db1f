package redisstream_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// commandStat is one figure of INFO commandstats for cmd (e.g. "script|load", "calls"): how
// often rdb's server ran it since it started.
func commandStat(t *testing.T, rdb *redis.Client, cmd, field string) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
		if !ok {
			continue
		}
		for stat := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(stat, field+"="); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("commandstats line %q: %v", line, err)
				}
				return n
			}
		}
	}
	return 0
}

// withEachPartitioning runs test on a fresh private Redis with a publisher for one fan-out
// partition (one script writes everything) and for four (the publish is split).
func withEachPartitioning(t *testing.T, test func(t *testing.T, rdb *redis.Client, pub *redisstream.DualStreamPublisher)) {
	for _, partitions := range []redisstream.FanoutPartitions{1, 4} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			rdb := testinfra.StartRedis(t).Client()
			test(t, rdb, redisstream.NewDualStreamPublisher(rdb, 1000, false, partitions))
		})
	}
}

// On a Redis that has never seen Nova's scripts (a new server, or one restarted), publishers
// running side by side, as the fast path's lanes do, load them once between them before their
// first publish, and no call meets an empty script cache (a pipeline that did would run again
// whole, and what it wrote the first time would come back as duplicates).
func TestPublishersStartingTogetherLoadTheScriptsOnceAndWriteEachMessageOnce(t *testing.T) {
	withEachPartitioning(t, func(t *testing.T, rdb *redis.Client, pub *redisstream.DualStreamPublisher) {
		ctx := context.Background()
		const callers = 8
		results := make([]redisstream.PublishResult, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				e := entry(1, `{"seq":1}`)
				e.ConversationID = fmt.Sprintf("c%d", i)
				results[i], errs[i] = pub.PublishNext(ctx, [][]redisstream.Entry{{e}})
			})
		}
		wg.Wait()
		for i := range callers {
			if errs[i] != nil || results[i].Added != 1 || results[i].Duplicates != 0 {
				t.Errorf("publisher %d: %+v %v, want the message added once", i, results[i], errs[i])
			}
		}
		if n := commandStat(t, rdb, "script|load", "calls"); n != 2 {
			t.Errorf("SCRIPT LOAD ran %d times, want 2 (each of the two scripts once)", n)
		}
		if n := commandStat(t, rdb, "evalsha", "failed_calls"); n != 0 {
			t.Errorf("%d script calls failed (NOSCRIPT), want none", n)
		}
	})
}

// The caller that starts the scripts' load may give up before it ends (its request's deadline,
// a stopping relay); the callers that joined that load still get the scripts, not its error.
func TestACallerGivingUpDoesNotFailTheScriptLoadOfThoseWaitingWithIt(t *testing.T) {
	withEachPartitioning(t, func(t *testing.T, rdb *redis.Client, pub *redisstream.DualStreamPublisher) {
		ctx := context.Background()
		// Redis answers nothing for 500 ms, so the first caller's load is on its way when the
		// second asks and when the first one's deadline passes.
		if err := rdb.Do(ctx, "CLIENT", "PAUSE", 500, "ALL").Err(); err != nil {
			t.Fatal(err)
		}
		impatient, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		first := make(chan error, 1)
		go func() {
			_, err := pub.PublishNext(impatient, [][]redisstream.Entry{{entry(1, `{"seq":1}`)}})
			first <- err
		}()
		time.Sleep(30 * time.Millisecond)
		e := entry(1, `{"seq":1}`)
		e.ConversationID = "c2"
		res, err := pub.PublishNext(ctx, [][]redisstream.Entry{{e}})

		if err != nil || res.Added != 1 {
			t.Errorf("the caller that waited: %+v %v, want its message added", res, err)
		}
		if err := <-first; err == nil {
			t.Error("the caller whose deadline passed during the load got no error")
		}
		if n := commandStat(t, rdb, "script|load", "calls"); n != 2 {
			t.Errorf("SCRIPT LOAD ran %d times, want 2 (each of the two scripts once)", n)
		}
	})
}

// Redis loses its scripts when it restarts (or a replica without them takes over): the next
// publish loads them again and writes what follows, and a re-send of what Redis kept is
// recognised as such.
func TestAPublishAfterRedisLostItsScriptsLoadsThemAgain(t *testing.T) {
	withEachPartitioning(t, func(t *testing.T, rdb *redis.Client, pub *redisstream.DualStreamPublisher) {
		ctx := context.Background()
		if _, err := pub.Publish(ctx, [][]redisstream.Entry{{entry(1, `{"seq":1}`)}}); err != nil {
			t.Fatal(err)
		}
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}

		res, err := pub.PublishNext(ctx, [][]redisstream.Entry{{entry(1, `{"seq":1}`), entry(2, `{"seq":2}`)}})

		if err != nil || res.Added != 1 || res.Duplicates != 1 || len(res.Done) != 2 {
			t.Fatalf("after SCRIPT FLUSH: %+v %v, want seq 2 added and seq 1 a duplicate", res, err)
		}
		ids, err := rdb.XRange(ctx, redisstream.ConversationStream("c1"), "-", "+").Result()
		if err != nil || len(ids) != 2 || ids[0].ID != "1-0" || ids[1].ID != "2-0" {
			t.Fatalf("conversation stream %v %v, want 1-0 and 2-0", ids, err)
		}
	})
}
