package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Results is everything a run measured; results.json is this, indented.
type Results struct {
	Mode            string                    `json:"mode"`
	StartedAt       time.Time                 `json:"started_at"`
	DurationS       float64                   `json:"duration_s"`
	Instances       int                       `json:"instances"`
	Machine         MachineFacts              `json:"machine"`
	Quiet           *QuietCheck               `json:"quiet_before_start,omitempty"`
	Baselines       *Baselines                `json:"baselines,omitempty"`
	IdleCPU         CPUUse                    `json:"idle_cpu_cores"`
	Latency         *LatencyResult            `json:"latency,omitempty"`
	LatencyShapes   []*LatencyResult          `json:"latency_shapes,omitempty"` // the latency run's other load shapes
	Sweep           []*LatencyResult          `json:"offered_load_sweep,omitempty"`
	Throughput      *ThroughputResult         `json:"throughput,omitempty"`
	BigConversation *BigConvResult            `json:"big_conversation,omitempty"`
	Backlog         *BacklogResult            `json:"reconnect_backlog,omitempty"`
	Memory          *MemoryResult             `json:"memory,omitempty"`
	AB              map[string]*LatencyResult `json:"ab,omitempty"`
	Centrifugo      *CentrifugoResult         `json:"centrifugo,omitempty"`
	InstanceRuns    []*LatencyResult          `json:"instances_scenario,omitempty"` // 1, 2, 4 nodes: sends to n1, subscribers on n2; per topology
	Scaling         []ScalingRow              `json:"scaling,omitempty"`            // the instances scenario as the scaling table shows it
	Server          ServerFacts               `json:"server_after_run"`
	Table           []Row                     `json:"table"`
	Notes           []string                  `json:"notes"`
	Errors          []string                  `json:"errors,omitempty"`
}

type MachineFacts struct {
	CPUs            int               `json:"cpus"`
	CPUModel        string            `json:"cpu_model"`
	MemTotalKiB     int64             `json:"mem_total_kib"`
	Kernel          string            `json:"kernel"`
	GoVersion       string            `json:"go_version"`
	Postgres        string            `json:"postgres"`
	PGSettings      map[string]string `json:"postgres_settings"`
	PGOtherSessions int               `json:"postgres_other_sessions_at_start"`
	Redis           string            `json:"redis"`
	GitCommit       string            `json:"git_commit"`
	GitDirty        bool              `json:"git_dirty"`
	NovaSource      string            `json:"nova_source"`
	NoFile          uint64            `json:"rlimit_nofile"`
}

// ServerFacts are read once at the end of the run.
type ServerFacts struct {
	RedisUsedMemory   string `json:"redis_used_memory"`
	FanoutStreamLen   int64  `json:"fanout_stream_len"`
	RedisKeys         int64  `json:"redis_keys"`
	DatabaseSize      string `json:"database_size"`
	OutboxRowsPending int64  `json:"outbox_rows_pending"`
}

// Row is one line of the table.
type Row struct {
	Figure   string `json:"figure"`
	Measured string `json:"measured"`
	Target   string `json:"target"`
	Baseline string `json:"baseline"`
	Ratio    string `json:"ratio"`
	Verdict  string `json:"verdict"`
}

func newResults(cfg Config) *Results {
	mode := "full"
	if cfg.Quick {
		mode = "quick"
	}
	return &Results{Mode: mode, StartedAt: time.Now().UTC(), Instances: cfg.Instances}
}

// scenarioErrors lists what could not run, for the end of the report.
func (r *Results) scenarioErrors() []string {
	out := append([]string(nil), r.Errors...)
	add := func(name, err string) {
		if err != "" {
			out = append(out, name+": "+err)
		}
	}
	for _, l := range r.latencyRuns() {
		add(l.Name, l.Error)
	}
	for _, l := range r.AB {
		add(l.Name, l.Error)
	}
	if r.Throughput != nil {
		add("throughput", r.Throughput.Error)
		if r.Throughput.Shape != nil {
			add("pgbench Nova shape", r.Throughput.Shape.Error)
		}
	}
	if r.BigConversation != nil {
		add("big conversation", r.BigConversation.Error)
	}
	if r.Backlog != nil {
		add("reconnect backlog", r.Backlog.Error)
	}
	if r.Memory != nil {
		add("memory", r.Memory.Error)
	}
	return append(out, r.centrifugoErrors()...)
}

