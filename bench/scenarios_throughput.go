package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/internal/ctxsleep"
)

// Baselines are the machine's own limits, measured in the same run.
type Baselines struct {
	// PGCommit is pgbench with one client: the latency of one durable one-row commit.
	PGCommit *PGBenchResult `json:"pgbench_commit"`
	// PGBench is pgbench at each concurrency of the throughput runs, one row per transaction.
	PGBench []*PGBenchResult `json:"pgbench"`
	// PGPaced is pgbench paced at the latency runs' rate, one row per transaction: what one
	// durable commit per message costs Postgres at that rate (the floor of Nova's Postgres CPU).
	PGPaced   *PGBenchResult    `json:"pgbench_paced,omitempty"`
	RedisXADD *RedisBenchResult `json:"redis_benchmark_xadd"`
}

// pacedClients send the paced baseline: enough that a slow commit does not hold the rate up.
const pacedClients = 4

type PGBenchResult struct {
	When         string  `json:"when,omitempty"` // "before the nodes" or "after the nova runs"
	Clients      int     `json:"clients"`
	Rate         int     `json:"rate,omitempty"` // pgbench -R: transactions/s offered (0: as fast as it can)
	DurationS    int     `json:"duration_s"`
	TPS          float64 `json:"tps"`
	LatencyAvgMs float64 `json:"latency_avg_ms"`
	// Latency is each transaction's latency from its scheduled start (pgbench -l), kept for
	// the paced run only: the durable floor's own tail, beside Nova's p99.
	Latency *Summary `json:"latency,omitempty"`
	CPU     CPUUse   `json:"cpu_cores"`
	Command string   `json:"command"`
	Error   string   `json:"error,omitempty"`
}

// PostgresMsPerRow is the CPU time (ms) the bench database's backends spent per committed row
// (0 for a failed run, or one without CPU figures).
func (r *PGBenchResult) PostgresMsPerRow() float64 {
	if r == nil || r.Error != "" {
		return 0
	}
	return cpuPerMessageMs(r.CPU, []string{pgBenchDB}, r.TPS)
}

type RedisBenchResult struct {
	RequestsPerS float64 `json:"requests_per_s"`
	P50Ms        float64 `json:"p50_ms,omitempty"`
	Command      string  `json:"command"`
	Error        string  `json:"error,omitempty"`
}

// BestPGBench is the pgbench run with the highest tps.
func (bl *Baselines) BestPGBench() *PGBenchResult {
	var best *PGBenchResult
	for _, r := range bl.PGBench {
		if r.Error == "" && (best == nil || r.TPS > best.TPS) {
			best = r
		}
	}
	return best
}

// benchTableSQL is a table like messages (same columns, same keys) for pgbench to insert into.
const benchTableSQL = `
CREATE TABLE bench_messages (
    conversation_id uuid        NOT NULL,
    seq             bigint      NOT NULL,
    id              uuid        NOT NULL,
    sender_id       uuid        NOT NULL,
    client_msg_id   text        NOT NULL,
    body            json        NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_msg_id)
);
CREATE SEQUENCE bench_seq;`

// pgbenchScript inserts one message-like row per transaction into one of 100 conversations.
const pgbenchScript = `\set c random(1, 100)
INSERT INTO bench_messages (conversation_id, seq, id, sender_id, client_msg_id, body, created_at)
VALUES (md5(:c::text)::uuid, nextval('bench_seq'), gen_random_uuid(), gen_random_uuid(),
        'pgbench-' || currval('bench_seq'),
        '{"t":1700000000000000000,"k":123456,"text":"novabench throughput probe"}', now());
`

