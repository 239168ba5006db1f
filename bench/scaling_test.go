package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTopologies(t *testing.T) {
	names := func(ts []redisTopology) []string {
		var out []string
		for _, x := range ts {
			out = append(out, x.Name)
		}
		return out
	}
	got, err := parseTopologies(" cluster, single,cluster,")
	if err != nil || !slices.Equal(names(got), []string{"cluster", "single"}) {
		t.Errorf("parseTopologies: %v %v", names(got), err)
	}
	if got, err := parseTopologies(""); err != nil || got != nil {
		t.Errorf("empty list: %v %v", got, err)
	}
	if _, err := parseTopologies("single,sentinel"); err == nil || !strings.Contains(err.Error(), "single,single-all,cluster") {
		t.Errorf("unknown topology: %v", err)
	}
	if d := defaultTopologies(); !slices.Equal(names(d), []string{"single", "single-all", "cluster"}) {
		t.Errorf("defaults %v", names(d))
	}
}

func TestTopologySettings(t *testing.T) {
	if singleTopology.Servers() != 1 || singleTopology.Settings() != nil || singleTopology.Partitions != 1 {
		t.Errorf("single: %d servers, settings %v", singleTopology.Servers(), singleTopology.Settings())
	}
	// every instance reading: one server, one partition, each node takes a share of the groups' work
	if s := singleAllTopology.Settings(); singleAllTopology.Servers() != 1 || s["NOVA_GROUP_READERS"] != "all" || len(s) != 1 {
		t.Errorf("single-all: %d servers, settings %v", singleAllTopology.Servers(), s)
	}
	// a cluster needs more than one partition (Nova refuses to start otherwise)
	if s := clusterTopology.Settings(); clusterTopology.Servers() != 6 || s["NOVA_FANOUT_PARTITIONS"] != "8" || len(s) != 1 {
		t.Errorf("cluster: %d servers, settings %v", clusterTopology.Servers(), s)
	}
	if d := clusterTopology.Describe(); !strings.Contains(d, "3 masters") || !strings.Contains(d, "6 redis-servers") || !strings.Contains(d, "PARTITIONS=8") {
		t.Errorf("describe %q", d)
	}
	// the nodes' partitions, as the Env reads them for the consumer-group backlog
	if fanoutPartitions(nil, nil) != 1 || fanoutPartitions(map[string]string{"NOVA_STREAM_MAXLEN": "1"}, clusterTopology.Settings()) != 8 ||
		fanoutPartitions(map[string]string{"NOVA_FANOUT_PARTITIONS": "4"}, map[string]string{"NOVA_FANOUT_PARTITIONS": "2"}) != 2 {
		t.Error("fanoutPartitions")
	}
	e := &Env{partitions: 8}
	if _, streams := e.fanoutStreams(); len(streams) != 8 || streams[3] != "stream:fanout:all-conversations:{3}" {
		t.Errorf("streams %v", streams)
	}
	e.partitions = 1
	if _, streams := e.fanoutStreams(); !slices.Equal(streams, []string{"stream:fanout:all-conversations"}) {
		t.Errorf("streams %v", streams)
	}
}

func TestInstancesSteps(t *testing.T) {
	steps := instancesSteps([]redisTopology{singleTopology, clusterTopology}, []int{1, 2, 4})
	var got []string
	for _, s := range steps {
		got = append(got, s.Name(1000))
	}
	// topology by topology: a cluster starts once for all its counts
	want := []string{"instances-1-single@1000", "instances-2-single@1000", "instances-4-single@1000",
		"instances-1-cluster@1000", "instances-2-cluster@1000", "instances-4-cluster@1000"}
	if !slices.Equal(got, want) {
		t.Errorf("steps %v", got)
	}
	if instancesSteps(nil, []int{1}) != nil {
		t.Error("no topology, no steps")
	}
}

// scalingRun is an instances run at 1,000 delivered/s with the given CPU (cores) by group and node.
func scalingRun(top redisTopology, nodes int, cpu CPUUse, byNode map[string]float64) *LatencyResult {
	subs := "n2"
	if nodes == 1 {
		subs = "n1"
	}
	return &LatencyResult{Name: instancesStep{top, nodes}.Name(1000), Topology: top.Name, RedisServers: top.Servers(), FanoutPartitions: top.Partitions,
		Nodes: nodes, OfferedRate: 1000, Conversations: 100, MeasureS: 15, SenderNode: "n1", SubscriberNodes: []string{subs}, RelayLeader: "n1",
		Delivery: shapeSummary(2), DeliveredRate: 1000, CPU: cpu, NodeCPU: byNode, CPUPerMsgMs: cpuPerMessageMs(cpu, novaServerGroups, 1000)}
}

