package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultShapes(t *testing.T) {
	names := func(shs []loadShape) []string {
		var out []string
		for _, s := range shs {
			out = append(out, s.String())
		}
		return out
	}
	if got := names(defaultShapes(true)); !slices.Equal(got, []string{"per-conv", "one-conn"}) {
		t.Errorf("quick shapes %q", got)
	}
	full := defaultShapes(false)
	want := []string{"per-conv", "one-conn", "per-conv+senders=1", "per-conv+senders=16", "per-conv+idle=10000"}
	if got := names(full); !slices.Equal(got, want) {
		t.Errorf("full shapes %q", got)
	}
	for _, sh := range full { // every default name reads back as the same shape
		if back, err := parseShape(sh.String()); err != nil || back != sh {
			t.Errorf("parseShape(%q) = %+v, %v", sh, back, err)
		}
	}
	if d := full[4].Describe(); !strings.Contains(d, "10000 idle subscribed connections") {
		t.Errorf("describe %q", d)
	}
	if d := full[2].Describe(); !strings.Contains(d, "one sequential sender") {
		t.Errorf("describe %q", d)
	}
}

func TestWithMainShape(t *testing.T) {
	one := loadShape{}
	got := withMainShape([]loadShape{one, novaLatencyShape, one, {ConnPerConversation: true, Senders: 1}})
	if len(got) != 3 || got[0] != novaLatencyShape || got[1] != one || got[2].Senders != 1 {
		t.Errorf("withMainShape: %v", got)
	}
	if got := withMainShape(nil); len(got) != 1 || got[0] != novaLatencyShape {
		t.Errorf("withMainShape(nil): %v", got)
	}
}

func TestParseCountsAndIdleSpread(t *testing.T) {
	got, err := parseCounts(" 1, 2,4,2,")
	if err != nil || !slices.Equal(got, []int{1, 2, 4}) {
		t.Errorf("parseCounts: %v %v", got, err)
	}
	for _, bad := range []string{"0", "x", "1,-2", "17"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) accepted", bad)
		}
	}
	if idleConversations(10_000) != 100 || idleConversations(40) != 40 {
		t.Error("idleConversations")
	}
}

func TestInstancesPlanAndIdleNodes(t *testing.T) {
	nodes := []*Node{{Name: "n1"}, {Name: "n2"}, {Name: "n3"}, {Name: "n4"}}
	p := instancesPlan(nodes[:1])
	if p.sender.Name != "n1" || len(p.subs) != 1 || p.subs[0].Name != "n1" || p.shape != novaLatencyShape {
		t.Errorf("1 node: %+v", p)
	}
	p = instancesPlan(nodes)
	if p.sender.Name != "n1" || len(p.subs) != 1 || p.subs[0].Name != "n2" {
		t.Errorf("4 nodes: %+v", p)
	}
	l := &LatencyResult{Nodes: 4, SenderNode: "n1", SubscriberNodes: []string{"n2"}, RelayLeader: "n3"}
	if got := idleNodes(l); !slices.Equal(got, []string{"n3", "n4"}) {
		t.Errorf("idle nodes %v", got)
	}
	if idleNodes(&LatencyResult{Nodes: 1, SenderNode: "n1", SubscriberNodes: []string{"n1"}}) != nil {
		t.Error("a lone node is not idle")
	}
	if nodeRoles(l, "n1") != "send" || nodeRoles(l, "n2") != "subs" || nodeRoles(l, "n3") != "lead" || nodeRoles(l, "n4") != "" {
		t.Errorf("roles %q %q %q %q", nodeRoles(l, "n1"), nodeRoles(l, "n2"), nodeRoles(l, "n3"), nodeRoles(l, "n4"))
	}
}