// latencyRuns are the latency results but the A/B's: main, shapes, sweep, instances.
func (r *Results) latencyRuns() []*LatencyResult {
	var out []*LatencyResult
	for _, l := range append(append(append([]*LatencyResult{r.Latency}, r.LatencyShapes...), r.Sweep...), r.InstanceRuns...) {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// failed reports whether a scenario could not run (a missed target is not a failure of the run).
func (r *Results) failed() bool {
	if len(r.Errors) > 0 || len(r.centrifugoErrors()) > 0 {
		return true
	}
	for _, l := range r.latencyRuns() {
		if l.Error != "" {
			return true
		}
	}
	for _, l := range r.AB {
		if l != nil && l.Error != "" {
			return true
		}
	}
	return r.Throughput != nil && r.Throughput.Error != "" || r.BigConversation != nil && r.BigConversation.Error != "" ||
		r.Backlog != nil && r.Backlog.Error != "" || r.Memory != nil && r.Memory.Error != ""
}

func (b *Bench) collectMachineFacts(ctx context.Context) {
	m := &b.res.Machine
	m.CPUs, m.GoVersion = runtime.NumCPU(), runtime.Version()
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				m.MemTotalKiB, _ = strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			}
		}
		f.Close()
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	_ = b.env.DB.QueryRow(ctx, `SHOW server_version`).Scan(&m.Postgres)
	m.PGSettings = map[string]string{}
	for _, s := range []string{"synchronous_commit", "fsync", "shared_buffers", "max_connections", "wal_level", "autovacuum"} {
		var v string
		if b.env.DB.QueryRow(ctx, "SHOW "+s).Scan(&v) == nil {
			m.PGSettings[s] = v
		}
	}
	_ = b.env.DB.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname <> $1`, b.env.DBName).Scan(&m.PGOtherSessions)
	if info, err := b.env.RDB.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m.Redis = v
			}
		}
	}
	rev := "HEAD"
	if b.cfg.NovaRef != "" {
		rev = b.cfg.NovaRef
	}
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", rev+"^{commit}").Output(); err == nil {
		m.GitCommit = strings.TrimSpace(string(out))
	}
	if b.cfg.NovaRef == "" && b.cfg.NovaBin == "" {
		if out, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
			m.GitDirty = len(strings.TrimSpace(string(out))) > 0
		}
	}
	m.NovaSource = "working tree"
	switch {
	case b.cfg.NovaBin != "":
		m.NovaSource, m.GitCommit = "binary "+b.cfg.NovaBin, ""
	case b.cfg.NovaRef != "":
		m.NovaSource = "git revision " + b.cfg.NovaRef
	}
}

func (b *Bench) collectServerFacts(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	s := &b.res.Server
	if info, err := b.env.RDB.Info(ctx, "memory").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory_human:"); ok {
				s.RedisUsedMemory = v
			}
		}
	}
	s.FanoutStreamLen, _ = b.env.RDB.XLen(ctx, "stream:fanout:all-conversations").Result()
	s.RedisKeys, _ = b.env.RDB.DBSize(ctx).Result()
	_ = b.env.DB.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database()))`).Scan(&s.DatabaseSize)
	_ = b.env.DB.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&s.OutboxRowsPending)
}

// ---------------------------------------------------------------------------------------------
// The table.

const (
	pass  = "PASS"
	miss  = "MISS"
	info  = "info"
	fail  = "ERROR"
	blank = "-"
)

func verdict(ok bool) string {
	if ok {
		return pass
	}
	return miss
}

func fms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func fx(v float64) string { return fmt.Sprintf("%.2fx", v) }

func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// buildTable is the report's table: one section per scenario, in the order they are read.
func (b *Bench) buildTable() []Row {
	var rows []Row
	for _, section := range []func() []Row{b.latencyRows, b.instancesRows, b.throughputRows, b.redisBaselineRows,
		b.bigConversationRows, b.backlogRows, b.memoryRows, b.abRows} {
		rows = append(rows, section()...)
	}
	return rows
}

