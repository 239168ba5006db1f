package main

import (
	"fmt"
	"strings"
)

// The report's parts of the load shapes (Nova next to Centrifugo, shape by shape) and of the
// instances scenario (1, 2, 4 nodes, CPU of each).

// Targets of DESIGN.md "Performance" the shapes and instances are held to.
const (
	targetP50Ms        = 2.0
	targetP99Ms        = 10.0
	targetP50Ratio     = 2.0
	targetP99Ratio     = 3.0
	targetCPURatio     = 1.5
	targetIdleNodePct  = 2.0  // % of one core, for a node without subscribers of the busy conversations
	targetIdleNodeRate = 1000 // ... while the others carry this many messages/s
)

// shapeRows are the main table's rows of the load shapes: for each Nova shape, its own
// targets (the main shape has its rows above) and the comparison with Centrifugo's same shape.
func (b *Bench) shapeRows() []Row {
	var rows []Row
	for _, l := range b.novaShapeRuns() {
		if l != b.res.Latency {
			rows = append(rows, shapeTargetRows(l)...)
		}
		rows = append(rows, comparisonRows(l, b.centrifugoRunFor(l), b.durableFloor())...)
	}
	return append(rows, b.centrifugoNotMeasured()...)
}

// shapeTargetRows hold one Nova shape to p50 <= 2 ms and p99 <= 10 ms with nothing lost.
func shapeTargetRows(l *LatencyResult) []Row {
	name := fmt.Sprintf("shape %s, %d/s: send->deliver %%s", l.Shape, l.OfferedRate)
	switch {
	case l.Error != "":
		return []Row{{fmt.Sprintf(name, "latency"), fail, "<= 2 / 10 ms", firstLine(l.Error), blank, fail}}
	case l.Delivery.Count == 0:
		return []Row{{fmt.Sprintf(name, "latency"), "nothing delivered", "<= 2 / 10 ms", blank, blank, miss}}
	}
	complete := l.Lost == 0 && l.Skipped == 0
	clean := complete && l.SendErrors == 0 && l.OrderViolations == 0
	rows := []Row{
		{fmt.Sprintf(name, "p50"), fms(l.Delivery.P50), "<= 2 ms", blank, blank, verdict(complete && l.Delivery.P50 <= targetP50Ms)},
		{fmt.Sprintf(name, "p99"), fms(l.Delivery.P99), "<= 10 ms", blank, blank, verdict(complete && l.Delivery.P99 <= targetP99Ms)},
		{"  lost / skipped late / send errors / order violations", fmt.Sprintf("%d / %d / %d / %d", l.Lost, l.Skipped, l.SendErrors, l.OrderViolations),
			"0 / 0 / 0 / 0", blank, blank, verdict(clean)},
	}
	if behind(l) {
		rows = append(rows, Row{"  sends completed per second: it fell behind, so its latency is its own queue", fmt.Sprintf("%.0f/s", l.SendRate),
			fmt.Sprintf("%d/s", l.OfferedRate), blank, blank, miss})
	}
	return rows
}

// behind reports whether a run's senders completed clearly fewer sends per second than were
// offered (one sequential sender whose send takes more than 1 ms cannot keep 1,000/s): each
// send then waits for the ones before it, and its latency counts that wait.
func behind(l *LatencyResult) bool {
	return l.OfferedRate > 0 && l.SendRate > 0 && l.SendRate < 0.98*float64(l.OfferedRate)
}