func TestNodeCPUBetween(t *testing.T) {
	t0 := time.Now()
	a := cpuSnap{at: t0, groups: map[int]procCPU{10: {"nova", 100, 0, 0}, 11: {"nova", 50, 0, 0}, 12: {"redis", 7, 0, 0}}, nodes: map[int]string{10: "n1", 11: "n2"}}
	z := cpuSnap{at: t0.Add(2 * time.Second), groups: map[int]procCPU{10: {"nova", 200, 0, 0}, 11: {"nova", 51, 0, 0}, 13: {"nova", 30, 0, 0}, 12: {"redis", 9, 0, 0}},
		nodes: map[int]string{10: "n1", 11: "n2", 13: "n3"}}
	got := nodeCPUBetween(a, z)
	// n1: 100 ticks in 2 s = 0.5 cores; n2: 1 tick = 0.005; n3 started meanwhile: left out.
	if len(got) != 2 || got["n1"] < 0.499 || got["n1"] > 0.501 || got["n2"] < 0.0049 || got["n2"] > 0.0051 {
		t.Errorf("node cpu %v", got)
	}
	if s := formatNodeCPU(got); s != "n1 0.500, n2 0.005" {
		t.Errorf("formatNodeCPU %q", s)
	}
}

// near: v is want to a thousandth.
func near(v, want float64) bool { return v > want-0.001 && v < want+0.001 }

// cpuBetween also says how long each group's threads waited for a core and how often they were
// put on one, apart from the CPU they used, and String lists those after the use (rates under
// 50 a second left out).
func TestCPUBetweenCountsRunQueueWaitAndSchedulingApart(t *testing.T) {
	t0 := time.Now()
	a := cpuSnap{at: t0, groups: map[int]procCPU{10: {"nova", 100, 1e9, 1000}, 11: {"nova", 10, 0, 500}, 12: {"redis", 7, 0, 40}}}
	z := cpuSnap{at: t0.Add(2 * time.Second), groups: map[int]procCPU{10: {"nova", 200, 2e9, 9000}, 11: {"nova", 10, 0, 1700},
		12: {"redis", 9, 5e8, 120}}}
	u := cpuBetween(a, z)
	// nova: 100 ticks = 0.5 cores used, 1 s waited in 2 s = 0.5, (8000 + 1200) / 2 s = 4600 a
	// second on a core; redis 0.01 used, 0.25 waited, 40 a second (left out of String)
	if !near(u["nova"], 0.5) || !near(u[waitedPrefix+"nova"], 0.5) || !near(u["redis"], 0.01) || !near(u[waitedPrefix+"redis"], 0.25) ||
		!near(u[slicesPrefix+"nova"], 4600) || !near(u[slicesPrefix+"redis"], 40) {
		t.Fatalf("cpuBetween %v", u)
	}
	s := u.String()
	if !strings.Contains(s, ": nova 0.50, redis 0.01; runnable, waiting for a core: nova 0.50, redis 0.25; put on a core, times a second: nova 4600") ||
		strings.Contains(s, "redis 40") {
		t.Errorf("String %q", s)
	}
	// per delivered message, only the server groups count, as before
	if got := cpuPerMessageMs(u, novaServerGroups, 1000); !near(got, 0.51) {
		t.Errorf("cpu per message %.3f ms, want 0.51 (nova 0.5 + redis 0.01)", got)
	}
}

// The machine was at least as busy as its processes: /proc/stat's tick-sampled busy time can
// read less at bursty load, and "rest" is then what processes outside the groups used.
func TestMachineIsAtLeastItsProcesses(t *testing.T) {
	t0 := time.Now()
	a := cpuSnap{at: t0, busy: 0, total: 0, groups: map[int]procCPU{10: {"nova", 100, 0, 0}},
		allTicks: map[int]uint64{10: 100, 20: 50}}
	z := cpuSnap{at: t0.Add(2 * time.Second), busy: 0, total: 400, // /proc/stat saw no busy tick at all
		groups:   map[int]procCPU{10: {"nova", 200, 0, 0}},
		allTicks: map[int]uint64{10: 200, 20: 90, 30: 20}} // nova 0.5, another 0.2, a new one 0.1
	u := cpuBetween(a, z)
	if !near(u["machine"], 0.8) || !near(u["nova"], 0.5) || !near(u["rest"], 0.3) {
		t.Fatalf("cpuBetween %v; want machine 0.8 (its processes), nova 0.5, rest 0.3", u)
	}
}

