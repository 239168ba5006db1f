package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The report's scaling table and charts: the instances scenario's runs by (topology, instances),
// with what a delivered message costs in CPU, process group by process group.

// ScalingRow is one (topology, instances) run of the instances scenario, as the scaling table
// shows it; results.json has them under "scaling".
type ScalingRow struct {
	Topology         string  `json:"redis_topology"`
	RedisServers     int     `json:"redis_servers"`
	FanoutPartitions int     `json:"fanout_partitions"`
	Instances        int     `json:"instances"`
	DeliveredPerS    float64 `json:"delivered_per_s"`
	P50Ms            float64 `json:"p50_ms"`
	P99Ms            float64 `json:"p99_ms"`
	Lost             int64   `json:"lost"`
	// CPU time per delivered message (ms): every server process, and by group: the nova
	// nodes together, the bench database's Postgres backends, every redis-server of the topology.
	CPUPerMsgMs      float64 `json:"cpu_ms_per_message"`
	NovaPerMsgMs     float64 `json:"nova_cpu_ms_per_message"`
	PostgresPerMsgMs float64 `json:"postgres_cpu_ms_per_message"`
	RedisPerMsgMs    float64 `json:"redis_cpu_ms_per_message"`
	// N1Cores is the CPU (cores) of n1, which takes every HTTP send; BusiestIdle* the node
	// without subscribers (nor sends) that used the most, if the run had one.
	N1Cores          float64 `json:"n1_cpu_cores"`
	BusiestIdleNode  string  `json:"busiest_node_without_subscribers,omitempty"`
	BusiestIdleCores float64 `json:"busiest_node_without_subscribers_cpu_cores,omitempty"`
	Error            string  `json:"error,omitempty"`
}

// scalingRow sums up one run of the instances scenario.
func scalingRow(l *LatencyResult) ScalingRow {
	r := ScalingRow{Topology: l.Topology, RedisServers: l.RedisServers, FanoutPartitions: l.FanoutPartitions, Instances: l.Nodes, Error: l.Error}
	if l.Error != "" {
		return r
	}
	r.DeliveredPerS, r.P50Ms, r.P99Ms, r.Lost = l.DeliveredRate, l.Delivery.P50, l.Delivery.P99, l.Lost
	r.CPUPerMsgMs = l.CPUPerMsgMs
	r.NovaPerMsgMs = cpuPerMessageMs(l.CPU, []string{"nova"}, l.DeliveredRate)
	r.PostgresPerMsgMs = cpuPerMessageMs(l.CPU, []string{pgBenchDB}, l.DeliveredRate)
	r.RedisPerMsgMs = cpuPerMessageMs(l.CPU, []string{"redis"}, l.DeliveredRate)
	r.N1Cores = l.NodeCPU["n1"]
	for _, n := range idleNodes(l) {
		if c, ok := l.NodeCPU[n]; ok && (r.BusiestIdleNode == "" || c > r.BusiestIdleCores) {
			r.BusiestIdleNode, r.BusiestIdleCores = n, c
		}
	}
	return r
}

// scalingRows are the instances scenario's runs, in the order they ran (topology by topology).
func (b *Bench) scalingRows() []ScalingRow {
	var out []ScalingRow
	for _, l := range b.res.InstanceRuns {
		out = append(out, scalingRow(l))
	}
	return out
}

var scalingHead = []string{"topology", "redis-servers", "partitions", "instances", "deliv/s", "p50", "p99", "lost",
	"CPU/msg", "nova", "Postgres", "Redis", "n1 CPU", "busiest node w/o subscribers"}

