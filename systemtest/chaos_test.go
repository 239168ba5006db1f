//go:build chaos

package systemtest_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/client"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
)

// TestChaos is the whole-system check of RELIABILITY.md (run with `make chaos`), on one Redis:
// a start while Redis is down, kill -9, SIGSTOP, a Redis restart (empty), a Postgres outage, a
// Redis failover that loses acknowledged entries (a restart from an older snapshot), and a relay
// leader frozen for 60 s while Redis refuses writes; chaosRun.finish says what is checked.
func TestChaos(t *testing.T) {
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	// the instances start while Redis is down; it comes up 4 s later
	rds.Stop()
	redisUp := rds.StartAfter(4 * time.Second)
	instances, proxies := chaosInstances(t, rds.URL(), nil)
	if err := <-redisUp; err != nil {
		t.Fatal(err)
	}
	run := startChaos(t, []string{instances[0].URL, instances[1].URL}, 4)
	run.step(3*time.Second, "kill -9 instance 0", instances[0].Kill)
	run.step(3*time.Second, "restart instance 0", func() { instances[0].Restart(); run.ended("kill -9 and restart of instance 0", -1) })
	run.step(3*time.Second, "SIGSTOP instance 1 for 3 s", instances[1].Pause)
	run.step(3*time.Second, "SIGCONT instance 1", func() { instances[1].Resume(); run.ended("SIGSTOP of instance 1", -1) })
	run.step(3*time.Second, "restart Redis empty", func() { rds.Stop(); rds.Start(); run.ended("Redis restarted empty", -1) })
	run.step(3*time.Second, "cut Postgres for 3 s", func() { proxies[0].Cut(); proxies[1].Cut() })
	run.step(3*time.Second, "restore Postgres", func() { proxies[0].Restore(); proxies[1].Restore(); run.ended("Postgres outage", -1) })
	run.step(3*time.Second, "Redis fails over and loses 2 s of acknowledged entries", func() {
		// a snapshot now, 2 s more traffic, then a crash and a start from the snapshot: what a
		// replica promoted with an asynchronous lag holds (stream tops move back as well)
		if err := rdb.Save(context.Background()).Err(); err != nil {
			t.Fatalf("SAVE: %v", err)
		}
		time.Sleep(2 * time.Second)
		rds.Stop()
		rds.Start()
		run.ended("Redis failover losing acknowledged entries", -1)
	})
	leader := relayLeader(t, instances[:])
	other := 1 - leader
	run.step(3*time.Second, fmt.Sprintf("SIGSTOP the relay leader (instance %d) for 60 s; Redis refuses writes for 3 s", leader), func() {
		instances[leader].Pause()
		if err := rdb.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil { // noeviction: every write fails with OOM
			t.Fatalf("CONFIG SET maxmemory: %v", err)
		}
		time.Sleep(3 * time.Second)
		if err := rdb.ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
			t.Fatalf("CONFIG SET maxmemory: %v", err)
		}
		run.ended("Redis writes refused while the relay leader is frozen", other)
		time.Sleep(57 * time.Second)
		instances[leader].Resume()
		run.ended("relay leader frozen for 60 s", -1)
	})
	time.Sleep(5 * time.Second)
	run.finish()
}

// TestChaosOnRedisCluster is the same check on a Redis Cluster (3 masters, one replica each)
// with 4 fan-out partitions: kill -9 and restart of an instance, SIGSTOP of the other, two
// masters failing over under traffic (the first one back as a replica in between), and a
// Postgres outage.
func TestChaosOnRedisCluster(t *testing.T) {
	cluster := testinfra.StartRedisCluster(t, 3)
	instances, proxies := chaosInstances(t, cluster.Seeds(), map[string]string{"NOVA_FANOUT_PARTITIONS": "4"})
	run := startChaos(t, []string{instances[0].URL, instances[1].URL}, 4)
	part := redisstream.FanoutPartitions(4)
	var first *testinfra.Redis
	run.step(3*time.Second, "kill -9 instance 0", instances[0].Kill)
	run.step(3*time.Second, "restart instance 0", func() { instances[0].Restart(); run.ended("kill -9 and restart of instance 0", -1) })
	run.step(3*time.Second, "SIGSTOP instance 1 for 3 s", instances[1].Pause)
	run.step(3*time.Second, "SIGCONT instance 1", func() { instances[1].Resume(); run.ended("SIGSTOP of instance 1", -1) })
	run.step(3*time.Second, "the master of a fan-out partition fails over", func() {
		first = cluster.StopMasterOf(part.Stream(part.Of(string(run.convs[0]))), 30*time.Second)
		run.ended("failover of a partition's master", -1)
	})
	run.step(3*time.Second, "the stopped master comes back as a replica", func() {
		first.Start()
		cluster.WaitHealthy(30 * time.Second)
	})
	run.step(3*time.Second, "the master of a live channel fails over", func() {
		cluster.StopMasterOf(part.LiveChannel(string(run.convs[1])), 30*time.Second)
		run.ended("failover of a live channel's master", -1)
	})
	run.step(3*time.Second, "cut Postgres for 3 s", func() { proxies[0].Cut(); proxies[1].Cut() })
	run.step(3*time.Second, "restore Postgres", func() { proxies[0].Restore(); proxies[1].Restore(); run.ended("Postgres outage", -1) })
	time.Sleep(5 * time.Second)
	run.finish()
}