// Time the hypervisor took (steal) is a group of its own, not "rest", and counts as other work
// in the quiet check.
func TestStolenTimeIsToldApartFromOtherWork(t *testing.T) {
	t0 := time.Now()
	cores := float64(runtime.NumCPU())
	a := cpuSnap{at: t0, groups: map[int]procCPU{10: {"nova", 100, 0, 0}}, allTicks: map[int]uint64{10: 100}}
	// 2 s: /proc/stat counts 400 ticks, 300 of them busy, 100 of those stolen
	z := cpuSnap{at: t0.Add(2 * time.Second), busy: 300, total: 400, steal: 100,
		groups: map[int]procCPU{10: {"nova", 200, 0, 0}}, allTicks: map[int]uint64{10: 200}}
	u := cpuBetween(a, z)
	if !near(u["machine"], 0.75*cores) || !near(u[stolen], 0.25*cores) || !near(u["nova"], 0.5) ||
		!near(u["rest"], 0.5*cores-0.5) {
		t.Fatalf("cpuBetween %v; want machine %.2f, stolen %.2f, nova 0.5, rest %.2f", u, 0.75*cores, 0.25*cores, 0.5*cores-0.5)
	}
	if !near(otherWork(u), 0.75*cores-0.5) {
		t.Fatalf("other work %.2f cores; want the rest and the stolen time, %.2f", otherWork(u), 0.75*cores-0.5)
	}
}

func shapeSummary(ms float64) Summary {
	return Summary{Count: 100, P50: ms, P90: 2 * ms, P99: 4 * ms, Max: 8 * ms}
}

