package redisstream_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
)

func TestOverlappingOfflineCountsShareRoundTripsAndCountEachEventOnce(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	var roundTrips atomic.Int64
	client := rds.Client()
	client.AddHook(tripCounter{&roundTrips})
	counter := redisstream.NewOfflineCounter(client)
	const events = 300
	count := func() int { return countAtOnce(t, counter, events, []conversation.UserID{"alice", "bob"}) }

	// given 300 events counted at the same time
	if fresh := count(); fresh != events {
		t.Fatalf("%d of %d events reported new", fresh, events)
	}
	// when the same events come again (a redelivery)
	if fresh := count(); fresh != 0 {
		t.Fatalf("%d redelivered events reported new", fresh)
	}

	// then each recipient's counter holds each event once, and calls that overlapped shared
	// round trips
	for _, u := range []conversation.UserID{"alice", "bob"} {
		if n, _ := rdb.Get(ctx, redisstream.OfflineKey(u, "c")).Int(); n != events {
			t.Errorf("%s's counter: %d, want %d", u, n, events)
		}
	}
	t.Logf("%d round trips for %d calls", roundTrips.Load(), 2*events)
	if trips := roundTrips.Load(); trips > events {
		t.Errorf("%d round trips for %d calls, want overlapping calls to share them", trips, 2*events)
	}
}