// chaosInstances starts two instances on a fresh database, each through a TCP proxy of its own
// (so a test can cut Postgres), claiming dead consumers' entries after 2 s; settings add to that.
func chaosInstances(t *testing.T, redisURL string, settings map[string]string) ([2]*testinfra.Process, [2]*testinfra.Proxy) {
	u, err := url.Parse(testinfra.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	var instances [2]*testinfra.Process
	var proxies [2]*testinfra.Proxy
	for i := range instances {
		proxies[i] = testinfra.StartProxy(t, u.Host)
		via := *u
		via.Host = proxies[i].Addr()
		env := map[string]string{"NOVA_CLAIM_IDLE": "2s", "NOVA_CLAIM_INTERVAL": "1s"}
		maps.Copy(env, settings)
		instances[i] = testinfra.StartProcess(t, testinfra.Env{DatabaseURL: via.String(), RedisURL: redisURL, Settings: env})
	}
	return instances, proxies
}

// chaosRun is the traffic and the bookkeeping of a chaos test: producers post uniquely numbered
// messages through every instance, retrying each with the same client_msg_id until it is
// acknowledged, and two applications on the Go client per conversation (one per instance)
// record what reaches them. Faults are steps; finish drains and checks.
type chaosRun struct {
	t     *testing.T
	urls  []string
	convs []conversation.ID

	records     map[string]*chaosRecord
	stopReaders context.CancelFunc
	readersDone sync.WaitGroup

	acked, attempted sync.Map // client_msg_id -> conversation
	attempts, acks   atomic.Int64
	stopProducers    chan struct{}
	producersDone    sync.WaitGroup

	ends []faultEnd
}

// chaosRecord is what one application saw.
type chaosRecord struct {
	mu       sync.Mutex
	last     int64
	got      map[string]bool // client_msg_id -> seen
	dups     int             // duplicates the application saw
	gaps     int             // a gap is as bad as going backwards
	arrivals []time.Time     // when each new message arrived
	instance int
}

// faultEnd is when a fault ended, and which instance's readers it concerns (-1: all).
type faultEnd struct {
	what     string
	at       time.Time
	instance int
}

func startChaos(t *testing.T, urls []string, convCount int) *chaosRun {
	c := &chaosRun{t: t, urls: urls, records: map[string]*chaosRecord{}, stopProducers: make(chan struct{})}
	sender := testinfra.NewUser(t, urls[0])
	reader := testinfra.NewUser(t, urls[1])
	for range convCount {
		c.convs = append(c.convs, sender.CreateConversation(reader.User))
	}
	c.startReaders(reader)
	c.startProducers(sender)
	return c
}

// step waits d, then runs a fault.
func (c *chaosRun) step(d time.Duration, what string, f func()) {
	time.Sleep(d)
	c.t.Logf("%s (acked so far %d)", what, c.acks.Load())
	f()
}

// ended records the end of a fault: live delivery must resume within 5 s of it.
func (c *chaosRun) ended(what string, instance int) {
	c.ends = append(c.ends, faultEnd{what, time.Now(), instance})
}

func (c *chaosRun) startReaders(reader *testinfra.Client) {
	// readers: two per conversation, one per instance, each an application on the Go client
	// (client/), which resumes from its last seq after any reconnect and drops re-sends by seq;
	// what reaches the application is checked here
	ctx, stop := context.WithCancel(context.Background())
	c.stopReaders = stop
	for _, conv := range c.convs {
		for i := range c.urls {
			rec := &chaosRecord{got: map[string]bool{}, instance: i}
			c.records[fmt.Sprintf("%s@%d", conv, i)] = rec
			app, err := client.New(client.Config{URLs: []string{c.urls[i]}, ClientID: uuid.NewString(),
				Token:      func(context.Context) (string, error) { return reader.Token, nil },
				MaxBackoff: time.Second}) // the 5 s resumption check below needs reconnects sooner than 10 s
			if err != nil {
				c.t.Fatal(err)
			}
			app.SubscribeFrom(string(conv), 0)
			c.readersDone.Add(2)
			go func() { defer c.readersDone.Done(); _ = app.Run(ctx) }()
			go func() {
				defer c.readersDone.Done()
				for m := range app.Messages() {
					rec.mu.Lock()
					switch {
					case m.Seq <= rec.last:
						rec.dups++
					case m.Seq != rec.last+1:
						rec.gaps++
						rec.last = m.Seq
					default:
						rec.last = m.Seq
						rec.got[m.ClientMsgID] = true
						rec.arrivals = append(rec.arrivals, time.Now())
					}
					rec.mu.Unlock()
				}
			}()
		}
	}
}

func (c *chaosRun) startProducers(sender *testinfra.Client) {
	// producers: each message is retried with the same client_msg_id until acknowledged
	for p := range c.convs {
		c.producersDone.Add(1)
		go func() {
			defer c.producersDone.Done()
			conv := c.convs[p]
			for n := 0; ; n++ {
				select {
				case <-c.stopProducers:
					return
				default:
				}
				id := fmt.Sprintf("p%d-%d", p, n)
				c.attempted.Store(id, conv)
				for try := 0; ; try++ {
					c.attempts.Add(1)
					status, _, _ := sender.As(c.urls[(n+try)%len(c.urls)]).WithTimeout(2*time.Second).TryDo("POST", "/v1/conversations/"+string(conv)+"/messages",
						map[string]any{"client_msg_id": id, "body": n})
					if status == http.StatusCreated || status == http.StatusOK {
						c.acked.Store(id, conv)
						c.acks.Add(1)
						break
					}
					select {
					case <-c.stopProducers:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
}

// finish stops the producers, waits until every application has every acknowledged message of
// its conversation, and checks: lost = 0, unexpected = 0, duplicates and gaps seen by the
// applications = 0, and live delivery resumed within 5 s after each fault ended.
func (c *chaosRun) finish() {
	close(c.stopProducers)
	c.producersDone.Wait()
	wanted := map[conversation.ID]map[string]bool{}
	c.acked.Range(func(k, v any) bool {
		conv := v.(conversation.ID)
		if wanted[conv] == nil {
			wanted[conv] = map[string]bool{}
		}
		wanted[conv][k.(string)] = true
		return true
	})
	deadline := time.Now().Add(60 * time.Second)
	for name, rec := range c.records {
		conv := conversation.ID(name[:36])
		for {
			rec.mu.Lock()
			missing := 0
			for id := range wanted[conv] {
				if !rec.got[id] {
					missing++
				}
			}
			rec.mu.Unlock()
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				c.t.Errorf("reader %s: lost %d acknowledged messages", name, missing)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c.stopReaders()
	c.readersDone.Wait()

	for name, rec := range c.records {
		conv := conversation.ID(name[:36])
		if rec.dups != 0 || rec.gaps != 0 {
			c.t.Errorf("reader %s: the application saw %d duplicates and %d gaps", name, rec.dups, rec.gaps)
		}
		for id := range rec.got {
			// a message stored while its request was cut off has no acknowledgement but was sent;
			// anything else is unexpected
			if sentTo, ok := c.attempted.Load(id); !ok || sentTo.(conversation.ID) != conv {
				c.t.Errorf("reader %s: unexpected message %s", name, id)
			}
		}
	}
	// live delivery resumed within 5 s of each fault's end, for every reader it concerned
	for _, e := range c.ends {
		for name, rec := range c.records {
			if e.instance >= 0 && rec.instance != e.instance {
				continue
			}
			resumed := false
			for _, at := range rec.arrivals {
				if !at.Before(e.at) && at.Sub(e.at) <= 5*time.Second {
					resumed = true
					break
				}
			}
			if !resumed {
				c.t.Errorf("reader %s: nothing arrived within 5 s after the end of: %s", name, e.what)
			}
		}
	}
	c.t.Logf("attempts %d, acknowledged %d", c.attempts.Load(), c.acks.Load())
}

// relayLeader is the index of the instance whose relay holds the leader lock (from /metrics).
func relayLeader(t *testing.T, instances []*testinfra.Process) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, p := range instances {
			resp, err := http.Get(p.AdminURL + "/metrics")
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), "\nnova_outbox_relay_leader 1") {
				return i
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("no instance reports itself as the relay leader")
	return -1
}
