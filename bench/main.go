// Command novabench (module github.com/nova-chat/nova/bench) is Nova's benchmark suite (issue 6):
// with internal/testinfra it starts a private Postgres database,
// a private redis-server and N `nova serve` processes, drives them over HTTP and WebSocket,
// measures each DESIGN.md performance target next to a baseline taken in the same run
// (pgbench, redis-benchmark, raw reads), and writes a table, a JSON file and SVG charts.
//
//	cd bench && go run . [-quick] [-instances 3] [-out artifacts/bench] [-shapes per-conv,one-conn] [-instance-counts 1,2,4] [-topologies single,cluster]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nova-chat/nova/internal/testinfra"
)

// Config is what a run does and at which size.
type Config struct {
	Quick         bool
	Instances     int
	Out           string
	Rate          int
	Conversations int
	Profile       bool
	SendToLeader  bool
	// RedisNice is the nice value of the bench's redis-servers (0: as started); both systems
	// use the same Redis.
	RedisNice int
	QuietWait time.Duration // how long to wait for a quiet machine before the first measurement
	NovaRef   string
	NovaBin   string
	Only      []string
	// Centrifugo runs the same-run comparison (scenario "centrifugo").
	Centrifugo bool
	// Shapes are the load shapes of the latency scenario, run on Nova (scenario "latency")
	// and on Centrifugo (scenario "centrifugo") alike; the first is novaLatencyShape, the
	// main latency run. ShapeMeasure is the window of the other shapes (both systems).
	Shapes       []loadShape
	ShapeMeasure time.Duration
	// InstanceCounts are the node counts of the "instances" scenario (sends to n1,
	// subscribers on n2 only), each measured for InstancesMeasure after a warm-up.
	InstanceCounts   []int
	InstancesMeasure time.Duration
	// Topologies are the Redis topologies the instances scenario runs every count on.
	Topologies []redisTopology

	LatencyWarmup  time.Duration
	LatencyMeasure time.Duration
	SweepRates     []int // more offered rates for the throughput-vs-offered-load curve
	SweepMeasure   time.Duration
	ThroughputDur  time.Duration
	Concurrency    []int
	BigSize        int
	BigSends       int
	BacklogN       int
	BacklogReps    int
	MemConns       int
	ABMeasure      time.Duration
	ABRounds       int
	ABLowRate      int // full mode: the A/B again at a rate that leaves the machine headroom
	ABLowMeasure   time.Duration
}

func (c Config) wants(scenario string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, scenario)
}

var scenarioNames = []string{"baseline", "latency", "sweep", "throughput", "bigconv", "backlog", "memory", "ab", "centrifugo", "instances"}

// Bench is one run: its configuration, infrastructure, client and results.
type Bench struct {
	cfg Config
	env *Env
	api *API
	log *Progress
	res *Results
	cf  *cfCluster // Centrifugo nodes while they run (cpu.go counts them)
}

func main() { os.Exit(run()) }