func TestScalingRowsTableAndCharts(t *testing.T) {
	single1 := scalingRun(singleTopology, 1, CPUUse{"nova": 0.4, "postgres (bench db)": 0.2, "redis": 0.1, "novabench": 0.3}, map[string]float64{"n1": 0.4})
	single4 := scalingRun(singleTopology, 4, CPUUse{"nova": 0.44, "postgres (bench db)": 0.2, "redis": 0.1},
		map[string]float64{"n1": 0.3, "n2": 0.1, "n3": 0.02, "n4": 0.015})
	// on the cluster, the idle single server is not the topology's Redis: it stays out of CPU/msg
	cluster4 := scalingRun(clusterTopology, 4, CPUUse{"nova": 0.5, "postgres (bench db)": 0.2, "redis": 0.3, redisNotInUse: 0.01},
		map[string]float64{"n1": 0.3, "n2": 0.1, "n3": 0.03, "n4": 0.045})
	broken := &LatencyResult{Name: "instances-1-cluster@1000", Topology: "cluster", RedisServers: 6, FanoutPartitions: 8, Nodes: 1,
		Error: "start Redis Cluster: redis-cli --cluster create: exit status 1\nmore"}
	b := &Bench{cfg: Config{Rate: 1000, Conversations: 100, InstancesMeasure: 15 * time.Second, Topologies: []redisTopology{singleTopology, clusterTopology}},
		res: &Results{InstanceRuns: []*LatencyResult{single1, single4, broken, cluster4}}}

	rows := b.scalingRows()
	b.res.Scaling = rows // as writeOutputs does, for the section and the charts
	if len(rows) != 4 {
		t.Fatalf("rows %+v", rows)
	}
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	r := rows[3]
	if r.Topology != "cluster" || r.RedisServers != 6 || r.FanoutPartitions != 8 || r.Instances != 4 {
		t.Errorf("cluster row %+v", r)
	}
	if !near(r.CPUPerMsgMs, 1.0) || !near(r.NovaPerMsgMs, 0.5) || !near(r.PostgresPerMsgMs, 0.2) || !near(r.RedisPerMsgMs, 0.3) {
		t.Errorf("cluster CPU per message %+v", r)
	}
	if r.BusiestIdleNode != "n4" || !near(r.BusiestIdleCores, 0.045) || !near(r.N1Cores, 0.3) {
		t.Errorf("cluster nodes %+v", r)
	}
	if rows[0].BusiestIdleNode != "" || !near(rows[0].CPUPerMsgMs, 0.7) { // novabench is not a server process
		t.Errorf("single, 1 instance %+v", rows[0])
	}
	if rows[2].Error == "" || rows[2].CPUPerMsgMs != 0 {
		t.Errorf("failed run %+v", rows[2])
	}

	grid := scalingGrid(rows)
	if len(grid) != 4 || len(grid[0]) != len(scalingHead) {
		t.Fatalf("grid:\n%s", formatGrid(scalingHead, grid))
	}
	if c := grid[3]; c[8] != "1.000 ms" || c[9] != "0.500" || c[10] != "0.200" || c[11] != "0.300" || c[12] != "30.00% (0.300 ms)" || c[13] != "n4 4.50% (0.045 ms)" {
		t.Errorf("cluster line %q", c)
	}
	if c := grid[2]; len(c) != 5 || c[4] != "ERROR: start Redis Cluster: redis-cli --cluster create: exit status 1" {
		t.Errorf("failed line %q", c)
	}
	if grid[0][13] != blank {
		t.Errorf("no idle node: %q", grid[0][13])
	}
	sec := b.scalingSection()
	if !strings.Contains(sec, "Scaling (") || !strings.Contains(sec, "cluster: Redis Cluster of 3 masters") || !strings.Contains(sec, "busiest node w/o subscribers") {
		t.Errorf("section:\n%s", sec)
	}

	charts := b.scalingCharts()
	if len(charts) != 2 || charts[0].file != "scaling_cpu_per_msg.svg" || charts[1].file != "scaling_p99.svg" {
		t.Fatalf("charts %+v", charts)
	}
	cpu, p99 := charts[0].Series, charts[1].Series
	// a solid line (all servers) and a dashed one (nova nodes) per topology; the failed run is left out
	if len(cpu) != 4 || len(p99) != 2 || cpu[0].Color != cpu[2].Color || cpu[0].Color == cpu[1].Color || cpu[0].Dashed || !cpu[2].Dashed || p99[1].Color != cpu[1].Color {
		t.Errorf("series %+v / %+v", cpu, p99)
	}
	if !slices.Equal(cpu[0].X, []float64{1, 4}) || !near(cpu[0].Y[1], 0.74) || !slices.Equal(cpu[1].X, []float64{4}) || !near(cpu[3].Y[0], 0.5) || p99[0].Y[0] != 8 {
		t.Errorf("points %+v / %+v", cpu, p99)
	}
	if len(charts[0].XTicks) != 2 || !charts[1].LogY || !strings.Contains(charts[0].svg(), "cluster: nova nodes") {
		t.Errorf("axes %+v", charts[0].XTicks)
	}
	if (&Bench{cfg: b.cfg, res: &Results{}}).scalingCharts() != nil {
		t.Error("no runs, no charts")
	}
}

func TestInstancesReportNamesTheTopology(t *testing.T) {
	cluster := scalingRun(clusterTopology, 4, CPUUse{"nova": 0.5}, map[string]float64{"n1": 0.3, "n2": 0.1, "n3": 0.01, "n4": 0.01})
	rows := instanceRows(cluster)
	if !strings.HasPrefix(rows[0].Figure, "Redis Cluster (6 servers, 8 partitions), 4 instances") {
		t.Errorf("figure %q", rows[0].Figure)
	}
	if f := instanceRows(scalingRun(singleTopology, 2, nil, nil))[0].Figure; !strings.HasPrefix(f, "single Redis, 2 instances") {
		t.Errorf("figure %q", f)
	}
	b := &Bench{cfg: Config{Rate: 1000, Conversations: 100, InstancesMeasure: 15 * time.Second}, res: &Results{InstanceRuns: []*LatencyResult{cluster}}}
	sec := b.instancesSection()
	if !strings.Contains(sec, "topology | instances") || !strings.Contains(sec, "cluster  | 4") {
		t.Errorf("section:\n%s", sec)
	}
	note := instancesTopologyNote([]redisTopology{singleTopology, clusterTopology})
	if !strings.Contains(note, redisNotInUse) || !strings.Contains(note, "single, cluster.") || strings.Contains(note, "NOVA_FANOUT_PARTITIONS=8") {
		t.Errorf("note %q: the topologies by name, described once (under the scaling table)", note)
	}
}