// scalingGrid lays the rows out under scalingHead: CPU per message in ms, node CPU in % of a
// core and in ms per delivered message.
func scalingGrid(rows []ScalingRow) [][]string {
	var out [][]string
	for _, r := range rows {
		line := []string{r.Topology, fmt.Sprint(r.RedisServers), fmt.Sprint(r.FanoutPartitions), fmt.Sprint(r.Instances)}
		if r.Error != "" {
			out = append(out, append(line, fail+": "+firstLine(r.Error)))
			continue
		}
		perMsg := func(cores float64) string {
			if r.DeliveredPerS <= 0 {
				return blank
			}
			return fmt.Sprintf("%.3f ms", 1000*cores/r.DeliveredPerS)
		}
		idle := blank
		if r.BusiestIdleNode != "" {
			idle = fmt.Sprintf("%s %.2f%% (%s)", r.BusiestIdleNode, 100*r.BusiestIdleCores, perMsg(r.BusiestIdleCores))
		}
		line = append(line, fmt.Sprintf("%.0f", r.DeliveredPerS), fms(r.P50Ms), fms(r.P99Ms), fmt.Sprint(r.Lost),
			fmt.Sprintf("%.3f ms", r.CPUPerMsgMs), fmt.Sprintf("%.3f", r.NovaPerMsgMs), fmt.Sprintf("%.3f", r.PostgresPerMsgMs),
			fmt.Sprintf("%.3f", r.RedisPerMsgMs), fmt.Sprintf("%.2f%% (%s)", 100*r.N1Cores, perMsg(r.N1Cores)), idle)
		out = append(out, line)
	}
	return out
}

// scalingSection is the report's "Scaling" part: one line per (topology, instances) of
// b.res.Scaling (writeOutputs works the rows out once).
func (b *Bench) scalingSection() string {
	rows := b.res.Scaling
	if len(rows) == 0 {
		return ""
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "Scaling (the instances scenario: %d/s offered over %d conversations, HTTP sends to n1, every subscriber on n2 (n1 alone with one instance), %.0f s per run; CPU/msg is ms of CPU per delivered message of every server process, then split: nova = all nodes together, Postgres = the bench database's backends, Redis = every redis-server of the topology; n1 CPU and the busiest node without subscribers in %% of one core and ms per delivered message):\n",
		b.cfg.Rate, b.cfg.Conversations, b.cfg.InstancesMeasure.Seconds())
	sb.WriteString(formatGrid(scalingHead, scalingGrid(rows)))
	for _, t := range b.cfg.Topologies { // parseTopologies drops repeats
		fmt.Fprintf(&sb, "  %s: %s\n", t.Name, t.Describe())
	}
	return sb.String()
}

// scalingCharts are CPU per message and p99 against the instance count, a line per topology
// (the same colour in both charts); the CPU chart also has the nova nodes' part, dashed.
func (b *Bench) scalingCharts() []namedChart {
	var total, nova, p99 []series
	colors := map[string]int{}
	var counts []float64
	maxX := 0.0
	for _, r := range b.res.Scaling {
		if r.Error != "" || r.DeliveredPerS <= 0 {
			continue
		}
		if _, ok := colors[r.Topology]; !ok {
			colors[r.Topology] = len(colors) + 1
			c := colors[r.Topology] // legends are short: the chart leaves them 150 px
			total = append(total, series{Name: r.Topology + ": all servers", Dots: true, Color: c})
			nova = append(nova, series{Name: r.Topology + ": nova nodes", Dots: true, Dashed: true, Color: c})
			p99 = append(p99, series{Name: r.Topology, Dots: true, Color: c})
		}
		i, x := colors[r.Topology]-1, float64(r.Instances)
		total[i].X, total[i].Y = append(total[i].X, x), append(total[i].Y, r.CPUPerMsgMs)
		nova[i].X, nova[i].Y = append(nova[i].X, x), append(nova[i].Y, r.NovaPerMsgMs)
		p99[i].X, p99[i].Y = append(p99[i].X, x), append(p99[i].Y, r.P99Ms)
		if !slices.Contains(counts, x) {
			counts = append(counts, x)
		}
		maxX = math.Max(maxX, x)
	}
	if len(total) == 0 {
		return nil
	}
	var ticks []tick
	for _, c := range counts {
		ticks = append(ticks, tick{c, trimNum(c)})
	}
	xmin, xmax := 0.0, maxX+1
	cpu := chart{Title: fmt.Sprintf("CPU per delivered message against instances, %d msg/s", b.cfg.Rate), XLabel: "nova instances",
		YLabel: "ms of CPU per delivered message", Series: append(total, nova...), XTicks: ticks, XMin: xmin, XMax: xmax}
	lat := chart{Title: fmt.Sprintf("Send-to-deliver p99 against instances, %d msg/s", b.cfg.Rate), XLabel: "nova instances",
		YLabel: "p99 latency (ms, log scale)", Series: p99, XTicks: ticks, LogY: true, XMin: xmin, XMax: xmax}
	return []namedChart{{"scaling_cpu_per_msg.svg", cpu}, {"scaling_p99.svg", lat}}
}