func run() int {
	var cfg Config
	var only, shapeList, cfShapes, counts, topologies string
	flag.BoolVar(&cfg.Quick, "quick", false, "small sizes, under 2 minutes in all")
	flag.IntVar(&cfg.Instances, "instances", 2, "nova serve processes to start (DESIGN.md's latency targets are for two)")
	flag.StringVar(&cfg.Out, "out", "artifacts/bench", "folder for report.txt, results.json, *.svg and logs")
	flag.IntVar(&cfg.Rate, "rate", 1000, "offered send rate of the latency run, messages/s")
	flag.IntVar(&cfg.Conversations, "conversations", 100, "conversations of the latency and throughput runs")
	flag.BoolVar(&cfg.Profile, "profile", false, "save CPU profiles of the nodes during the latency and throughput runs")
	flag.IntVar(&cfg.RedisNice, "redis-nice", 0, "run the bench's redis-servers at this nice value, -20..19 (e.g. -10: ahead of the nodes, Postgres and the load generator on shared cores, as if Redis had a core of its own; Nova and Centrifugo use the same Redis; a negative value needs root or CAP_SYS_NICE)")
	flag.DurationVar(&cfg.QuietWait, "quiet-wait", 5*time.Minute, "before the first measurement, wait up to this long until work other than the bench's uses under 0.2 cores (0: check once, do not wait; -quick: 30s unless given); the report says what it found")
	flag.BoolVar(&cfg.SendToLeader, "send-to-leader", false, "latency runs send to the outbox relay leader (default: to a node that does not lead)")
	flag.StringVar(&cfg.NovaRef, "nova-ref", "", "build nova from this git revision (git archive) instead of the working tree")
	flag.StringVar(&cfg.NovaBin, "nova-bin", "", "use this prebuilt nova binary instead of building one")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run: "+strings.Join(scenarioNames, ","))
	flag.BoolVar(&cfg.Centrifugo, "centrifugo", true, "measure Centrifugo v"+centrifugoVersion+" (2 nodes, Redis engine, history) with the latency workload in the same run; installs it into .data/bin with go install if needed")
	flag.StringVar(&shapeList, "shapes", "", "comma-separated load shapes of the latency runs, on Nova and on Centrifugo alike: per-conv|one-conn[+senders=N][+idle=N]; per-conv (the main latency run) is always included (default: per-conv,one-conn in -quick mode; per-conv,one-conn,per-conv+senders=1,per-conv+senders=16,per-conv+idle=10000 in full mode)")
	flag.StringVar(&cfShapes, "centrifugo-shapes", "", "old name of -shapes (used if -shapes is not given)")
	flag.StringVar(&counts, "instance-counts", "1,2,4", "node counts of the \"instances\" scenario (HTTP sends to n1, subscribers on n2 only)")
	flag.StringVar(&topologies, "topologies", "", "comma-separated Redis topologies the \"instances\" scenario runs every count on: single (the private redis-server, NOVA_FANOUT_PARTITIONS=1, Nova's defaults), single-all (the same with NOVA_GROUP_READERS=all) and cluster (a private Redis Cluster of 3 masters with a replica each, 6 redis-servers, NOVA_FANOUT_PARTITIONS=8; needs redis-cli) (default: single,single-all,cluster in full and in -quick mode)")
	flag.Parse()
	if cfg.RedisNice < -20 || cfg.RedisNice > 19 {
		fmt.Fprintln(os.Stderr, "novabench: -redis-nice must be -20..19")
		return 2
	}
	if cfg.Instances < 1 || cfg.Rate < 1 || cfg.Conversations < 1 {
		fmt.Fprintln(os.Stderr, "novabench: -instances, -rate and -conversations must be positive")
		return 2
	}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(scenarioNames, s) {
			fmt.Fprintf(os.Stderr, "novabench: unknown scenario %q (have %s)\n", s, strings.Join(scenarioNames, ","))
			return 2
		}
		cfg.Only = append(cfg.Only, s)
	}
	if shapeList == "" {
		shapeList = cfShapes
	}
	shapes, err := parseShapes(shapeList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "novabench: -shapes:", err)
		return 2
	}
	if cfg.InstanceCounts, err = parseCounts(counts); err != nil {
		fmt.Fprintln(os.Stderr, "novabench: -instance-counts:", err)
		return 2
	}
	if cfg.Topologies, err = parseTopologies(topologies); err != nil {
		fmt.Fprintln(os.Stderr, "novabench: -topologies:", err)
		return 2
	}
	sizes(&cfg)
	if cfg.Quick && !flagGiven("quiet-wait") {
		cfg.QuietWait = quickQuietWait // a smoke run: its figures are not the ones to compare
	}
	if len(cfg.Topologies) == 0 {
		cfg.Topologies = defaultTopologies()
	}
	if len(shapes) == 0 {
		shapes = defaultShapes(cfg.Quick)
	}
	cfg.Shapes = withMainShape(shapes)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }() // a second Ctrl-C ends the process at once

	log := &Progress{w: os.Stderr, start: time.Now()}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "novabench:", err)
		return 1
	}
	// Outputs of an earlier run in the same folder would mix with this one's.
	for _, pattern := range []string{"*.svg", "*.pprof", "report.txt", "results.json", "logs/*.log"} {
		old, _ := filepath.Glob(filepath.Join(cfg.Out, pattern))
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	b := &Bench{cfg: cfg, api: newAPI(), log: log, res: newResults(cfg)}
	code := b.run(ctx)
	if ctx.Err() != nil {
		log.Printf("interrupted: cleaned up")
		return 130
	}
	return code
}

