package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nova-chat/nova/internal/ctxsleep"
)

// MemoryResult is what idle subscribed WebSocket connections cost one node.
type MemoryResult struct {
	Node          string  `json:"node"`
	Conns         int     `json:"connections"`
	Conversations int     `json:"conversations"`
	Users         int     `json:"users"`
	OpenS         float64 `json:"open_s"`
	RSSBeforeKiB  int64   `json:"rss_before_kib"`
	RSSAfterKiB   int64   `json:"rss_after_kib"`
	KiBPerConn    float64 `json:"kib_per_conn"`
	// From the node's /metrics (Go runtime), for where the memory goes.
	HeapInuseBefore  float64 `json:"heap_inuse_before_bytes"`
	HeapInuseAfter   float64 `json:"heap_inuse_after_bytes"`
	StackInuseBefore float64 `json:"stack_inuse_before_bytes"`
	StackInuseAfter  float64 `json:"stack_inuse_after_bytes"`
	GoroutinesBefore float64 `json:"goroutines_before"`
	GoroutinesAfter  float64 `json:"goroutines_after"`
	RSSAfterCloseKiB int64   `json:"rss_after_close_kib"`
	Error            string  `json:"error,omitempty"`
}

func (b *Bench) runMemory(ctx context.Context) *MemoryResult {
	res := &MemoryResult{Conns: b.cfg.MemConns, Conversations: 100, Users: 100}
	if err := b.memory(ctx, res); err != nil {
		res.Error = err.Error()
		b.log.Printf("memory: ERROR %v", err)
	}
	return res
}

func (b *Bench) memory(ctx context.Context, res *MemoryResult) error {
	nodes := b.env.Nodes
	node := nodes[len(nodes)-1]
	res.Node = node.Name
	users := b.api.NewUsers(res.Users)
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	convs := make([]string, res.Conversations)
	if err := parallel(ctx, len(convs), 8, func(i int) error {
		var err error
		convs[i], err = b.api.CreateConversation(ctx, node.URL, users[i%len(users)], ids)
		return err
	}); err != nil {
		return fmt.Errorf("create conversations: %w", err)
	}

	before, err := b.settledMemory(ctx, node)
	if err != nil {
		return err
	}
	res.RSSBeforeKiB = before.rss
	res.HeapInuseBefore, res.StackInuseBefore, res.GoroutinesBefore = before.heap, before.stack, before.goroutines

	n := res.Conns
	t := time.Now()
	ic := newIdleConns(ctx, n)
	defer ic.close()
	stop := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("memory: %d/%d connections open and subscribed on %s", ic.opened.Load(), n, node.Name)
	})
	// Connection j is user j/100 (mod 100) in conversation j mod 100: each pair once.
	err = ic.open(ctx, node.URL, func(j int) (User, string) {
		return users[(j/len(convs))%len(users)], convs[j%len(convs)]
	})
	stop()
	if err != nil {
		return err
	}
	res.OpenS = time.Since(t).Seconds()
	b.log.Printf("memory: %d connections open and subscribed in %.1fs; letting them settle", n, res.OpenS)

	after, err := b.settledMemory(ctx, node)
	if err != nil {
		return err
	}
	res.RSSAfterKiB = after.rss
	if b.cfg.Profile {
		for _, prof := range []string{"heap", "goroutine"} {
			path := filepath.Join(b.cfg.Out, fmt.Sprintf("%s-memory-%s.pprof", prof, node.Name))
			if err := fetchToFile(ctx, node.AdminURL+"/debug/pprof/"+prof, path); err != nil {
				b.log.Printf("memory: %s profile: %v", prof, err)
			}
		}
	}
	res.HeapInuseAfter, res.StackInuseAfter, res.GoroutinesAfter = after.heap, after.stack, after.goroutines
	res.KiBPerConn = float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(n)
	b.log.Printf("memory: RSS %d -> %d KiB: %.1f KiB per connection (heap %.1f, stacks %.1f KiB per connection, %.1f goroutines each)",
		res.RSSBeforeKiB, res.RSSAfterKiB, res.KiBPerConn,
		(after.heap-before.heap)/1024/float64(n), (after.stack-before.stack)/1024/float64(n), (after.goroutines-before.goroutines)/float64(n))

	ic.close()
	_ = ctxsleep.Sleep(ctx, 2*time.Second)
	if rss, err := node.RSSKiB(); err == nil {
		res.RSSAfterCloseKiB = rss
	}
	return nil
}

type memSample struct {
	rss                     int64
	heap, stack, goroutines float64
}

// settledMemory lets the node settle, has it collect garbage (the heap profile endpoint with
// gc=1 runs a GC) a few times, and reads its RSS and runtime figures.
func (b *Bench) settledMemory(ctx context.Context, node *Node) (memSample, error) {
	var s memSample
	if err := ctxsleep.Sleep(ctx, 2*time.Second); err != nil {
		return s, err
	}
	// Several collections: each one also halves goroutine stacks that use under a quarter of
	// their size, as a long-running server's idle connections would see over time.
	for range 3 {
		if resp, err := http.Get(node.AdminURL + "/debug/pprof/heap?gc=1"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err := ctxsleep.Sleep(ctx, 200*time.Millisecond); err != nil {
			return s, err
		}
	}
	if err := ctxsleep.Sleep(ctx, time.Second); err != nil {
		return s, err
	}
	rss, err := node.RSSKiB()
	if err != nil {
		return s, err
	}
	s.rss = rss
	m := scrapeMetrics(node.AdminURL, "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines")
	s.heap, s.stack, s.goroutines = m["go_memstats_heap_inuse_bytes"], m["go_memstats_stack_inuse_bytes"], m["go_goroutines"]
	return s, nil
}

func fetchToFile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// scrapeMetrics reads the named unlabelled samples from a Prometheus text endpoint.
func scrapeMetrics(adminURL string, names ...string) map[string]float64 {
	out := map[string]float64{}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(adminURL + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			out[name] = v
		}
	}
	return out
}