// latencyRows are the commit baseline, the send-to-deliver figures and the load shapes.
func (b *Bench) latencyRows() []Row {
	r := b.res
	var rows []Row
	add := func(row Row) { rows = append(rows, row) }
	commit := 0.0
	if r.Baselines != nil && r.Baselines.PGCommit != nil && r.Baselines.PGCommit.Error == "" {
		commit = r.Baselines.PGCommit.LatencyAvgMs
		add(Row{"Postgres one-row commit (pgbench -c 1)", fms(commit), blank, "(baseline)", blank, info})
	}
	if p := b.durableFloor(); p != nil {
		m := fail
		if f := p.PostgresMsPerRow(); f > 0 {
			m = fmt.Sprintf("%.3f ms", f)
		}
		add(Row{fmt.Sprintf("Postgres CPU per one-row commit at %d/s (pgbench -R %d -c %d)", p.Rate, p.Rate, p.Clients), m, blank,
			"(baseline: the durable floor)", blank, info})
		if p.Latency != nil {
			add(Row{fmt.Sprintf("  its latency from scheduled start, p50 / p99 / max (%d s)", p.DurationS), p.Latency.Brief(), blank,
				"(baseline: the durable floor's tail)", blank, info})
		}
	}
	commitRatio := func(v float64) (string, string) {
		if commit <= 0 {
			return blank, blank
		}
		return fms(commit) + " commit", fmt.Sprintf("%.1f commits", v/commit)
	}

	if l := r.Latency; l != nil {
		name := fmt.Sprintf("send->deliver %%s, %d/s, %d conv, %s->%s", l.OfferedRate, l.Conversations, l.SenderNode, strings.Join(l.SubscriberNodes, "+"))
		switch {
		case l.Error != "":
			add(Row{fmt.Sprintf(name, "latency"), fail, "", "", "", fail})
		case l.Delivery.Count == 0:
			add(Row{fmt.Sprintf(name, "latency"), "nothing delivered", "<= 2 ms", blank, blank, miss})
			add(Row{"  messages lost (not delivered 5 s after the end)", fmt.Sprintf("%d of %d", l.Lost, l.SentOK), "0", blank, blank, miss})
		default:
			// Percentiles over what arrived say nothing good while messages are missing.
			complete := l.Lost == 0 && l.Skipped == 0
			bl, ra := commitRatio(l.Delivery.P50)
			add(Row{fmt.Sprintf(name, "p50"), fms(l.Delivery.P50), "<= 2 ms", bl, ra, verdict(complete && l.Delivery.P50 <= 2)})
			add(Row{fmt.Sprintf(name, "p90"), fms(l.Delivery.P90), blank, blank, blank, info})
			bl, ra = commitRatio(l.Delivery.P99)
			add(Row{fmt.Sprintf(name, "p99"), fms(l.Delivery.P99), "<= 10 ms", bl, ra, verdict(complete && l.Delivery.P99 <= 10)})
			add(Row{fmt.Sprintf(name, "max"), fms(l.Delivery.Max), blank, blank, blank, info})
			if p := b.durableFloor(); p != nil && p.Latency != nil && p.Latency.P99 > 0 {
				add(Row{"  p99 against one durable commit's p99 at the same rate", fms(l.Delivery.P99), blank,
					"pgbench " + fms(p.Latency.P99), fmt.Sprintf("%.2fx", l.Delivery.P99/p.Latency.P99), info})
			}
			add(Row{"  messages lost (not delivered 5 s after the end)", fmt.Sprintf("%d of %d", l.Lost, l.SentOK), "0", blank, blank,
				verdict(l.Lost == 0 && l.SendErrors == 0 && l.OrderViolations == 0)})
			if l.SendErrors > 0 || l.OrderViolations > 0 || l.Skipped > 0 {
				add(Row{"  send errors / order violations / sends skipped late", fmt.Sprintf("%d / %d / %d", l.SendErrors, l.OrderViolations, l.Skipped), "0 / 0 / 0", blank, blank, miss})
			}
			add(Row{"  HTTP send response p50 / p99 (from intended time)", fms(l.HTTP.P50) + " / " + fms(l.HTTP.P99), blank, blank, blank, info})
			if l.AfterAnswer.Count > 0 {
				add(Row{"  delivered after the 201 p50 / p99 (arrived before it)", afterAnswerCell(l.AfterAnswer, l.BeforeAnswer), blank, blank, blank, info})
			}
			if l.ServerSendMeanMs > 0 {
				add(Row{"  HTTP send, mean: at the client (from intended time) / inside the sender node", fms(l.HTTP.Mean) + " / " + fms(l.ServerSendMeanMs), blank, blank, blank, info})
			}
			if l.SendTxMeanMs > 0 {
				// what the time inside the node is mostly made of under load: Postgres's round trip
				add(Row{"    of which a send transaction's round trip, mean (commit included)", fms(l.SendTxMeanMs), blank, blank, blank, info})
			}
			add(Row{"  consumer groups behind at the end / drain time", fmt.Sprintf("%d / %.1f s", l.GroupBacklog, l.GroupDrainS), blank, blank, blank, info})
			if l.SendBatches > 0 {
				add(Row{"  sends committed in batches / mean batch", fmt.Sprintf("%d of %d / %.1f", l.BatchedPosts, l.SentOK,
					float64(l.BatchedPosts)/float64(l.SendBatches)), blank, blank, blank, info})
			}
			if l.LockedWrites != nil {
				add(Row{"  writes the locked way (a conversation another instance wrote in the last second)", fmt.Sprintf("%d of %d", *l.LockedWrites, l.SentOK), blank, blank, blank, info})
			}
		}
		rows = append(rows, b.shapeRows()...)
	}
	return rows
}