// sizes sets the scenario sizes of the quick and the full mode.
func sizes(c *Config) {
	if c.Quick {
		c.LatencyWarmup, c.LatencyMeasure = 2*time.Second, 10*time.Second
		c.ShapeMeasure, c.InstancesMeasure = 5*time.Second, 5*time.Second
		c.SweepRates, c.SweepMeasure = nil, 0
		c.ThroughputDur, c.Concurrency = 5*time.Second, []int{16, 64}
		c.BigSize, c.BigSends = 100_000, 300
		c.BacklogN, c.BacklogReps = 5_000, 3 // one conversation takes ~500 sends/s: 10,000 would be 20 s
		c.MemConns = 2_000
		c.ABMeasure, c.ABRounds = 5*time.Second, 1
		return
	}
	c.LatencyWarmup, c.LatencyMeasure = 2*time.Second, 30*time.Second
	c.ShapeMeasure, c.InstancesMeasure = 15*time.Second, 15*time.Second
	c.SweepRates, c.SweepMeasure = []int{250, 500, 2000}, 10*time.Second
	c.ThroughputDur, c.Concurrency = 15*time.Second, []int{16, 64}
	c.BigSize, c.BigSends = 100_000, 2000
	c.BacklogN, c.BacklogReps = 10_000, 3
	c.MemConns = 10_000
	c.ABMeasure, c.ABRounds = 15*time.Second, 2
	c.ABLowRate, c.ABLowMeasure = 250, 6*time.Second
}

func (b *Bench) run(ctx context.Context) int {
	start := time.Now()
	env, err := newEnv(filepath.Join(b.cfg.Out, "logs"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "novabench:", err)
		return 1
	}
	b.env = env
	env.RedisNice = b.cfg.RedisNice
	defer func() {
		b.log.Printf("cleaning up: stopping nodes and redis-server, dropping database %s", env.DBName)
		env.Close()
	}()
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(os.Stderr, "novabench: panic: %v\n", p)
			panic(p) // after the deferred cleanup above has run
		}
	}()
	if err := b.setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "novabench: setup:", err)
		return 1
	}
	b.scenarios(ctx)
	b.res.DurationS = time.Since(start).Seconds()
	b.collectServerFacts(ctx)
	if err := b.writeOutputs(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "novabench: write outputs:", err)
		return 1
	}
	if b.res.failed() {
		return 1
	}
	return 0
}

func (b *Bench) setup(ctx context.Context) error {
	lim, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	b.res.Machine.NoFile = lim
	tools := []string{"go", "redis-server", "redis-benchmark", "pgbench"}
	if b.cfg.wants("instances") && slices.Contains(b.cfg.Topologies, clusterTopology) {
		tools = append(tools, "redis-cli") // redis-cli --cluster create joins the cluster
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not on PATH (make bench puts PostgreSQL's bin folder on it; redis-benchmark and redis-cli come with redis-tools)", tool)
		}
	}
	mode := "full"
	if b.cfg.Quick {
		mode = "quick"
	}
	b.log.Printf("novabench %s mode: %d instances, %d CPUs, RLIMIT_NOFILE %d, out %s", mode, b.cfg.Instances, runtime.NumCPU(), lim, b.cfg.Out)
	built := make(chan error, 1)
	go func() { built <- b.env.BuildNova(ctx, b.cfg.NovaRef, b.cfg.NovaBin) }()
	cfReady := make(chan *CentrifugoResult, 1)
	if b.cfg.Centrifugo && b.cfg.wants("centrifugo") {
		go func() { cfReady <- b.prepareCentrifugo(ctx) }()
	} else {
		cfReady <- nil
	}
	if err := b.env.CreateDatabase(ctx); err != nil {
		return err
	}
	b.log.Printf("database %s created on %s", b.env.DBName, testinfra.Redacted(b.env.AdminURL))
	if err := b.env.StartRedis(ctx); err != nil {
		return err
	}
	b.log.Printf("redis-server on port %d (no persistence; production runs AOF)%s", b.env.Redis.Port, niceNote(b.cfg.RedisNice))
	if err := <-built; err != nil {
		return err
	}
	b.res.Centrifugo = <-cfReady // its build would disturb every measurement: wait for it here
	switch {
	case b.cfg.NovaBin != "":
		b.log.Printf("nova: using %s", b.env.NovaBin)
	case b.cfg.NovaRef != "":
		b.log.Printf("nova built from git revision %s", b.cfg.NovaRef)
	default:
		b.log.Printf("nova built from the working tree")
	}
	b.env.Settings = map[string]string{
		"NOVA_STREAM_MAXLEN":      "20000",
		"NOVA_MAX_CONNS_PER_USER": "100000",
	}
	b.collectMachineFacts(ctx)
	return nil
}