// shapeGridRows lay the shapes out system by system: a Nova line, a Centrifugo line and a
// ratio line (Nova / Centrifugo) per shape, in Nova's order, then the shapes only Centrifugo ran.
func shapeGridRows(nova []*LatencyResult, cf []*CentrifugoRun) [][]string {
	var out [][]string
	used := map[*CentrifugoRun]bool{}
	lost := func(lost, skipped int64) string { return fmt.Sprintf("%d / %d", lost, skipped) }
	cpu := func(v float64) string {
		if v <= 0 {
			return blank
		}
		return fmt.Sprintf("%.3f ms", v)
	}
	novaLine := func(l *LatencyResult) []string {
		if l.Error != "" {
			return []string{l.Shape, "Nova", fmt.Sprintf("%.0f s", l.MeasureS), blank, fail, blank, blank, blank, blank, blank, blank, firstLine(l.Error)}
		}
		v := fmt.Sprintf("p50 %s, p99 %s", verdict(l.Lost == 0 && l.Skipped == 0 && l.Delivery.Count > 0 && l.Delivery.P50 <= targetP50Ms),
			verdict(l.Lost == 0 && l.Skipped == 0 && l.Delivery.Count > 0 && l.Delivery.P99 <= targetP99Ms))
		return []string{l.Shape, "Nova", fmt.Sprintf("%.0f s", l.MeasureS), connsCell(l.SubscriberConns, l.IdleConns), fms(l.Delivery.P50), fms(l.Delivery.P90),
			fms(l.Delivery.P99), fms(l.Delivery.Max), fmt.Sprintf("%.0f", l.DeliveredRate), lost(l.Lost, l.Skipped), cpu(novaCPUPerMsg(l)), v}
	}
	cfLine := func(r *CentrifugoRun, shape string) []string {
		if r.Error != "" {
			return []string{shape, "Centrifugo", fmt.Sprintf("%.0f s", r.MeasureS), blank, fail, blank, blank, blank, blank, blank, blank, firstLine(r.Error)}
		}
		idle := r.ShapeSpec.IdleConns
		return []string{shape, "Centrifugo", fmt.Sprintf("%.0f s", r.MeasureS), connsCell(r.SubscriberConns-idle, idle), fms(r.Delivery.P50), fms(r.Delivery.P90),
			fms(r.Delivery.P99), fms(r.Delivery.Max), fmt.Sprintf("%.0f", r.DeliveredRate), lost(r.Lost, r.Skipped), cpu(r.CPUPerMsgMs), info}
	}
	for _, l := range nova {
		out = append(out, novaLine(l))
		var r *CentrifugoRun
		for _, c := range cf {
			if sameLoad(l, c) && !used[c] {
				r = c
				break
			}
		}
		if r == nil {
			out = append(out, []string{"", "Centrifugo", blank, blank, "not run", blank, blank, blank, blank, blank, blank, blank})
			continue
		}
		used[r] = true
		out = append(out, cfLine(r, ""))
		if l.Error != "" || r.Error != "" || l.Delivery.Count == 0 || r.Delivery.Count == 0 {
			continue
		}
		ratio := func(nv, cv float64) string {
			if nv <= 0 || cv <= 0 {
				return blank
			}
			return fx(nv / cv)
		}
		complete := l.Lost == 0 && r.Lost == 0 && l.Skipped == 0 && r.Skipped == 0
		v := fmt.Sprintf("p50 %s (<= 2x), p99 %s (<= 3x)", verdict(complete && l.Delivery.P50/r.Delivery.P50 <= targetP50Ratio),
			verdict(complete && l.Delivery.P99/r.Delivery.P99 <= targetP99Ratio))
		if nc := novaCPUPerMsg(l); nc > 0 && r.CPUPerMsgMs > 0 {
			v += fmt.Sprintf(", CPU %s (<= 1.5x)", verdict(nc/r.CPUPerMsgMs <= targetCPURatio))
		}
		out = append(out, []string{"", "ratio", blank, blank, ratio(l.Delivery.P50, r.Delivery.P50), ratio(l.Delivery.P90, r.Delivery.P90),
			ratio(l.Delivery.P99, r.Delivery.P99), ratio(l.Delivery.Max, r.Delivery.Max), blank, blank, ratio(novaCPUPerMsg(l), r.CPUPerMsgMs), v})
	}
	for _, c := range cf {
		if !used[c] {
			out = append(out, cfLine(c, c.Shape))
		}
	}
	return out
}

// novaCPUPerMsg is the CPU time (ms) of Nova's server processes per delivered message.
func novaCPUPerMsg(l *LatencyResult) float64 {
	return cpuPerMessageMs(l.CPU, novaServerGroups, l.DeliveredRate)
}