// throughputRows are the durable sends against pgbench, with what each send costs.
func (b *Bench) throughputRows() []Row {
	r := b.res
	var rows []Row
	add := func(row Row) { rows = append(rows, row) }
	if t := r.Throughput; t != nil {
		best := t.Best()
		var pg *PGBenchResult
		if r.Baselines != nil {
			pg = r.Baselines.BestPGBench()
		}
		switch {
		case t.Error != "" || best == nil:
			add(Row{"durable sends/s", fail, ">= 60% of pgbench", "", "", fail})
		default:
			var cs []string
			for _, run := range t.Runs {
				cs = append(cs, fmt.Sprintf("C=%d %s/s", run.Concurrency, thousands(run.SendsPerS)))
			}
			measured := fmt.Sprintf("%s/s (C=%d)", thousands(best.SendsPerS), best.Concurrency)
			fig := fmt.Sprintf("durable sends/s, %d nodes, closed loop (%s)", r.Instances, strings.Join(cs, ", "))
			if pg == nil {
				add(Row{fig, measured, ">= 60% of pgbench", "pgbench failed", blank, fail})
			} else {
				ratio := best.SendsPerS / pg.TPS
				add(Row{fig, measured, ">= 60% of pgbench", fmt.Sprintf("%s tps pgbench C=%d", thousands(pg.TPS), pg.Clients),
					fmt.Sprintf("%.0f%%", 100*ratio), verdict(ratio >= 0.6)})
			}
			add(Row{fmt.Sprintf("  send latency at C=%d p50 / p99", best.Concurrency), fms(best.Latency.P50) + " / " + fms(best.Latency.P99),
				blank, blank, blank, info})
			if best.SendsPerS > 0 && len(best.CPU) > 0 {
				per := func(u CPUUse, group string, rate float64) float64 { return cpuPerMessageMs(u, []string{group}, rate) }
				bl := blank
				if row := pg.PostgresMsPerRow(); row > 0 {
					bl = fmt.Sprintf("pgbench %.3f ms/row", row)
				}
				add(Row{fmt.Sprintf("  CPU per send at C=%d: nova / Postgres / Redis", best.Concurrency),
					fmt.Sprintf("%.2f / %.2f / %.2f ms", per(best.CPU, "nova", best.SendsPerS), per(best.CPU, pgBenchDB, best.SendsPerS),
						per(best.CPU, "redis", best.SendsPerS)), blank, bl, blank, info})
			}
			for _, run := range t.Runs {
				if run.SendGroups > 0 {
					add(Row{fmt.Sprintf("  locked sends at C=%d committed in groups (whole run): writes / groups (mean)", run.Concurrency),
						fmt.Sprintf("%s / %s (%.1f)", thousands(float64(run.GroupedWrites)), thousands(float64(run.SendGroups)),
							float64(run.GroupedWrites)/float64(run.SendGroups)), blank, blank, blank, info})
				}
			}
			for _, run := range t.Runs {
				add(Row{fmt.Sprintf("  consumer groups behind after C=%d / drain time", run.Concurrency),
					fmt.Sprintf("%s / %.1f s", thousands(float64(run.GroupBacklog)), run.GroupDrainS), blank, blank, blank, info})
			}
			if best.Errors > 0 {
				add(Row{"  send errors", strconv.FormatInt(best.Errors, 10), "0", blank, blank, miss})
			}
		}
		if sh := t.Shape; sh != nil {
			shapeRow := func(name string, p *PGBenchResult) {
				if p == nil {
					return
				}
				m, ratio := fail, blank
				if p.Error == "" {
					m = thousands(p.TPS) + " tps"
					if best != nil && p.TPS > 0 {
						ratio = fmt.Sprintf("Nova %.0f%%", 100*best.SendsPerS/p.TPS)
					}
				}
				add(Row{fmt.Sprintf("  pgbench, %s, C=%d", name, p.Clients), m, blank, "(baseline)", ratio, info})
			}
			if sh.Error != "" {
				add(Row{"  pgbench, Nova's send transaction", fail, blank, sh.Error, blank, fail})
			}
			shapeRow("Nova's send transaction (4 round trips)", sh.Tx)
			shapeRow("same rows in one statement (1 round trip)", sh.OneStatement)
		}
		if r.Baselines != nil {
			for _, p := range r.Baselines.PGBench {
				m := thousands(p.TPS) + " tps"
				if p.Error != "" {
					m = fail
				}
				add(Row{fmt.Sprintf("  pgbench one row per tx, C=%d, %s", p.Clients, p.When), m, blank, "(baseline)", blank, info})
			}
		}
	}
	return rows
}