// scenarios runs what was asked, in an order that keeps the measurements apart: the baselines
// first (Postgres to itself, no nova connections holding slots), then the nova runs, then the
// A/B runs on restarted nodes.
func (b *Bench) scenarios(ctx context.Context) {
	quiet := b.waitQuiet(ctx, b.cfg.QuietWait)
	b.res.Quiet = &quiet
	if ctx.Err() != nil {
		return
	}
	if b.cfg.wants("baseline") || b.cfg.wants("throughput") || b.cfg.wants("latency") {
		b.res.Baselines = b.runBaselines(ctx)
	}
	if ctx.Err() != nil {
		return
	}
	if err := b.startNodes(ctx, "interest"); err != nil {
		b.res.Errors = append(b.res.Errors, "start nodes: "+err.Error())
		b.log.Printf("start nodes: %v", err)
		return
	}
	idle := 3 * time.Second
	b.log.Printf("measuring the idle nodes' CPU for %s", idle)
	now := time.Now()
	b.res.IdleCPU = b.cpuDuring(ctx, now, now.Add(idle))()
	b.log.Printf("idle: cpu %s", b.res.IdleCPU)
	withCentrifugo := b.cfg.Centrifugo && b.cfg.wants("centrifugo")
	if b.cfg.wants("latency") {
		// Centrifugo runs each shape right after Nova ran it, with the same workload, so that a
		// machine whose speed drifts over minutes meets both alike
		var cf *cfShapes
		if withCentrifugo {
			cf = b.startCentrifugoShapes(ctx, b.res.Centrifugo)
		}
		b.res.Latency = b.runLatency(ctx, "latency@"+itoa(b.cfg.Rate), "interest", b.cfg.Rate, b.cfg.LatencyWarmup, b.cfg.LatencyMeasure, true)
		cf.run(ctx, novaLatencyShape)
		ok := b.runNovaShapes(ctx, cf) // the other load shapes, on the same nodes
		cf.stop()
		if !ok {
			return
		}
	} else if withCentrifugo && ctx.Err() == nil {
		b.runCentrifugo(ctx, b.res.Centrifugo)
	}
	if b.cfg.wants("sweep") {
		for _, rate := range b.cfg.SweepRates {
			if ctx.Err() != nil {
				return
			}
			b.vacuum(ctx)
			b.res.Sweep = append(b.res.Sweep, b.runLatency(ctx, "sweep@"+itoa(rate), "interest", rate, b.cfg.LatencyWarmup, b.cfg.SweepMeasure, false))
		}
	}
	steps := []struct {
		name string
		run  func(context.Context)
	}{
		{"throughput", func(ctx context.Context) { b.vacuum(ctx); b.res.Throughput = b.runThroughput(ctx) }},
		{"bigconv", func(ctx context.Context) { b.vacuum(ctx); b.res.BigConversation = b.runBigConversation(ctx) }},
		{"backlog", func(ctx context.Context) { b.vacuum(ctx); b.res.Backlog = b.runBacklog(ctx) }},
		{"memory", func(ctx context.Context) { b.res.Memory = b.runMemory(ctx) }},
		{"ab", b.runAB},
		{"instances", func(ctx context.Context) { b.res.InstanceRuns = b.runInstances(ctx) }}, // restarts the nodes per count and topology
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			return
		}
		if b.cfg.wants(s.name) {
			s.run(ctx)
		}
	}
}