func (b *Bench) runBaselines(ctx context.Context) *Baselines {
	bl := &Baselines{}
	script := filepath.Join(b.env.Dir, "insert.sql")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o644); err != nil {
		bl.PGCommit = &PGBenchResult{Error: err.Error()}
		return bl
	}
	if _, err := b.env.DB.Exec(ctx, benchTableSQL); err != nil {
		bl.PGCommit = &PGBenchResult{Error: err.Error()}
		return bl
	}
	commitDur := 2
	if !b.cfg.Quick {
		commitDur = 5
	}
	b.log.Printf("baseline: pgbench -c 1 for %ds (commit latency of one row)", commitDur)
	bl.PGCommit = b.pgbench(ctx, script, 1, commitDur)
	b.log.Printf("baseline: pgbench -c 1: %.0f tps, latency %.3f ms %s", bl.PGCommit.TPS, bl.PGCommit.LatencyAvgMs, bl.PGCommit.Error)
	if b.cfg.wants("throughput") {
		secs := int(b.cfg.ThroughputDur / time.Second)
		for _, c := range b.cfg.Concurrency {
			if ctx.Err() != nil {
				return bl
			}
			b.log.Printf("baseline: pgbench -c %d -j 2 -T %d", c, secs)
			r := b.pgbench(ctx, script, c, secs)
			r.When = "before the nodes"
			bl.PGBench = append(bl.PGBench, r)
			b.log.Printf("baseline: pgbench -c %d: %.0f tps, latency avg %.2f ms %s; cpu %s", c, r.TPS, r.LatencyAvgMs, r.Error, r.CPU)
		}
	}
	if b.cfg.wants("latency") && ctx.Err() == nil {
		secs := pacedSeconds(b.cfg.Quick)
		b.log.Printf("baseline: pgbench -R %d -c %d for %ds (one durable row per message at the latency runs' rate)", b.cfg.Rate, pacedClients, secs)
		logPrefix := filepath.Join(b.env.Dir, "pgbench-paced")
		bl.PGPaced = b.pgbenchArgs(ctx, script, pacedClients, secs, "-R", itoa(b.cfg.Rate), "-l", "--log-prefix", logPrefix)
		bl.PGPaced.Rate = b.cfg.Rate
		if lat, err := pgbenchLogLatency(logPrefix); err != nil {
			b.log.Printf("baseline: pgbench -R %d: no per-transaction latency: %v", b.cfg.Rate, err)
		} else {
			bl.PGPaced.Latency = &lat
		}
		b.log.Printf("baseline: pgbench -R %d: %.0f tps, Postgres %.3f ms CPU per row, latency %s %s", b.cfg.Rate, bl.PGPaced.TPS,
			bl.PGPaced.PostgresMsPerRow(), bl.PGPaced.Latency.Brief(), bl.PGPaced.Error)
	}
	bl.RedisXADD = b.redisBenchmark(ctx)
	b.log.Printf("baseline: redis-benchmark XADD: %.0f requests/s %s", bl.RedisXADD.RequestsPerS, bl.RedisXADD.Error)
	return bl
}

// pacedSeconds is how long the paced baseline runs: long enough to meet the commit stalls of a
// machine whose disk stalls fsync now and then (every 15–30 s on some), which are the floor of
// any durable p99.
func pacedSeconds(quick bool) int {
	if quick {
		return 4
	}
	return 30
}

// pgbenchLogLatency reads the per-transaction logs pgbench -l wrote under prefix (one file per
// thread: prefix.<pid> and prefix.<pid>.<n>) into a latency summary. Each line is "client
// transaction latency_us script epoch epoch_us [lag_us]"; with -R the latency counts from the
// transaction's scheduled start, as the latency runs count from a message's intended send time.
func pgbenchLogLatency(prefix string) (Summary, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil || len(files) == 0 {
		return Summary{}, fmt.Errorf("no log files %s.*: %v", prefix, err)
	}
	h := newHist()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return Summary{}, err
		}
		for line := range strings.Lines(string(data)) {
			fields := strings.Fields(line)
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				continue // "skipped" (only with --latency-limit)
			}
			h.Record(time.Duration(us) * time.Microsecond)
		}
	}
	sum := h.Summary(false)
	if sum.Count == 0 {
		return Summary{}, fmt.Errorf("no transactions in %s.*", prefix)
	}
	return sum, nil
}

var (
	tpsRe     = regexp.MustCompile(`tps = ([0-9.]+)`)
	pgLatRe   = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
	rpsRe     = regexp.MustCompile(`([0-9.]+) requests per second`)
	redisP50R = regexp.MustCompile(`p50=([0-9.]+) msec`)
)

func (b *Bench) pgbench(ctx context.Context, script string, clients, secs int) *PGBenchResult {
	return b.pgbenchArgs(ctx, script, clients, secs)
}