// redisBaselineRows is redis-benchmark's XADD rate, for scale.
func (b *Bench) redisBaselineRows() []Row {
	r := b.res
	var rows []Row
	add := func(row Row) { rows = append(rows, row) }
	if r.Baselines != nil && r.Baselines.RedisXADD != nil {
		x := r.Baselines.RedisXADD
		m := thousands(x.RequestsPerS) + " req/s"
		if x.Error != "" {
			m = fail
		}
		add(Row{"  redis-benchmark XADD, -c 50", m, blank, "(baseline)", blank, info})
	}
	return rows
}

// bigConversationRows compare sends into a 100,000-message conversation with a new one.
func (b *Bench) bigConversationRows() []Row {
	r := b.res
	var rows []Row
	add := func(row Row) { rows = append(rows, row) }
	if g := r.BigConversation; g != nil {
		fig := fmt.Sprintf("send p50 at a %s-message conversation", thousands(float64(g.Messages)))
		if g.Error != "" {
			add(Row{fig, fail, "<= 1.2x new", "", "", fail})
		} else {
			add(Row{fig, fms(g.Big.P50), "<= 1.2x new", fms(g.Fresh.P50) + " new conv", fx(g.RatioP50), verdict(g.RatioP50 <= 1.2)})
			add(Row{"  same, p99", fms(g.Big.P99), blank, fms(g.Fresh.P99) + " new conv", fx(g.RatioP99), info})
			if t := r.Throughput; t != nil && t.Shape != nil && t.Shape.Serial != nil && t.Shape.Serial.Error == "" {
				pg := t.Shape.Serial.LatencyAvgMs
				add(Row{"  one send at a time into a new conversation, p50 (HTTP)", fms(g.Fresh.P50), blank,
					fms(pg) + " its SQL in pgbench", fx(g.Fresh.P50 / pg), info})
			}
		}
	}
	return rows
}

// backlogRows are the reconnect catch-up times from Redis and from Postgres.
func (b *Bench) backlogRows() []Row {
	r := b.res
	var rows []Row
	add := func(row Row) { rows = append(rows, row) }
	if k := r.Backlog; k != nil {
		figR := fmt.Sprintf("reconnect: %s missed msgs from Redis (median of %d)", thousands(float64(k.Messages)), len(k.RedisMs))
		figP := fmt.Sprintf("reconnect: %s missed msgs from Postgres (median of %d)", thousands(float64(k.Messages)), len(k.PostgresMs))
		if k.Error != "" {
			add(Row{"reconnect backlog", fail, "", "", "", fail})
		} else {
			// The targets are for 10,000 messages; a smaller run is held to them pro rata.
			scale := float64(k.Messages) / 10000
			tr, tp := 300*scale, 1000*scale
			label := func(t, full float64) string {
				if scale == 1 {
					return fmt.Sprintf("<= %.0f ms", t)
				}
				return fmt.Sprintf("<= %.0f ms (%.0f pro rata)", t, full)
			}
			add(Row{figR, fms(k.RedisMed), label(tr, 300), fms(k.RawXRangeMs) + " raw XRANGE", fx(k.RedisMed / k.RawXRangeMs), verdict(k.RedisMed <= tr)})
			add(Row{figP, fms(k.PGMed), label(tp, 1000), fms(k.RawSelectMs) + " raw SELECT", fx(k.PGMed / k.RawSelectMs), verdict(k.PGMed <= tp)})
			add(Row{"  sends/s into one conversation (filling it, 32 senders)", fmt.Sprintf("%.0f/s", k.FillPerS), blank, blank, blank, info})
		}
	}
	return rows
}