func TestOneEventCountedManyTimesAtOnceCountsOnce(t *testing.T) {
	ctx := context.Background()
	rdb := testinfra.StartRedis(t).Client()
	counter := redisstream.NewOfflineCounter(rdb)
	// when 50 callers count the same event at the same time (one batch, one script call)
	var fresh atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			isNew, err := counter.CountOffline(ctx, "g", "c", 7, []conversation.UserID{"alice"})
			if err != nil {
				t.Error(err)
			}
			if isNew {
				fresh.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	// then one of them hears it was new, and the counter holds it once
	if fresh.Load() != 1 {
		t.Fatalf("%d callers heard the event was new, want 1", fresh.Load())
	}
	if n, err := rdb.Get(ctx, redisstream.OfflineKey("alice", "c")).Int(); err != nil || n != 1 {
		t.Fatalf("alice's counter: %d, %v; want 1", n, err)
	}
}

// tripCounter counts a client's round trips: each single command and each pipeline is one.
type tripCounter struct{ n *atomic.Int64 }

func (tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func TestHandledMarksTakeOneBitPerMessage(t *testing.T) {
	ctx := context.Background()
	rdb := testinfra.StartRedis(t).Client()
	counter := redisstream.NewOfflineCounter(rdb)
	// given 10,000 messages of one conversation counted
	for seq := int64(1); seq <= 10_000; seq++ {
		if _, err := counter.CountOffline(ctx, "g", "c", seq, []conversation.UserID{"alice"}); err != nil {
			t.Fatal(err)
		}
	}
	// then their marks are one key of about 10,000 bits, with a TTL
	keys := rdb.Keys(ctx, "nova:handled:*").Val()
	if len(keys) != 1 {
		t.Fatalf("handled keys: %v, want one for the conversation", keys)
	}
	if n := rdb.StrLen(ctx, keys[0]).Val(); n > 10_000/8+1 {
		t.Errorf("marks take %d bytes, want about 1,250", n)
	}
	if ttl := rdb.TTL(ctx, keys[0]).Val(); ttl <= 0 {
		t.Errorf("marks TTL %v, want one", ttl)
	}
	// and a seq outside the bitmap's range is refused, not allocated
	if _, err := counter.CountOffline(ctx, "g", "c", 1<<40, nil); err == nil {
		t.Error("seq 2^40 accepted")
	}
}

func TestOnRedisClusterOfflineCountsSpanSlotsAndStillCountEachEventOnce(t *testing.T) {
	ctx := context.Background()
	cluster := testinfra.StartRedisCluster(t, 3)
	client := cluster.Client()
	counter := redisstream.NewOfflineCounter(client)
	// given carol connected somewhere (her presence hash vouches for her) and alice, bob not;
	// their counters and presence hashes are spread over the cluster's slots
	if ok, err := redisstream.NewPresence(client, "n1").Admit(ctx, "carol", 10); err != nil || !ok {
		t.Fatalf("admit carol: %v %v", ok, err)
	}
	recipients := []conversation.UserID{"alice", "bob", "carol"}
	slots := map[int64]bool{}
	for _, u := range recipients {
		for _, k := range []string{redisstream.OfflineKey(u, "c"), "presence:" + string(u)} {
			slots[client.ClusterKeySlot(ctx, k).Val()] = true
		}
	}
	if len(slots) < 2 {
		t.Fatalf("the keys share one slot; the test needs them spread")
	}

	// when 200 events are counted at once, and then all of them again (a redelivery)
	const events = 200
	count := func() int { return countAtOnce(t, counter, events, recipients) }
	if fresh := count(); fresh != events {
		t.Fatalf("%d of %d events reported new", fresh, events)
	}
	if fresh := count(); fresh != 0 {
		t.Fatalf("%d redelivered events reported new", fresh)
	}

	// then the offline recipients' counters hold each event once, and carol's holds none
	for u, want := range map[conversation.UserID]int{"alice": events, "bob": events, "carol": 0} {
		n, err := client.Get(ctx, redisstream.OfflineKey(u, "c")).Int()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s's counter: %d, want %d", u, n, want)
		}
	}
}

// countAtOnce counts events 1..n of conversation "c" for recipients, all calls at the same
// time, and returns how many were reported new.
func countAtOnce(t *testing.T, counter *redisstream.OfflineCounter, n int, recipients []conversation.UserID) (fresh int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			isNew, err := counter.CountOffline(context.Background(), "g", "c", int64(i+1), recipients)
			if err != nil {
				t.Error(err)
			}
			if isNew {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return fresh
}

// The caller that sends a pipeline for everyone returns once the round that held its own call
// is done, even while other callers keep the queue full: it is a consumer-group handler, and
// its message (and the batch of its partition) would wait for it as long as the load lasted.
func TestTheCallerSendingThePipelineIsNotHeldWhileOthersKeepItFull(t *testing.T) {
	ctx := context.Background()
	client := testinfra.StartRedis(t).Client()
	client.AddHook(slowPipelines{5 * time.Millisecond}) // a Redis a few ms away, or busy
	counter := redisstream.NewOfflineCounter(client)
	const callers, load = 16, 1500 * time.Millisecond

	// given 16 handlers counting messages back to back for 1.5 s, on round trips of 5 ms, so
	// that calls queue during every one of them
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		longest time.Duration
		calls   int
		failed  error
	)
	stop := time.Now().Add(load)
	for i := range callers {
		wg.Go(func() {
			conv := conversation.ID(fmt.Sprintf("c%d", i))
			for seq := int64(1); time.Now().Before(stop); seq++ {
				start := time.Now()
				_, err := counter.CountOffline(ctx, "g", conv, seq, []conversation.UserID{"alice"})
				took := time.Since(start)
				mu.Lock()
				calls++
				longest = max(longest, took)
				if err != nil && failed == nil {
					failed = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	// then no call waited for more than a few round trips, not for the whole load
	if failed != nil {
		t.Fatal(failed)
	}
	t.Logf("%d calls, the longest took %v", calls, longest)
	if longest > load/3 {
		t.Errorf("a call took %v of the %v load: the caller sending the pipeline was held while others kept it full", longest, load)
	}
}

// slowPipelines makes every pipeline take d longer.
type slowPipelines struct{ d time.Duration }

func (slowPipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (slowPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h slowPipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		time.Sleep(h.d)
		return next(ctx, cmds)
	}
}

// A round that panics (a bug, here in a client hook) answers each of its calls with an error
// instead of leaving them waiting (or, on the goroutine that sends a later round, ending the
// process), and the calls after it are counted as usual.
func TestARoundThatPanicsAnswersItsCallsWithAnError(t *testing.T) {
	ctx := context.Background()
	client := testinfra.StartRedis(t).Client()
	client.AddHook(panicOnce{&atomic.Bool{}})
	counter := redisstream.NewOfflineCounter(client)

	_, err := counter.CountOffline(ctx, "g", "c", 1, []conversation.UserID{"alice"})
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("the call of the round that panicked: %v, want an error about the panic", err)
	}
	fresh, err := counter.CountOffline(ctx, "g", "c", 1, []conversation.UserID{"alice"})
	if err != nil || !fresh {
		t.Fatalf("the call after it: %v %v, want the message counted", fresh, err)
	}
}

// panicOnce panics in the first pipeline.
type panicOnce struct{ done *atomic.Bool }

func (panicOnce) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (panicOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h panicOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.done.CompareAndSwap(false, true) {
			panic("a bug")
		}
		return next(ctx, cmds)
	}
}