// connsCell is "100" or "100 + 10000 idle".
func connsCell(active, idle int) string {
	if idle > 0 {
		return fmt.Sprintf("%d + %d idle", active, idle)
	}
	return fmt.Sprint(active)
}

var shapeGridHead = []string{"shape", "system", "window", "sub conns", "p50", "p90", "p99", "max", "deliv/s", "lost / skipped", "CPU/msg", "verdict"}

// shapesSection is the report's "Load shapes" part: every shape, Nova next to Centrifugo.
func (b *Bench) shapesSection() string {
	nova := b.novaShapeRuns()
	var cf []*CentrifugoRun
	if c := b.res.Centrifugo; c != nil {
		cf = c.Runs
	}
	if len(nova)+len(cf) < 2 {
		return ""
	}
	var sb strings.Builder
	where := "HTTP sends to one node, subscribers on the others"
	if l := b.res.Latency; l != nil && l.SenderNode != "" {
		where = fmt.Sprintf("%d nodes, HTTP sends to %s, subscribers on %s", l.Nodes, l.SenderNode, strings.Join(l.SubscriberNodes, "+"))
	}
	cfWhere := "not run"
	if c := b.res.Centrifugo; c != nil && len(c.Runs) > 0 {
		cfWhere = fmt.Sprintf("v%s, 2 nodes, publishes to %s, subscribers on %s", c.Version, orDash(firstPublishNode(c)), orDash(firstSubscriberNode(c)))
	} else if c != nil && c.NotRun != "" {
		cfWhere = "not run: " + firstLine(c.NotRun)
	}
	fmt.Fprintf(&sb, "Load shapes, same run (%d/s over %d conversations; Nova: %s; Centrifugo: %s). CPU/msg is CPU time per delivered message of every server process (Nova: nodes + its Postgres backends + Redis; Centrifugo: nodes + Redis); ratio = Nova / Centrifugo; targets p50 <= 2 ms, p99 <= 10 ms, within 2x / 3x of Centrifugo, CPU within 1.5x:\n",
		b.cfg.Rate, b.cfg.Conversations, where, cfWhere)
	sb.WriteString(formatGrid(shapeGridHead, shapeGridRows(nova, cf)))
	seen := map[string]bool{}
	for _, l := range nova {
		if !seen[l.Shape] {
			seen[l.Shape] = true
			fmt.Fprintf(&sb, "  %s: %s\n", l.Shape, l.ShapeSpec.Describe())
		}
	}
	for _, c := range cf {
		if !seen[c.Shape] {
			seen[c.Shape] = true
			fmt.Fprintf(&sb, "  %s: %s\n", c.Shape, c.ShapeSpec.Describe())
		}
	}
	return sb.String()
}

// formatGrid aligns a table of cells under head (formatTable is this with the report's columns).
func formatGrid(head []string, rows [][]string) string {
	widths := make([]int, len(head))
	for _, r := range append([][]string{head}, rows...) {
		for i := range min(len(r), len(widths)) {
			widths[i] = max(widths[i], len(r[i]))
		}
	}
	var sb strings.Builder
	line := func(r []string) {
		for i := range widths {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			if i > 0 {
				sb.WriteString(" | ")
			}
			if i == len(widths)-1 {
				sb.WriteString(c)
			} else {
				sb.WriteString(c + strings.Repeat(" ", widths[i]-len(c)))
			}
		}
		sb.WriteString("\n")
	}
	line(head)
	for i, w := range widths {
		if i > 0 {
			sb.WriteString("-+-")
		}
		sb.WriteString(strings.Repeat("-", w))
	}
	sb.WriteString("\n")
	for _, r := range rows {
		line(r)
	}
	return sb.String()
}

// nodeRoles says what a node did in a run: "send", "subs", "lead" (the outbox relay leader).
func nodeRoles(l *LatencyResult, node string) string {
	var roles []string
	if node == l.SenderNode {
		roles = append(roles, "send")
	}
	if containsString(l.SubscriberNodes, node) {
		roles = append(roles, "subs")
	}
	if node == l.RelayLeader {
		roles = append(roles, "lead")
	}
	return strings.Join(roles, ", ")
}