// memoryRows is the resident memory per idle subscribed connection.
func (b *Bench) memoryRows() []Row {
	r := b.res
	var rows []Row
	add := func(row Row) { rows = append(rows, row) }
	if m := r.Memory; m != nil {
		fig := fmt.Sprintf("RSS per idle subscribed WebSocket (%s conns, %s)", thousands(float64(m.Conns)), m.Node)
		if m.Error != "" {
			add(Row{fig, fail, "<= 25 KB", "", "", fail})
		} else {
			add(Row{fig, fmt.Sprintf("%.1f KiB", m.KiBPerConn), "<= 25 KB",
				fmt.Sprintf("%.0f MiB RSS idle", float64(m.RSSBeforeKiB)/1024), fx(m.KiBPerConn / 25), verdict(m.KiBPerConn <= 25)})
		}
	}
	return rows
}

// abRows compare the old fan-out reader with interest-based delivery.
func (b *Bench) abRows() []Row {
	r := b.res
	var rows []Row
	add := func(row Row) { rows = append(rows, row) }
	for _, suffix := range []string{"", "@" + itoa(b.cfg.ABLowRate)} {
		s, p := r.AB["fanout"+suffix], r.AB["interest"+suffix]
		if s == nil && p == nil {
			continue
		}
		if s == nil || p == nil || s.Error != "" || p.Error != "" {
			add(Row{"A/B fan-out reader vs interest-based" + suffix, fail, "", "", "", fail})
			continue
		}
		if s.Delivery.Count == 0 || p.Delivery.Count == 0 {
			add(Row{fmt.Sprintf("A/B %d/s: delivered fan-out / interest", s.OfferedRate),
				fmt.Sprintf("%d / %d of %d / %d", s.Received, p.Received, s.SentOK, p.SentOK), "all", blank, blank, miss})
			continue
		}
		how := fmt.Sprintf("%.0f s", s.MeasureS)
		if s.Rounds > 1 {
			how = fmt.Sprintf("%d rounds, %.0f s", s.Rounds, s.MeasureS)
		}
		fig := fmt.Sprintf("A/B %d/s (%s): fan-out reader %%s vs interest-based", s.OfferedRate, how)
		add(Row{fmt.Sprintf(fig, "p50"), fms(s.Delivery.P50), "<= 2 ms", fms(p.Delivery.P50) + " interest", fx(s.Delivery.P50 / p.Delivery.P50),
			verdict(s.Lost == 0 && s.Delivery.P50 <= 2) + "/" + verdict(p.Lost == 0 && p.Delivery.P50 <= 2)})
		add(Row{fmt.Sprintf(fig, "p99"), fms(s.Delivery.P99), "<= 10 ms", fms(p.Delivery.P99) + " interest", fx(s.Delivery.P99 / p.Delivery.P99),
			verdict(s.Lost == 0 && s.Delivery.P99 <= 10) + "/" + verdict(p.Lost == 0 && p.Delivery.P99 <= 10)})
		add(Row{fmt.Sprintf(fig, "max"), fms(s.Delivery.Max), blank, fms(p.Delivery.Max) + " interest", fx(s.Delivery.Max / p.Delivery.Max), info})
		add(Row{fmt.Sprintf("  A/B %d/s lost: fan-out / interest", s.OfferedRate), fmt.Sprintf("%d / %d", s.Lost, p.Lost), "0", blank, blank,
			verdict(s.Lost == 0 && p.Lost == 0)})
	}
	return rows
}

func formatTable(rows []Row) string {
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = []string{r.Figure, r.Measured, r.Target, r.Baseline, r.Ratio, r.Verdict}
	}
	return formatGrid([]string{"figure", "measured", "target", "baseline (same run)", "ratio", "verdict"}, cells)
}

func (b *Bench) sweepTable() string {
	runs := b.loadRuns()
	if len(runs) < 2 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("Offered load (open loop, NOVA_LIVE_FEED=interest):\n")
	fmt.Fprintf(&sb, "%9s | %12s | %12s | %9s | %9s | %9s | %9s | %6s\n", "offered/s", "completed/s", "delivered/s", "p50", "p90", "p99", "max", "lost")
	for _, l := range runs {
		if l.Error != "" {
			fmt.Fprintf(&sb, "%9d | ERROR %s\n", l.OfferedRate, l.Error)
			continue
		}
		fmt.Fprintf(&sb, "%9d | %12.0f | %12.0f | %9s | %9s | %9s | %9s | %6d\n", l.OfferedRate, l.SendRate, l.DeliveredRate,
			fms(l.Delivery.P50), fms(l.Delivery.P90), fms(l.Delivery.P99), fms(l.Delivery.Max), l.Lost)
	}
	return sb.String()
}