// runAB runs the A/B of the live feeds on restarted nodes.
func (b *Bench) runAB(ctx context.Context) {
	// Rounds alternate the feeds (streams, pubsub, then pubsub, streams, ...) on freshly started
	// nodes, so that a drift in the machine's load does not favour one of them; each feed's
	// rounds are merged.
	b.res.AB = map[string]*LatencyResult{}
	parts := map[string][]*LatencyResult{}
	low := "@" + itoa(b.cfg.ABLowRate)
	for round := range b.cfg.ABRounds {
		feeds := []string{"fanout", "interest"}
		if round%2 == 1 {
			feeds = []string{"interest", "fanout"}
		}
		for _, feed := range feeds {
			if ctx.Err() != nil {
				return
			}
			b.log.Printf("A/B round %d/%d: restarting %d nodes with NOVA_LIVE_FEED=%s", round+1, b.cfg.ABRounds, b.cfg.Instances, feed)
			b.env.StopNodes()
			if err := b.startNodes(ctx, feed); err != nil {
				b.res.AB[feed] = &LatencyResult{Name: "ab-" + feed, Feed: feed, Error: err.Error()}
				return
			}
			b.vacuum(ctx)
			name := fmt.Sprintf("ab-%s@%d#%d", feed, b.cfg.Rate, round+1)
			parts[feed] = append(parts[feed], b.runLatency(ctx, name, feed, b.cfg.Rate, b.cfg.LatencyWarmup, b.cfg.ABMeasure, false))
			if b.cfg.ABLowRate > 0 && ctx.Err() == nil {
				name := fmt.Sprintf("ab-%s@%d#%d", feed, b.cfg.ABLowRate, round+1)
				parts[feed+low] = append(parts[feed+low], b.runLatency(ctx, name, feed, b.cfg.ABLowRate, b.cfg.LatencyWarmup, b.cfg.ABLowMeasure, false))
			}
		}
	}
	for key, ps := range parts {
		m := mergeLatency(ps)
		m.Name = "ab-" + key
		if !strings.Contains(key, "@") {
			m.Name += "@" + itoa(b.cfg.Rate)
		}
		b.res.AB[key] = m
	}
}

func (b *Bench) startNodes(ctx context.Context, feed string) error {
	return b.startNodesN(ctx, feed, b.cfg.Instances, nil)
}

// startNodesN starts n nodes with the live feed and the extra settings, and says where they listen.
func (b *Bench) startNodesN(ctx context.Context, feed string, n int, extra map[string]string) error {
	t := time.Now()
	settings := map[string]string{"NOVA_LIVE_FEED": feed}
	for k, v := range extra {
		settings[k] = v
	}
	if err := b.env.StartNodes(ctx, n, settings); err != nil {
		return err
	}
	var names []string
	for _, n := range b.env.Nodes {
		names = append(names, fmt.Sprintf("%s=%s (pid %d)", n.Name, strings.TrimPrefix(n.URL, "http://"), n.PID()))
	}
	redis := "the single redis-server"
	if b.env.Cluster != nil {
		redis = "the Redis Cluster"
	}
	b.log.Printf("%d nodes ready in %s, NOVA_LIVE_FEED=%s, on %s with NOVA_FANOUT_PARTITIONS=%d: %s", len(b.env.Nodes), time.Since(t).Round(time.Millisecond),
		feed, redis, b.env.partitions, strings.Join(names, ", "))
	return nil
}

// captureProfile fetches a CPU profile of node in the background, starting after delay, into
// <out>/cpu-<label>-<node>.pprof; it returns that path.
func (b *Bench) captureProfile(ctx context.Context, node *Node, seconds int, delay time.Duration, label string) string {
	label = strings.NewReplacer("@", "-", "/", "-").Replace(label)
	path := filepath.Join(b.cfg.Out, fmt.Sprintf("cpu-%s-%s.pprof", label, node.Name))
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", node.AdminURL, seconds), nil)
		if err != nil {
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.log.Printf("profile %s: %v", node.Name, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}()
	return path
}

func itoa(n int) string { return fmt.Sprint(n) }

// vacuum does what autovacuum would between scenarios (it is off on the shared test server):
// the outbox churns a row per message, and the planner needs statistics of the seeded tables.
func (b *Bench) vacuum(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	t := time.Now()
	if _, err := b.env.DB.Exec(ctx, `VACUUM (ANALYZE) outbox, conversations, messages, events, conversation_members`); err != nil {
		b.log.Printf("vacuum: %v", err)
		return
	}
	if d := time.Since(t); d > 500*time.Millisecond {
		b.log.Printf("vacuum analyze took %s", d.Round(time.Millisecond))
	}
}