// instancesRows are the main table's rows of the instances scenario: latency per node count,
// and the CPU of each node without subscribers against "at most 2 % of a core".
func (b *Bench) instancesRows() []Row {
	var rows []Row
	for _, l := range b.res.InstanceRuns {
		rows = append(rows, instanceRows(l)...)
	}
	return rows
}

func instanceRows(l *LatencyResult) []Row {
	subs := strings.Join(l.SubscriberNodes, "+")
	if subs == "" {
		subs = "n2"
	}
	head := fmt.Sprintf("%s%s, %d/s, sends to n1, subscribers on %s, relay leader %s", topologyPrefix(l), plural(l.Nodes, "instance"), l.OfferedRate, subs, orDash(l.RelayLeader))
	switch {
	case l.Error != "":
		return []Row{{head, fail, blank, firstLine(l.Error), blank, fail}}
	case l.Delivery.Count == 0:
		return []Row{{head + ": send->deliver", "nothing delivered", "<= 2 / 10 ms", blank, blank, miss}}
	}
	complete := l.Lost == 0 && l.Skipped == 0
	rows := []Row{
		{head + ": send->deliver p50", fms(l.Delivery.P50), "<= 2 ms", blank, blank, verdict(complete && l.Delivery.P50 <= targetP50Ms)},
		{head + ": send->deliver p99", fms(l.Delivery.P99), "<= 10 ms", blank, blank, verdict(complete && l.Delivery.P99 <= targetP99Ms)},
		{"  lost / CPU per delivered msg (all server processes)", fmt.Sprintf("%d / %.3f ms", l.Lost, l.CPUPerMsgMs), "0 / -", blank, blank, verdict(complete)},
	}
	for _, n := range idleNodes(l) {
		fig := fmt.Sprintf("  %s, no subscribers: CPU", n)
		if n == l.RelayLeader {
			fig = fmt.Sprintf("  %s, no subscribers but the outbox relay leader: CPU", n)
		}
		base := fmt.Sprintf("others carry %.0f msg/s", l.DeliveredRate)
		if idle, ok := l.NodeCPUNoLoad[n]; ok {
			base += fmt.Sprintf("; %.2f %% without load", 100*idle)
		}
		cores, ok := l.NodeCPU[n]
		if !ok {
			rows = append(rows, Row{fig, "n/a", "<= 2 % of a core", base, blank, miss})
			continue
		}
		pct := 100 * cores
		v := verdict(pct <= targetIdleNodePct)
		if v == pass && l.OfferedRate < targetIdleNodeRate {
			v = info // a pass at a lighter load than the target's says little
		}
		rows = append(rows, Row{fig, fmt.Sprintf("%.2f %% of a core", pct), "<= 2 % of a core", base, fx(pct / targetIdleNodePct), v})
	}
	return rows
}

// topologyPrefix names the Redis of an instances run at the start of its rows: "single Redis, "
// or "Redis Cluster (6 servers, 8 partitions), ".
func topologyPrefix(l *LatencyResult) string {
	switch {
	case l.Topology == clusterTopology.Name:
		return fmt.Sprintf("Redis Cluster (%d servers, %d partitions), ", l.RedisServers, l.FanoutPartitions)
	case l.Topology == singleAllTopology.Name:
		return "single Redis, NOVA_GROUP_READERS=all, "
	default:
		return fmt.Sprintf("%s Redis, ", l.Topology)
	}
}