// cpuSection says who used the CPU during each measurement window (the machine is shared).
func (b *Bench) cpuSection() string {
	var lines []string
	add := func(name string, u CPUUse) {
		if len(u) > 0 {
			lines = append(lines, fmt.Sprintf("  %-22s %s", name, u))
		}
	}
	if bl := b.res.Baselines; bl != nil {
		for _, p := range bl.PGBench {
			if p.When == "before the nodes" {
				add(fmt.Sprintf("pgbench C=%d", p.Clients), p.CPU)
			}
		}
		if p := bl.PGPaced; p != nil {
			add(fmt.Sprintf("pgbench -R %d", p.Rate), p.CPU)
		}
	}
	add("idle nodes (no load)", b.res.IdleCPU)
	for _, l := range b.loadRuns() {
		add(l.Name, l.CPU)
	}
	if t := b.res.Throughput; t != nil {
		for _, r := range t.Runs {
			add(fmt.Sprintf("throughput C=%d", r.Concurrency), r.CPU)
		}
		if sh := t.Shape; sh != nil {
			if sh.Tx != nil {
				add(fmt.Sprintf("pgbench Nova tx C=%d", sh.Tx.Clients), sh.Tx.CPU)
			}
			if sh.OneStatement != nil {
				add("pgbench one statement", sh.OneStatement.CPU)
			}
		}
		if bl := b.res.Baselines; bl != nil {
			for _, p := range bl.PGBench {
				if p.When != "before the nodes" {
					add(fmt.Sprintf("pgbench C=%d again", p.Clients), p.CPU)
				}
			}
		}
	}
	for _, l := range b.res.LatencyShapes {
		add(l.Name, l.CPU)
	}
	for _, l := range b.centrifugoCPULines() {
		lines = append(lines, fmt.Sprintf("  %-22s %s", l[0], l[1]))
	}
	for _, l := range b.res.InstanceRuns {
		add(l.Name, l.CPU)
		if len(l.NodeCPU) > 0 {
			lines = append(lines, fmt.Sprintf("  %-22s by node: %s", "", formatNodeCPU(l.NodeCPU)))
		}
	}
	for _, feed := range []string{"fanout", "interest", "fanout@" + itoa(b.cfg.ABLowRate), "interest@" + itoa(b.cfg.ABLowRate)} {
		if l := b.res.AB[feed]; l != nil {
			add(l.Name, l.CPU)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "CPU use during each measurement (cores, averaged; \"rest\" is everything else on the machine; \"stolen by the hypervisor\" is time the host gave these cores to another VM while they had work (/proc/stat steal), counted apart from \"rest\" since 2026-12-02; \"runnable, waiting for a core\" is the time each group's threads were ready to run but had no core, summed over threads, from /proc schedstat; checkpoints are server-wide, a forced one stalls commits):\n" + strings.Join(lines, "\n") + "\n"
}

// loadRuns are the main latency run and the sweep, by offered rate.
func (b *Bench) loadRuns() []*LatencyResult {
	var runs []*LatencyResult
	if b.res.Latency != nil {
		runs = append(runs, b.res.Latency)
	}
	runs = append(runs, b.res.Sweep...)
	for i := 1; i < len(runs); i++ {
		for j := i; j > 0 && runs[j].OfferedRate < runs[j-1].OfferedRate; j-- {
			runs[j], runs[j-1] = runs[j-1], runs[j]
		}
	}
	return runs
}

func (b *Bench) notes() []string {
	r := b.res
	m := r.Machine
	n := []string{
		fmt.Sprintf("Machine: %d CPUs (%s), %.1f GiB RAM, Linux %s, %s.", m.CPUs, m.CPUModel, float64(m.MemTotalKiB)/(1<<20), m.Kernel, m.GoVersion),
		fmt.Sprintf("PostgreSQL %s (synchronous_commit=%s, fsync=%s, shared_buffers=%s, autovacuum=%s: the bench runs VACUUM ANALYZE between scenarios instead), shared with %d other client sessions at start; fresh database %s, dropped at the end.",
			m.Postgres, m.PGSettings["synchronous_commit"], m.PGSettings["fsync"], m.PGSettings["shared_buffers"], m.PGSettings["autovacuum"], m.PGOtherSessions, b.env.DBName),
		fmt.Sprintf("Redis %s, private, without persistence (--save \"\" --appendonly no, noeviction); production runs AOF, which adds a write per XADD.%s", m.Redis, niceNote(b.cfg.RedisNice)),
		fmt.Sprintf("Nova from the %s (commit %s%s): %d `nova serve` processes with NOVA_SEND_RATE=0, NOVA_STREAM_MAXLEN=20000, NOVA_MAX_CONNS_PER_USER=100000; the load generator runs on the same 2 cores.",
			m.NovaSource, orDash(m.GitCommit), map[bool]string{true: ", with uncommitted changes", false: ""}[m.GitDirty], r.Instances),
		"Latency is measured from each message's intended send time (open loop: one pacer thread releases each send at its time with nanosleep, for Nova and Centrifugo alike; \"sends started late by the load generator\" is its own share), so a stalled server cannot hide its queueing (no coordinated omission).",
		latencyNote(r.Latency),
	}
	if q := quietNote(r.Quiet); q != "" {
		n = append(n, q)
	}
	n = append(n,
		"Baselines are measured in the same run: pgbench (insert one message-like row per transaction into bench_messages, same columns and keys as messages) and redis-benchmark ran before the nodes started; raw XRANGE/SELECT read the same backlog the reconnect test replays.",
	)
	n = append(n, b.centrifugoNotes()...)
	n = append(n, b.shapeNotes()...)
	if r.Server.FanoutStreamLen > 0 {
		n = append(n, fmt.Sprintf("After the run: the fan-out stream holds %s entries, Redis uses %s, the database is %s, %d outbox rows pending.",
			thousands(float64(r.Server.FanoutStreamLen)), r.Server.RedisUsedMemory, r.Server.DatabaseSize, r.Server.OutboxRowsPending))
	}
	return n
}

func latencyNote(l *LatencyResult) string {
	if l == nil {
		return "Latency runs: sends go to one node, WebSocket subscribers sit on the others."
	}
	if l.SenderNode == l.RelayLeader {
		return fmt.Sprintf("Latency runs: HTTP sends go to %s, the outbox relay leader (-send-to-leader), one WebSocket subscriber per conversation on %s.",
			l.SenderNode, strings.Join(l.SubscriberNodes, ", "))
	}
	return fmt.Sprintf("Latency runs: HTTP sends go to %s, which is not the outbox relay leader (%s is; with %d nodes, %d of %d sends land on a non-leader), one WebSocket subscriber per conversation on %s.",
		l.SenderNode, orDash(l.RelayLeader), len(l.SubscriberNodes)+1, len(l.SubscriberNodes), len(l.SubscriberNodes)+1, strings.Join(l.SubscriberNodes, ", "))
}

func orDash(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (b *Bench) writeOutputs(stdout io.Writer) error {
	b.res.Table = b.buildTable()
	b.res.Scaling = b.scalingRows()
	b.res.Notes = b.notes()
	var sb strings.Builder
	fmt.Fprintf(&sb, "Nova benchmark, %s mode, %d instances, %s, %.0f s\n\n", b.res.Mode, b.res.Instances,
		b.res.StartedAt.Format(time.RFC3339), b.res.DurationS)
	sb.WriteString(formatTable(b.res.Table))
	if s := b.shapesSection(); s != "" {
		sb.WriteString("\n" + s)
	}
	if s := b.scalingSection(); s != "" {
		sb.WriteString("\n" + s)
	}
	if s := b.instancesSection(); s != "" {
		sb.WriteString("\n" + s)
	}
	if s := b.centrifugoSection(); s != "" {
		sb.WriteString("\n" + s)
	}
	if s := b.sweepTable(); s != "" {
		sb.WriteString("\n" + s)
	}
	if s := b.cpuSection(); s != "" {
		sb.WriteString("\n" + s)
	}
	sb.WriteString("\n")
	for _, n := range b.res.Notes {
		sb.WriteString("- " + n + "\n")
	}
	for _, e := range b.res.scenarioErrors() {
		sb.WriteString("ERROR: " + e + "\n")
	}
	charts, err := b.writeCharts()
	if err != nil {
		return err
	}
	if len(charts) > 0 {
		sb.WriteString("\nCharts: " + strings.Join(charts, ", ") + "\n")
	}
	report := sb.String()
	fmt.Fprint(stdout, "\n"+report)
	if err := os.WriteFile(filepath.Join(b.cfg.Out, "report.txt"), []byte(report), 0o644); err != nil {
		return err
	}
	data, err := json.MarshalIndent(b.res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.cfg.Out, "results.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	b.log.Printf("wrote %s, %s", filepath.Join(b.cfg.Out, "report.txt"), filepath.Join(b.cfg.Out, "results.json"))
	return nil
}

// niceNote says, for the report and the log, that the redis-servers ran at another nice value.
func niceNote(nice int) string {
	if nice == 0 {
		return ""
	}
	return fmt.Sprintf(" Every redis-server ran at nice %d (-redis-nice): ahead of the other processes on these cores, for both systems.", nice)
}