func TestShapeRowsAndGrid(t *testing.T) {
	oneConn := loadShape{}
	main := &LatencyResult{Name: "latency@1000", Shape: "per-conv", ShapeSpec: novaLatencyShape, OfferedRate: 1000, Conversations: 100,
		Delivery: shapeSummary(1.5), DeliveredRate: 1000, MeasureS: 30, SubscriberConns: 100,
		CPU: CPUUse{"nova": 0.4, "postgres (bench db)": 0.3, "redis": 0.1}, CPUPerMsgMs: 0.8}
	nova1 := &LatencyResult{Name: "latency-one-conn@1000", Shape: "one-conn", ShapeSpec: oneConn, OfferedRate: 1000, Conversations: 100,
		Delivery: shapeSummary(3), DeliveredRate: 1000, MeasureS: 15, SubscriberConns: 1, CPUPerMsgMs: 0.5,
		CPU: CPUUse{"nova": 0.3, "postgres (bench db)": 0.1, "redis": 0.1}}
	idle := loadShape{ConnPerConversation: true, IdleConns: 10_000}
	novaIdle := &LatencyResult{Name: "latency-per-conv+idle=10000@1000", Shape: idle.String(), ShapeSpec: idle, OfferedRate: 1000, Conversations: 100,
		Error: "idle connections: dial websocket: too many open files"}
	cf := func(sh loadShape, ms, cpu float64) *CentrifugoRun {
		return &CentrifugoRun{Shape: sh.String(), ShapeSpec: sh, OfferedRate: 1000, Conversations: 100, Delivery: shapeSummary(ms),
			DeliveredRate: 1000, MeasureS: 15, SubscriberConns: 100 + sh.IdleConns, CPUPerMsgMs: cpu}
	}
	cfMain, cfOne, cfSenders := cf(novaLatencyShape, 1, 0.4), cf(oneConn, 1, 0.4), cf(loadShape{ConnPerConversation: true, Senders: 1}, 1, 0.4)
	b := &Bench{cfg: Config{Rate: 1000, Conversations: 100}, res: &Results{Latency: main, LatencyShapes: []*LatencyResult{nova1, novaIdle},
		Centrifugo: &CentrifugoResult{Version: centrifugoVersion, Runs: []*CentrifugoRun{cfMain, cfOne, cfSenders}}}}

	rows := b.shapeRows() // no baselines in this run: no durable-floor rows
	find := func(prefix string) []Row {
		var out []Row
		for _, r := range rows {
			if strings.HasPrefix(r.Figure, prefix) {
				out = append(out, r)
			}
		}
		return out
	}
	// Main shape: only the comparison (its own targets are the latency rows above).
	if r := find("  vs Centrifugo (per-conv, 1000/s)"); len(r) != 2 || r[0].Ratio != "1.50x" || r[0].Verdict != pass {
		t.Errorf("main comparison: %+v", r)
	}
	// one-conn: own targets (p50 3 ms > 2 ms: MISS; p99 12 ms > 10 ms: MISS) and comparison
	// (p50 3x > 2x: MISS; p99 3x <= 3x: PASS; CPU 1.25x: PASS).
	own := find("shape one-conn, 1000/s")
	if len(own) != 2 || own[0].Verdict != miss || own[1].Verdict != miss || own[0].Measured != "3.00 ms" {
		t.Errorf("one-conn rows: %+v", own)
	}
	cmp := find("  vs Centrifugo (one-conn")
	if len(cmp) != 3 || cmp[0].Ratio != "3.00x" || cmp[0].Verdict != miss || cmp[1].Verdict != pass {
		t.Errorf("one-conn comparison: %+v", cmp)
	}
	if cmp[2].Ratio != "1.25x" || cmp[2].Verdict != pass { // computed from the CPU groups: 0.5 / 0.4
		t.Errorf("one-conn CPU: %+v", cmp[2])
	}
	if r := find("shape per-conv+idle=10000"); len(r) != 1 || r[0].Verdict != fail || !strings.Contains(r[0].Baseline, "too many open files") {
		t.Errorf("failed shape: %+v", r)
	}

	grid := shapeGridRows(b.novaShapeRuns(), b.res.Centrifugo.Runs)
	// per-conv: Nova, Centrifugo, ratio; one-conn: the same; idle: Nova error, Centrifugo not run; senders=1: Centrifugo only.
	if len(grid) != 9 {
		t.Fatalf("grid rows %d:\n%s", len(grid), formatGrid(shapeGridHead, grid))
	}
	if grid[0][0] != "per-conv" || grid[0][1] != "Nova" || grid[1][1] != "Centrifugo" || grid[2][1] != "ratio" {
		t.Errorf("grid layout:\n%s", formatGrid(shapeGridHead, grid))
	}
	if grid[2][4] != "1.50x" || grid[2][10] != "2.00x" || !strings.Contains(grid[2][11], "p50 PASS") || !strings.Contains(grid[2][11], "CPU MISS") {
		t.Errorf("per-conv ratio line %q", grid[2])
	}
	if grid[0][11] != "p50 PASS, p99 PASS" || grid[3][11] != "p50 MISS, p99 MISS" {
		t.Errorf("Nova verdicts %q / %q", grid[0][11], grid[3][11])
	}
	if grid[6][1] != "Nova" || grid[6][4] != fail || grid[7][4] != "not run" || grid[8][0] != "per-conv+senders=1" {
		t.Errorf("grid tail:\n%s", formatGrid(shapeGridHead, grid))
	}
	ss := b.shapeSeries() // Nova per-conv and one-conn solid, Centrifugo's three dashed, a colour per shape
	if len(ss) != 5 || ss[0].Color != ss[2].Color || ss[1].Color != ss[3].Color || ss[0].Color == ss[1].Color || ss[0].Dashed || !ss[2].Dashed {
		t.Errorf("shape series %+v", ss)
	}
	sec := b.shapesSection()
	if !strings.Contains(sec, "Load shapes, same run") || !strings.Contains(sec, "one-conn: one WebSocket subscribed to all conversations") {
		t.Errorf("section:\n%s", sec)
	}
	if errs := b.res.scenarioErrors(); len(errs) != 1 || !strings.Contains(errs[0], "idle=10000") || !b.res.failed() {
		t.Errorf("scenario errors %v", errs)
	}
}