func (b *Bench) pgbenchArgs(ctx context.Context, script string, clients, secs int, extra ...string) *PGBenchResult {
	threads := min(2, clients)
	args := append([]string{"-n", "-c", itoa(clients), "-j", itoa(threads), "-T", itoa(secs)}, extra...)
	args = append(args, "-f", script, b.env.DBURL)
	r := &PGBenchResult{Clients: clients, DurationS: secs,
		Command: fmt.Sprintf("pgbench %s -f %s <bench db>", strings.Join(args[:len(args)-3], " "), filepath.Base(script))}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(secs+60)*time.Second)
	defer cancel()
	now := time.Now()
	cpuWait := b.cpuDuring(ctx, now.Add(time.Second), now.Add(time.Duration(secs)*time.Second-500*time.Millisecond))
	out, err := exec.CommandContext(cctx, "pgbench", args...).CombinedOutput()
	r.CPU = cpuWait()
	if m := tpsRe.FindSubmatch(out); m != nil {
		r.TPS, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := pgLatRe.FindSubmatch(out); m != nil {
		r.LatencyAvgMs, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if err != nil || r.TPS == 0 {
		r.Error = fmt.Sprintf("pgbench: %v: %s", err, tail(out, 500))
	}
	return r
}

func (b *Bench) redisBenchmark(ctx context.Context) *RedisBenchResult {
	n := 100000
	args := []string{"-h", "127.0.0.1", "-p", itoa(b.env.Redis.Port), "-q", "-n", itoa(n), "-c", "50", "XADD", "benchstream", "*", "f", "v"}
	r := &RedisBenchResult{Command: fmt.Sprintf("redis-benchmark -p <port> -q -n %d -c 50 XADD benchstream '*' f v", n)}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second) // it hangs, rather than fail, without a server
	defer cancel()
	out, err := exec.CommandContext(cctx, "redis-benchmark", args...).CombinedOutput()
	// With -q the progress lines end in \r; the last match is the final figure.
	if ms := rpsRe.FindAllSubmatch(out, -1); len(ms) > 0 {
		r.RequestsPerS, _ = strconv.ParseFloat(string(ms[len(ms)-1][1]), 64)
	}
	if ms := redisP50R.FindAllSubmatch(out, -1); len(ms) > 0 {
		r.P50Ms, _ = strconv.ParseFloat(string(ms[len(ms)-1][1]), 64)
	}
	if err != nil || r.RequestsPerS == 0 {
		r.Error = fmt.Sprintf("redis-benchmark: %v: %s", err, tail(out, 300))
	}
	_ = b.env.RDB.Del(ctx, "benchstream").Err()
	return r
}

// ThroughputResult is the closed-loop send rate at each concurrency.
type ThroughputResult struct {
	Runs []*ThroughputRun `json:"runs"`
	// Shape is pgbench running Nova's own send transaction, for where the gap to pgbench lies.
	Shape *ShapeResult `json:"pgbench_nova_shape,omitempty"`
	Error string       `json:"error,omitempty"`
}

