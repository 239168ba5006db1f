package main

import (
	"fmt"
	"strings"
)

// The report's Centrifugo parts: comparison rows in the main table (DESIGN.md's targets
// relative to Centrifugo), a "Centrifugo (same run)" section with its own figures next to
// Nova's, CPU lines and notes.

// novaShapeRuns are Nova's latency runs of the load shapes: the main run, then the others.
func (b *Bench) novaShapeRuns() []*LatencyResult {
	var out []*LatencyResult
	if b.res.Latency != nil {
		out = append(out, b.res.Latency)
	}
	for _, l := range b.res.LatencyShapes {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// sameLoad says whether a Nova run and a Centrifugo run had the same shape, rate and size.
func sameLoad(l *LatencyResult, c *CentrifugoRun) bool {
	return l != nil && c != nil && l.ShapeSpec == c.ShapeSpec && l.OfferedRate == c.OfferedRate && l.Conversations == c.Conversations
}

// novaRunFor is Nova's measured latency result of the same shape, rate and size as c, or nil.
func (b *Bench) novaRunFor(c *CentrifugoRun) *LatencyResult {
	for _, l := range b.novaShapeRuns() {
		if sameLoad(l, c) && l.Error == "" && l.Delivery.Count > 0 {
			return l
		}
	}
	return nil
}

// centrifugoRunFor is Centrifugo's run of the same shape, rate and size as l, or nil.
func (b *Bench) centrifugoRunFor(l *LatencyResult) *CentrifugoRun {
	if c := b.res.Centrifugo; c != nil {
		for _, r := range c.Runs {
			if sameLoad(l, r) {
				return r
			}
		}
	}
	return nil
}

// centrifugoNotMeasured is the main table's row when Centrifugo did not run, or nil.
func (b *Bench) centrifugoNotMeasured() []Row {
	c := b.res.Centrifugo
	if c == nil || (c.NotRun == "" && c.Error == "") {
		return nil
	}
	why := c.NotRun
	if why == "" {
		why = c.Error
	}
	return []Row{{"  vs Centrifugo v" + centrifugoVersion + " (same run)", "NOT MEASURED", "<= 2x / 3x", "Centrifugo: " + firstLine(why), blank, info}}
}

// comparisonRows compare one Nova run with Centrifugo's of the same shape: p50 within 2x,
// p99 within 3x, CPU per delivered message (every server process) within 1.5x. With the durable
// floor (the paced pgbench baseline) they also show how much of Nova's CPU per message is
// Postgres, against what one durable one-row commit per message costs it at the same rate, and
// Nova's CPU without that floor against Centrifugo's, which stores nothing durably.
func comparisonRows(l *LatencyResult, r *CentrifugoRun, floor *PGBenchResult) []Row {
	if l == nil || r == nil || l.Error != "" || r.Error != "" || l.Delivery.Count == 0 || r.Delivery.Count == 0 {
		return nil
	}
	complete := l.Lost == 0 && r.Lost == 0 && l.Skipped == 0 && r.Skipped == 0
	fig := fmt.Sprintf("  vs Centrifugo (%s, %d/s): send->deliver %%s", r.Shape, r.OfferedRate)
	p50, p99 := l.Delivery.P50/r.Delivery.P50, l.Delivery.P99/r.Delivery.P99
	rows := []Row{
		{fmt.Sprintf(fig, "p50"), fms(l.Delivery.P50), "<= 2x Centrifugo", "Centrifugo " + fms(r.Delivery.P50), fx(p50), verdict(complete && p50 <= 2)},
		{fmt.Sprintf(fig, "p99"), fms(l.Delivery.P99), "<= 3x Centrifugo", "Centrifugo " + fms(r.Delivery.P99), fx(p99), verdict(complete && p99 <= 3)},
	}
	if l.StartLag.Count > 0 && r.StartLag.Count > 0 {
		// the load generator's own lateness is in both latencies; it should be alike and small
		rows = append(rows, Row{"    sends started late by the load generator, p50 / p99", fms(l.StartLag.P50) + " / " + fms(l.StartLag.P99), blank,
			"Centrifugo " + fms(r.StartLag.P50) + " / " + fms(r.StartLag.P99), blank, info})
	}
	if l.AfterAnswer.Count > 0 && r.AfterAnswer.Count > 0 {
		// what the tail is made of: the time to the send's answer, and delivery after it
		rows = append(rows,
			Row{"    send's answer (201) p50 / p99, from intended time", fms(l.HTTP.P50) + " / " + fms(l.HTTP.P99), blank,
				"Centrifugo " + fms(r.HTTP.P50) + " / " + fms(r.HTTP.P99), blank, info},
			Row{"    delivered after the answer p50 / p99 (arrived before it)", afterAnswerCell(l.AfterAnswer, l.BeforeAnswer), blank,
				"Centrifugo " + afterAnswerCell(r.AfterAnswer, r.BeforeAnswer), blank, info})
	}
	nova := cpuPerMessageMs(l.CPU, novaServerGroups, l.DeliveredRate)
	if nova > 0 && r.CPUPerMsgMs > 0 {
		ratio := nova / r.CPUPerMsgMs
		rows = append(rows, Row{fmt.Sprintf("  vs Centrifugo (%s): CPU per delivered msg, all server processes", r.Shape),
			fmt.Sprintf("%.3f ms", nova), "<= 1.5x Centrifugo", fmt.Sprintf("Centrifugo %.3f ms", r.CPUPerMsgMs), fx(ratio), verdict(ratio <= 1.5)})
		if f := floor.PostgresMsPerRow(); f > 0 && floor.Rate == r.OfferedRate {
			pg := cpuPerMessageMs(l.CPU, []string{pgBenchDB}, l.DeliveredRate)
			rows = append(rows,
				Row{"    of which Postgres", fmt.Sprintf("%.3f ms", pg), blank,
					fmt.Sprintf("durable floor %.3f ms (pgbench one row/tx at %d/s)", f, floor.Rate), fx(pg / f), info},
				Row{"    Nova without the durable floor", fmt.Sprintf("%.3f ms", nova-f), blank,
					fmt.Sprintf("Centrifugo %.3f ms", r.CPUPerMsgMs), fx((nova - f) / r.CPUPerMsgMs), info})
		}
	}
	// how often the server processes' threads were put on a core per message: each is a
	// context switch, which a virtual machine's kernel can make dear (docs/BENCHMARKS.md, AE)
	nv := perMessage(l.CPU, slicesPrefix, novaServerGroups, l.DeliveredRate)
	cv := perMessage(r.CPU, slicesPrefix, centrifugoServerGroups, r.DeliveredRate)
	if nv > 0 && cv > 0 {
		rows = append(rows, Row{"    times put on a core per delivered msg, all server processes", fmt.Sprintf("%.1f", nv), blank,
			fmt.Sprintf("Centrifugo %.1f", cv), fx(nv / cv), info})
	}
	return rows
}

// durableFloor is the paced pgbench baseline of this run, or nil.
func (b *Bench) durableFloor() *PGBenchResult {
	if b.res.Baselines == nil {
		return nil
	}
	return b.res.Baselines.PGPaced
}

// centrifugoTable is the section's table: each shape's figures, Nova's next to them where
// Nova ran the same shape (ratio = Nova / Centrifugo).
func (b *Bench) centrifugoTable() []Row {
	c := b.res.Centrifugo
	var rows []Row
	add := func(r Row) { rows = append(rows, r) }
	for _, r := range c.Runs {
		head := fmt.Sprintf("%s, %d/s, %d ch, %s->%s", r.Shape, r.OfferedRate, r.Conversations, r.PublishNode, r.SubscriberNode)
		if r.Error != "" {
			add(Row{head, fail, blank, firstLine(r.Error), blank, fail})
			continue
		}
		l := b.novaRunFor(r)
		ratio := func(nv, cv float64) string {
			if l == nil || nv <= 0 || cv <= 0 {
				return blank
			}
			return fx(nv / cv)
		}
		for _, p := range []struct {
			name   string
			cv, nv float64
		}{
			{"p50", r.Delivery.P50, pick(l, func(l *LatencyResult) float64 { return l.Delivery.P50 })},
			{"p90", r.Delivery.P90, pick(l, func(l *LatencyResult) float64 { return l.Delivery.P90 })},
			{"p99", r.Delivery.P99, pick(l, func(l *LatencyResult) float64 { return l.Delivery.P99 })},
			{"max", r.Delivery.Max, pick(l, func(l *LatencyResult) float64 { return l.Delivery.Max })},
		} {
			m := fms(p.cv)
			if r.Delivery.Count == 0 {
				m = "nothing delivered"
			}
			bl := blank
			if l != nil && p.nv > 0 {
				bl = "Nova " + fms(p.nv)
			}
			add(Row{head + ": send->deliver " + p.name, m, blank, bl, ratio(p.nv, p.cv), info})
		}
		add(Row{"  publishes ok / errors / skipped late", fmt.Sprintf("%d / %d / %d", r.SentOK, r.SendErrors, r.Skipped), blank, blank, blank,
			verdict(r.SendErrors == 0 && r.Skipped == 0)})
		add(Row{"  received / lost / order violations", fmt.Sprintf("%d / %d / %d", r.Received, r.Lost, r.OrderViolations), "- / 0 / 0", blank, blank,
			verdict(r.Lost == 0 && r.OrderViolations == 0)})
		add(Row{"  HTTP publish response p50 / p99 (from intended time)", fms(r.HTTP.P50) + " / " + fms(r.HTTP.P99), blank, blank, blank, info})
		nv := pick(l, func(l *LatencyResult) float64 { return cpuPerMessageMs(l.CPU, novaServerGroups, l.DeliveredRate) })
		bl := blank
		if l != nil && nv > 0 {
			bl = fmt.Sprintf("Nova %.3f ms (nova+pg+redis)", nv)
		}
		add(Row{"  CPU per delivered msg (centrifugo+redis)", fmt.Sprintf("%.3f ms", r.CPUPerMsgMs), blank, bl, ratio(nv, r.CPUPerMsgMs), info})
		if r.SubscriberError != "" {
			add(Row{"  a subscriber connection ended early", firstLine(r.SubscriberError), blank, blank, blank, miss})
		}
	}
	return rows
}

func pick(l *LatencyResult, f func(*LatencyResult) float64) float64 {
	if l == nil {
		return 0
	}
	return f(l)
}

// centrifugoSection is the report's "Centrifugo (same run)" part.
func (b *Bench) centrifugoSection() string {
	c := b.res.Centrifugo
	if c == nil {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("Centrifugo (same run): v" + c.Version)
	switch {
	case c.NotRun != "":
		sb.WriteString(": NOT RUN, no comparison in this report: " + c.NotRun + "\n")
		return sb.String()
	case c.Error != "":
		sb.WriteString(": ERROR: " + c.Error + "\n")
		return sb.String()
	case len(c.Runs) == 0:
		sb.WriteString(" is installed (" + c.Install + ") but did not run: the run stopped before it (see the errors)\n")
		return sb.String()
	}
	fmt.Fprintf(&sb, ", %s; %s (%s)\n", c.Setup, c.Binary, c.Install)
	c.Table = b.centrifugoTable()
	if len(c.Table) > 0 {
		sb.WriteString(formatTable(c.Table))
	}
	for _, r := range c.Runs {
		if r.Error == "" {
			fmt.Fprintf(&sb, "  %s: %s, %d subscriber connections on %s, HTTP publishes to %s\n", r.Shape, r.ShapeDescription, r.SubscriberConns, r.SubscriberNode, r.PublishNode)
		}
	}
	for _, w := range c.Warnings {
		sb.WriteString("  node log: " + w + "\n")
	}
	return sb.String()
}

// centrifugoCPULines are the CPU section's lines of the Centrifugo runs.
func (b *Bench) centrifugoCPULines() [][2]string {
	var out [][2]string
	if c := b.res.Centrifugo; c != nil {
		for _, r := range c.Runs {
			if len(r.CPU) > 0 {
				out = append(out, [2]string{r.Name, r.CPU.String()})
			}
		}
	}
	return out
}

func (b *Bench) centrifugoNotes() []string {
	c := b.res.Centrifugo
	if c == nil || c.NotRun != "" || c.Error != "" || len(c.Runs) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("Centrifugo v%s runs the same paced workload as Nova's latency run (same rate, channels, warm-up and window, latency from each intended send time, same probe body): HTTP publishes (POST /api/publish) to %s, JSON-protocol WebSocket subscribers on %s; each shape runs on Centrifugo right after it ran on Nova, and each system's nodes are idle during the other's runs. CPU per delivered message sums every server process: Centrifugo's nodes and Redis; Nova's nodes, its database's Postgres backends and Redis.",
		centrifugoVersion, orDash(firstPublishNode(c)), orDash(firstSubscriberNode(c)))}
}

func firstPublishNode(c *CentrifugoResult) string {
	for _, r := range c.Runs {
		if r.PublishNode != "" {
			return r.PublishNode
		}
	}
	return ""
}

func firstSubscriberNode(c *CentrifugoResult) string {
	for _, r := range c.Runs {
		if r.SubscriberNode != "" {
			return r.SubscriberNode
		}
	}
	return ""
}

// centrifugoErrors are failures after a successful installation (nodes would not start, a
// run could not run): scenario errors like any other. A failed installation is not one.
func (r *Results) centrifugoErrors() []string {
	c := r.Centrifugo
	if c == nil {
		return nil
	}
	var out []string
	if c.Error != "" {
		out = append(out, "centrifugo: "+c.Error)
	}
	for _, run := range c.Runs {
		if run.Error != "" {
			out = append(out, run.Name+": "+run.Error)
		}
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// afterAnswerCell is "p50 / p99 (share arrived before the answer)" of a run's delivery after
// its send's answer.
func afterAnswerCell(after Summary, before int64) string {
	share := "-"
	if n := before + after.Count; n > 0 {
		share = fmt.Sprintf("%.1f %%", 100*float64(before)/float64(n))
	}
	return fmt.Sprintf("%s / %s (%s)", fms(after.P50), fms(after.P99), share)
}