func TestComparisonRowsSetTheDurableFloorApart(t *testing.T) {
	nova := &LatencyResult{Shape: "per-conv", ShapeSpec: novaLatencyShape, OfferedRate: 1000, Delivery: shapeSummary(1.5), DeliveredRate: 1000,
		CPU: CPUUse{"nova": 0.4, "postgres (bench db)": 0.25, "redis": 0.15}}
	cf := &CentrifugoRun{Shape: "per-conv", ShapeSpec: novaLatencyShape, OfferedRate: 1000, Delivery: shapeSummary(1), DeliveredRate: 1000, CPUPerMsgMs: 0.4}
	floor := &PGBenchResult{Clients: pacedClients, Rate: 1000, TPS: 1000, CPU: CPUUse{"postgres (bench db)": 0.2, "pgbench": 0.05}}

	rows := comparisonRows(nova, cf, floor)
	// p50, p99, CPU (0.8 ms, 2x), then Postgres against the floor (0.25 / 0.2) and Nova less the floor against Centrifugo (0.6 / 0.4)
	if len(rows) != 5 {
		t.Fatalf("rows %+v", rows)
	}
	if rows[2].Measured != "0.800 ms" || rows[2].Ratio != "2.00x" || rows[2].Verdict != miss {
		t.Errorf("CPU row %+v", rows[2])
	}
	if rows[3].Measured != "0.250 ms" || rows[3].Ratio != "1.25x" || !strings.Contains(rows[3].Baseline, "durable floor 0.200 ms") {
		t.Errorf("Postgres row %+v", rows[3])
	}
	if rows[4].Measured != "0.600 ms" || rows[4].Ratio != "1.50x" || rows[4].Verdict != info {
		t.Errorf("without-floor row %+v", rows[4])
	}
	// a floor measured at another rate, or a failed one, is not set against the run
	for _, f := range []*PGBenchResult{{Rate: 500, TPS: 500, CPU: CPUUse{"postgres (bench db)": 0.1}}, {Rate: 1000, Error: "pgbench: exit 1"}, nil} {
		if rows := comparisonRows(nova, cf, f); len(rows) != 3 {
			t.Errorf("floor %+v: rows %+v", f, rows)
		}
	}
	// with both systems' scheduling counts, a last row sets them per message side by side; the
	// load generator's own switches are not the servers'
	nova.CPU[slicesPrefix+"nova"], nova.CPU[slicesPrefix+pgBenchDB], nova.CPU[slicesPrefix+"redis"] = 8000, 3000, 1000
	nova.CPU[slicesPrefix+"novabench"] = 7000
	cf.CPU = CPUUse{slicesPrefix + "centrifugo": 10000, slicesPrefix + "redis": 1500, slicesPrefix + "novabench": 9000}
	rows = comparisonRows(nova, cf, nil)
	if len(rows) != 4 || rows[3].Measured != "12.0" || rows[3].Baseline != "Centrifugo 11.5" || rows[3].Ratio != "1.04x" {
		t.Errorf("scheduling row %+v", rows)
	}
}