// instancesSection is the report's "Instances" part: one line per topology and node count,
// each node's CPU.
func (b *Bench) instancesSection() string {
	runs := b.res.InstanceRuns
	if len(runs) == 0 {
		return ""
	}
	maxNodes := 0
	for _, l := range runs {
		maxNodes = max(maxNodes, l.Nodes)
	}
	head := []string{"topology", "instances", "p50", "p90", "p99", "max", "deliv/s", "lost", "CPU/msg"}
	for i := 1; i <= maxNodes; i++ {
		head = append(head, fmt.Sprintf("n%d CPU", i))
	}
	var rows [][]string
	for _, l := range runs {
		r := []string{l.Topology, fmt.Sprint(l.Nodes)}
		if l.Error != "" {
			rows = append(rows, append(r, fail+": "+firstLine(l.Error)))
			continue
		}
		r = append(r, fms(l.Delivery.P50), fms(l.Delivery.P90), fms(l.Delivery.P99), fms(l.Delivery.Max), fmt.Sprintf("%.0f", l.DeliveredRate),
			fmt.Sprint(l.Lost), fmt.Sprintf("%.3f ms", l.CPUPerMsgMs))
		for i := 1; i <= maxNodes; i++ {
			n := fmt.Sprintf("n%d", i)
			cores, ok := l.NodeCPU[n]
			switch {
			case i > l.Nodes:
				r = append(r, "")
			case !ok:
				r = append(r, "n/a")
			default:
				cell := fmt.Sprintf("%.2f%%", 100*cores)
				if idle, ok := l.NodeCPUNoLoad[n]; ok {
					cell += fmt.Sprintf(" [%.2f%%]", 100*idle)
				}
				if roles := nodeRoles(l, n); roles != "" {
					cell += " (" + roles + ")"
				}
				r = append(r, cell)
			}
		}
		rows = append(rows, r)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "Instances, CPU by node (restarted per topology and count; HTTP sends to n1 at %d/s over %d conversations, every subscriber on n2, on n1 when alone; CPU in %% of one core, averaged over the %.0f s window, [without load, over %s before the run]; send = takes the sends, subs = holds the subscribers, lead = outbox relay leader; target for a node with no subscribers: <= 2 %% of a core at 1,000 msg/s):\n",
		b.cfg.Rate, b.cfg.Conversations, b.cfg.InstancesMeasure.Seconds(), instancesNoLoad)
	sb.WriteString(formatGrid(head, rows))
	return sb.String()
}

// shapeNotes say how the shapes and the instances scenario were run.
func (b *Bench) shapeNotes() []string {
	var n []string
	if len(b.res.LatencyShapes) > 0 || (b.res.Centrifugo != nil && len(b.res.Centrifugo.Runs) > 1) {
		n = append(n, fmt.Sprintf("Load shapes run one after the other on the same nodes, Nova's first, then Centrifugo's (its nodes run only then); each shape has the same rate, conversations, warm-up and window on both systems (%s for the main shape, %.0f s for the others). Senders=N: N goroutines share the rate, each sending its own in order (late when the one before was slow; latency still counts from the intended time); a send more than %s late is skipped and counted, and fails the shape. Idle connections (Nova: spread over %d quiet conversations whose participants are %d users; Centrifugo: the same number of quiet channels, a user per connection) are opened on the subscriber node before the measurement; after them Nova's nodes are restarted.",
			fmt.Sprintf("%.0f s", b.cfg.LatencyMeasure.Seconds()), b.cfg.ShapeMeasure.Seconds(), maxSendLag, maxIdleConversations, maxIdleConversations))
	}
	if len(b.res.InstanceRuns) > 0 {
		n = append(n, "Instances: the nodes are restarted for each count (NOVA_LIVE_FEED=interest); HTTP sends go to n1 and every subscriber sits on n2 (n1 alone with one instance), so n3 and n4 hold no subscriber of the busy conversations; the outbox relay leader is whichever node took the lock (named in each line). Each node's CPU comes from its /proc/<pid>/stat over the window.")
		n = append(n, instancesTopologyNote(b.cfg.Topologies))
	}
	return n
}

// plural is "1 instance" or "4 instances".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// instancesTopologyNote says how the instances scenario ran on the Redis topologies (each is
// described once, under the scaling table).
func instancesTopologyNote(tops []redisTopology) string {
	var names []string
	for _, t := range tops {
		names = append(names, t.Name)
	}
	return "Instances, Redis topologies (described under the Scaling table), one after the other, every count on each: " + strings.Join(names, ", ") +
		". The cluster is private (no persistence, as the single server), started before its first run and stopped after its last; its nodes reach it through REDIS_URL = its seeds. Meanwhile the single redis-server stays up without traffic, in the CPU group \"" + redisNotInUse +
		"\", outside CPU/msg. The single server keeps Nova's default of 1 partition, what a deployment on one Redis runs; the cluster needs more than 1."
}