type ThroughputRun struct {
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"`
	Sends       int64   `json:"sends"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	SendsPerS   float64 `json:"sends_per_s"`
	Latency     Summary `json:"latency"`
	CPU         CPUUse  `json:"cpu_cores"`
	// Consumer groups on the fan-out stream right after the run: entries not yet handled
	// (lag + pending) and how long they took to drain.
	GroupBacklog int64    `json:"group_backlog_after"`
	GroupDrainS  float64  `json:"group_drain_s"`
	Profiles     []string `json:"cpu_profiles,omitempty"`
	// Locked sends committed in group transactions over the whole run, warm-up included, over
	// the nodes (from their nova_send_group* counters; 0 when a scrape failed or the build has
	// none).
	GroupedWrites int64 `json:"grouped_writes"`
	SendGroups    int64 `json:"send_groups"`
}

// sendGroups sums the nodes' group-commit counters: writes committed in groups, and groups; ok
// is false when a node did not show both (a build without them, or a failed scrape).
func (b *Bench) sendGroups() (writes, groups int64, ok bool) {
	return b.sumCounters("nova_send_group_writes_total", "nova_send_groups_total")
}

// sendBatches sums the nodes' counters of one-statement sends committed in batches, and batches.
func (b *Bench) sendBatches() (posts, batches int64, ok bool) {
	return b.sumCounters("nova_send_batch_posts_total", "nova_send_batches_total")
}

// sumCounters sums two counters over the nodes; ok is false when a node did not show both (a
// build without them, or a failed scrape).
func (b *Bench) sumCounters(name1, name2 string) (sum1, sum2 int64, ok bool) {
	sums, ok := sumMetrics(b.env.Nodes, name1, name2)
	if !ok {
		return 0, 0, false
	}
	return int64(sums[0]), int64(sums[1]), true
}

// sumMetrics sums each named sample over the nodes, in the order of names; ok is false when a
// node did not show every one of them (a build without them, or a failed scrape).
func sumMetrics(nodes []*Node, names ...string) (sums []float64, ok bool) {
	sums = make([]float64, len(names))
	for _, node := range nodes {
		m := scrapeMetrics(node.AdminURL, names...)
		for i, name := range names {
			v, found := m[name]
			if !found {
				return nil, false
			}
			sums[i] += v
		}
	}
	return sums, true
}

// Best is the run with the most sends per second.
func (t *ThroughputResult) Best() *ThroughputRun {
	var best *ThroughputRun
	for _, r := range t.Runs {
		if best == nil || r.SendsPerS > best.SendsPerS {
			best = r
		}
	}
	return best
}

// runThroughput: C closed-loop HTTP senders spread over all nodes and 100 conversations.
func (b *Bench) runThroughput(ctx context.Context) *ThroughputResult {
	res := &ThroughputResult{}
	nodes := b.env.Nodes
	n := b.cfg.Conversations
	senders, receivers := b.api.NewUsers(n), b.api.NewUsers(n)
	convs := make([]string, n)
	if err := parallel(ctx, n, 16, func(i int) error {
		var err error
		convs[i], err = b.api.CreateConversation(ctx, nodes[i%len(nodes)].URL, senders[i], []string{receivers[i].ID})
		return err
	}); err != nil {
		res.Error = "create conversations: " + err.Error()
		return res
	}
	for _, c := range b.cfg.Concurrency {
		if ctx.Err() != nil {
			break
		}
		res.Runs = append(res.Runs, b.throughputRun(ctx, c, senders, convs))
	}
	if ctx.Err() == nil {
		// 16 clients: the nodes hold their pools meanwhile, and 64 more would pass max_connections.
		b.drainGroups(ctx, 60*time.Second)
		res.Shape = b.runShape(ctx, 16, !b.cfg.Quick)
		// The one-row baseline once more, next to the nova runs in time: the machine is shared,
		// and the table's ratio takes the best one-row figure of the run.
		if bl := b.res.Baselines; bl != nil && !b.cfg.Quick && ctx.Err() == nil {
			secs := int(b.cfg.ThroughputDur / time.Second)
			b.log.Printf("baseline: pgbench -c 16 -j 2 -T %d again, after the nova runs", secs)
			r := b.pgbench(ctx, filepath.Join(b.env.Dir, "insert.sql"), 16, secs)
			r.When = "after the nova runs"
			bl.PGBench = append(bl.PGBench, r)
			b.log.Printf("baseline: pgbench -c 16: %.0f tps, latency avg %.2f ms %s; cpu %s", r.TPS, r.LatencyAvgMs, r.Error, r.CPU)
		}
	}
	return res
}

func (b *Bench) throughputRun(ctx context.Context, conc int, senders []User, convs []string) *ThroughputRun {
	nodes := b.env.Nodes
	dur := b.cfg.ThroughputDur
	warm := time.Second
	r := &ThroughputRun{Concurrency: conc, DurationS: dur.Seconds()}
	hist := newHist()
	var sends, errs, total atomic.Int64
	var firstErr atomic.Value
	writes0, groups0, scraped0 := b.sendGroups()
	start := time.Now()
	winStart, winEnd := start.Add(warm), start.Add(warm+dur)
	name := fmt.Sprintf("throughput C=%d", conc)
	if b.cfg.Profile {
		for _, node := range nodes {
			r.Profiles = append(r.Profiles, b.captureProfile(ctx, node, int(dur/time.Second)-1, warm, fmt.Sprintf("throughput-c%d", conc)))
		}
	}
	stop := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("%s: %4.1fs/%.0fs  sends=%d errors=%d", name, time.Since(start).Seconds(), (warm + dur).Seconds(), total.Load(), errs.Load())
	})
	defer stop()
	runID := randomHex(4)
	cpuWait := b.cpuDuring(ctx, winStart, winEnd)
	var wg sync.WaitGroup
	for j := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := nodes[j%len(nodes)]
			rng := rand.New(rand.NewPCG(uint64(j), uint64(time.Now().UnixNano())))
			for i := 0; ; i++ {
				t0 := time.Now()
				if !t0.Before(winEnd) || ctx.Err() != nil {
					return
				}
				c := rng.IntN(len(convs))
				body := `{"t":` + strconv.FormatInt(t0.UnixNano(), 10) + `,"k":` + strconv.Itoa(i) + `,"text":"novabench throughput probe"}`
				_, err := b.api.Send(ctx, node.URL, senders[c], convs[c], fmt.Sprintf("%s-%d-%d", runID, j, i), []byte(body))
				t1 := time.Now()
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				total.Add(1)
				if !t0.Before(winStart) && t1.Before(winEnd) {
					sends.Add(1)
					hist.Record(t1.Sub(t0))
				}
			}
		}()
	}
	wg.Wait()
	r.CPU = cpuWait()
	stop()
	if writes1, groups1, scraped1 := b.sendGroups(); scraped0 && scraped1 {
		r.GroupedWrites, r.SendGroups = writes1-writes0, groups1-groups0
	}
	r.Sends, r.Errors = sends.Load(), errs.Load()
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	r.SendsPerS = float64(r.Sends) / dur.Seconds()
	r.Latency = hist.Summary(false)
	b.log.Printf("%s: %.0f sends/s, latency p50=%.2fms p99=%.2fms, errors=%d", name, r.SendsPerS, r.Latency.P50, r.Latency.P99, r.Errors)
	b.log.Printf("%s: cpu %s", name, r.CPU)
	r.GroupBacklog, r.GroupDrainS = b.drainGroups(ctx, 60*time.Second)
	if r.GroupBacklog > 0 {
		b.log.Printf("%s: consumer groups were %d entries behind at the end; drained in %.1fs", name, r.GroupBacklog, r.GroupDrainS)
	}
	return r
}

// groupBacklog is how many fan-out entries the consumer groups have not yet handled, over
// every fan-out stream (partition) of the nodes running now.
func (b *Bench) groupBacklog(ctx context.Context) int64 {
	client, streams := b.env.fanoutStreams()
	var n int64
	for _, key := range streams {
		n += streamBacklog(ctx, client, key)
	}
	return n
}

// streamBacklog is how many entries of the stream key its consumer groups have not yet handled.
func streamBacklog(ctx context.Context, client redis.UniversalClient, key string) int64 {
	groups, err := client.XInfoGroups(ctx, key).Result()
	if err != nil {
		return 0
	}
	var added int64 = -1
	var n int64
	for _, g := range groups {
		lag := g.Lag
		if lag < 0 { // Redis cannot say after trimming; entries added minus entries read is the same count
			if added < 0 {
				if info, err := client.XInfoStream(ctx, key).Result(); err == nil {
					added = info.EntriesAdded
				}
			}
			lag = max(0, added-g.EntriesRead)
		}
		n += lag + g.Pending
	}
	return n
}

// drainGroups waits until the consumer groups have caught up; it returns the backlog found
// at the start and the seconds it took to drain (or the limit).
func (b *Bench) drainGroups(ctx context.Context, limit time.Duration) (int64, float64) {
	start := time.Now()
	first := b.groupBacklog(ctx)
	for n := first; n > 0 && time.Since(start) < limit; n = b.groupBacklog(ctx) {
		if ctxsleep.Sleep(ctx, 50*time.Millisecond) != nil {
			break
		}
	}
	return first, time.Since(start).Seconds()
}