func TestInstanceRows(t *testing.T) {
	l := &LatencyResult{Nodes: 4, OfferedRate: 1000, Conversations: 100, MeasureS: 15, SenderNode: "n1", SubscriberNodes: []string{"n2"},
		RelayLeader: "n4", Delivery: shapeSummary(1), DeliveredRate: 998, CPUPerMsgMs: 0.9,
		NodeCPU:       map[string]float64{"n1": 0.45, "n2": 0.2, "n3": 0.012, "n4": 0.09},
		NodeCPUNoLoad: map[string]float64{"n3": 0.004}}
	rows := instanceRows(l)
	if len(rows) != 5 {
		t.Fatalf("rows %+v", rows)
	}
	if !strings.Contains(rows[0].Figure, "4 instances") || !strings.Contains(rows[0].Figure, "relay leader n4") || rows[0].Verdict != pass {
		t.Errorf("latency row %+v", rows[0])
	}
	n3, n4 := rows[3], rows[4]
	if n3.Measured != "1.20 % of a core" || n3.Verdict != pass || n3.Ratio != "0.60x" || !strings.Contains(n3.Baseline, "0.40 % without load") {
		t.Errorf("n3 %+v", n3)
	}
	if !strings.Contains(n4.Figure, "relay leader") || n4.Verdict != miss {
		t.Errorf("n4 %+v", n4)
	}
	l.OfferedRate = 200 // a pass under a lighter load than the target's is only information
	if rows := instanceRows(l); rows[3].Verdict != info || rows[4].Verdict != miss {
		t.Errorf("at 200/s: %+v", rows[3:])
	}
	if rows := instanceRows(&LatencyResult{Nodes: 2, Error: "start nodes: boom"}); len(rows) != 1 || rows[0].Verdict != fail {
		t.Errorf("error rows %+v", rows)
	}
	one := &LatencyResult{Nodes: 1, OfferedRate: 1000, SenderNode: "n1", SubscriberNodes: []string{"n1"}, RelayLeader: "n1",
		Delivery: shapeSummary(1), NodeCPU: map[string]float64{"n1": 0.5}}
	b := &Bench{cfg: Config{Rate: 1000, Conversations: 100, InstancesMeasure: 15 * time.Second}, res: &Results{InstanceRuns: []*LatencyResult{one, l}}}
	sec := b.instancesSection()
	if !strings.Contains(sec, "50.00% (send, subs, lead)") || !strings.Contains(sec, "1.20% [0.40%]") || !strings.Contains(sec, "9.00% (lead)") {
		t.Errorf("section:\n%s", sec)
	}
	if len(b.instancesRows()) != 3+5 {
		t.Errorf("instances rows %d", len(b.instancesRows()))
	}
}

func TestFormatGridAligns(t *testing.T) {
	out := formatGrid([]string{"a", "bb", "c"}, [][]string{{"long cell", "x", "last"}, {"y"}})
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("lines %q", lines)
	}
	col := strings.Index(lines[0], "| bb")
	for _, l := range []string{lines[2], lines[3]} {
		if strings.Index(l, "|") != col {
			t.Errorf("misaligned:\n%s", out)
		}
	}
}

func TestTheLeaderIsTheNodeWhoseLastWordLeadsShardZero(t *testing.T) {
	line := func(shards string) string {
		return `{"level":"INFO","msg":"relay leads outbox shards","component":"outbox-relay","shards":` + shards + `,"of":4}` + "\n"
	}
	for _, tc := range []struct {
		log  string
		want bool
	}{
		{"", false},
		{line("[0]"), true},
		{line("[0,3]"), true},
		{line("[1,2]"), false},
		{line("[10]"), false},
		{line("[0,1]") + line("[1]"), false}, // let go of shard 0 since
		{line("[]") + line("[0,2]"), true},
		{`{"level":"INFO","msg":"relay is the outbox leader","component":"outbox-relay"}` + "\n", true}, // before the shards
	} {
		if got := leadsFirstShard(tc.log); got != tc.want {
			t.Errorf("leadsFirstShard(%q) = %v, want %v", tc.log, got, tc.want)
		}
	}
}

// -redis-nice gives every thread of the process the value (raising it needs no privilege).
func TestReniceSetsEveryThread(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	e := &Env{RedisNice: 5}
	if err := e.renice(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if f[16] != "5" { // field 19 of stat, the nice value
		t.Fatalf("nice %s, want 5", f[16])
	}
	if niceNote(0) != "" || !strings.Contains(niceNote(-10), "nice -10") {
		t.Error("niceNote")
	}
}
