package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// A small hand-written SVG line chart: enough for percentile curves and load curves.

type series struct {
	Name   string
	X, Y   []float64
	Dashed bool
	Dots   bool
	Color  int // 1 + index into palette; 0: by the series' position
}

type tick struct {
	V     float64
	Label string
}

type chart struct {
	Title, XLabel, YLabel string
	Series                []series
	XTicks                []tick // fixed ticks; nil means computed
	LogY                  bool
	XMin, XMax            float64 // both 0: from the data
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"}

const (
	chartW, chartH                   = 820, 480
	padL, padR, padT, padB           = 70, 200, 46, 56
	plotW, plotH                     = chartW - padL - padR, chartH - padT - padB
	fontFamily                       = "Helvetica, Arial, sans-serif"
	axisColor, gridColor, textColour = "#333", "#ddd", "#222"
)

func (c chart) svg() string {
	sc := c.scales()
	var sb strings.Builder
	c.writeFrame(&sb, sc)
	c.writeSeries(&sb, sc)
	sb.WriteString("</svg>\n")
	return sb.String()
}

// scale maps data to the plot area, with the ticks of both axes.
type scale struct {
	xmin, xmax     float64
	xmap, ymap     func(float64) float64
	xticks, yticks []tick
}

// scales fits the axes to the data (or to XMin/XMax), linear or logarithmic in y.
func (c chart) scales() scale {
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for i := range s.X {
			if c.LogY && s.Y[i] <= 0 {
				continue
			}
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymin, ymax = math.Min(ymin, s.Y[i]), math.Max(ymax, s.Y[i])
		}
	}
	if c.XMin != 0 || c.XMax != 0 {
		xmin, xmax = c.XMin, c.XMax
	}
	if math.IsInf(xmin, 0) { // no data
		xmin, xmax, ymin, ymax = 0, 1, 0.1, 1
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	var yticks []tick
	var ymap func(float64) float64
	if c.LogY {
		lo, hi := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
		if hi == lo {
			hi = lo + 1
		}
		ymin, ymax = math.Pow(10, lo), math.Pow(10, hi)
		for e := lo; e <= hi; e++ {
			for _, m := range []float64{1, 2, 5} {
				if v := m * math.Pow(10, e); v <= ymax*1.0001 {
					yticks = append(yticks, tick{v, trimNum(v)})
				}
			}
		}
		ymap = func(v float64) float64 {
			v = math.Max(v, ymin)
			return padT + plotH - plotH*(math.Log10(v)-lo)/(hi-lo)
		}
	} else {
		ymin = 0
		step := niceStep(ymax / 5)
		ymax = math.Ceil(ymax/step) * step
		if ymax == 0 {
			ymax = 1
		}
		for v := 0.0; v <= ymax*1.0001; v += step {
			yticks = append(yticks, tick{v, trimNum(v)})
		}
		ymap = func(v float64) float64 { return padT + plotH - plotH*(v-ymin)/(ymax-ymin) }
	}
	xticks := c.XTicks
	if xticks == nil {
		step := niceStep((xmax - xmin) / 6)
		for v := math.Ceil(xmin/step) * step; v <= xmax*1.0001; v += step {
			xticks = append(xticks, tick{v, trimNum(v)})
		}
	}
	xmap := func(v float64) float64 { return padL + plotW*(v-xmin)/(xmax-xmin) }
	return scale{xmin: xmin, xmax: xmax, xmap: xmap, ymap: ymap, xticks: xticks, yticks: yticks}
}

// writeFrame writes the canvas, title, grid, tick labels and axis labels.
func (c chart) writeFrame(sb *strings.Builder, sc scale) {
	xmin, xmax, xmap, ymap := sc.xmin, sc.xmax, sc.xmap, sc.ymap
	fmt.Fprintf(sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH, fontFamily)
	fmt.Fprintf(sb, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(sb, `<text x="%d" y="26" font-size="16" font-weight="bold" fill="%s">%s</text>`+"\n", padL, textColour, esc(c.Title))
	for _, t := range sc.yticks {
		y := ymap(t.V)
		fmt.Fprintf(sb, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", padL, y, padL+plotW, y, gridColor)
		fmt.Fprintf(sb, `<text x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", padL-6, y+4, textColour, esc(t.Label))
	}
	for _, t := range sc.xticks {
		if t.V < xmin-1e-9 || t.V > xmax+1e-9 {
			continue
		}
		x := xmap(t.V)
		fmt.Fprintf(sb, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, padT, x, padT+plotH, gridColor)
		fmt.Fprintf(sb, `<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s</text>`+"\n", x, padT+plotH+18, textColour, esc(t.Label))
	}
	fmt.Fprintf(sb, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", padL, padT, plotW, plotH, axisColor)
	fmt.Fprintf(sb, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>`+"\n", padL+plotW/2, chartH-12, textColour, esc(c.XLabel))
	fmt.Fprintf(sb, `<text x="18" y="%d" text-anchor="middle" fill="%s" transform="rotate(-90 18 %d)">%s</text>`+"\n",
		padT+plotH/2, textColour, padT+plotH/2, esc(c.YLabel))
}

// writeSeries writes each series' line (and dots) and its legend entry.
func (c chart) writeSeries(sb *strings.Builder, sc scale) {
	xmap, ymap := sc.xmap, sc.ymap
	for i, s := range c.Series {
		color := palette[i%len(palette)]
		if s.Color > 0 {
			color = palette[(s.Color-1)%len(palette)]
		}
		var pts []string
		for j := range s.X {
			if c.LogY && s.Y[j] <= 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xmap(s.X[j]), ymap(s.Y[j])))
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6,4"`
		}
		if len(pts) > 0 {
			fmt.Fprintf(sb, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", color, dash, strings.Join(pts, " "))
		}
		if s.Dots {
			for _, p := range pts {
				x, y, _ := strings.Cut(p, ",")
				fmt.Fprintf(sb, `<circle cx="%s" cy="%s" r="3.5" fill="%s"/>`+"\n", x, y, color)
			}
		}
		ly := padT + 10 + i*20
		fmt.Fprintf(sb, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n",
			padL+plotW+14, ly, padL+plotW+38, ly, color, dash)
		fmt.Fprintf(sb, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", padL+plotW+44, ly+4, textColour, esc(s.Name))
	}
}

func esc(s string) string { return html.EscapeString(s) }

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func trimNum(v float64) string {
	if v >= 1000 {
		return thousands(v)
	}
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// percentileSeries maps a percentile curve onto x = -log10(1 - p), the usual HDR plot.
func percentileSeries(name string, s Summary) series {
	out := series{Name: name}
	for _, p := range s.Curve {
		if p.Percentile >= 100 {
			continue
		}
		out.X = append(out.X, -math.Log10(1-p.Percentile/100))
		out.Y = append(out.Y, p.Ms)
	}
	return out
}

var percentileTicks = []tick{{0, "0%"}, {math.Log10(2), "50%"}, {1, "90%"}, {2, "99%"}, {3, "99.9%"}, {4, "99.99%"}, {5, "99.999%"}}

func percentileChart(title string, ss []series) chart {
	xmax := 1.0
	for _, s := range ss {
		for _, x := range s.X {
			xmax = math.Max(xmax, math.Ceil(x))
		}
	}
	return chart{Title: title, XLabel: "percentile", YLabel: "send-to-deliver latency (ms, log scale)", Series: ss,
		XTicks: percentileTicks, LogY: true, XMin: 0, XMax: xmax}
}

// writeCharts writes the SVG charts and returns their paths.
// namedChart is one chart and the file it goes to.
type namedChart struct {
	file string
	chart
}

// writeCharts writes every chart the run has data for into the output folder.
func (b *Bench) writeCharts() ([]string, error) {
	charts := append(append(b.loadCharts(), b.abCharts()...), b.scalingCharts()...)
	if ss := b.shapeSeries(); len(ss) > 1 {
		title := fmt.Sprintf("Send-to-deliver latency by load shape, %d msg/s: Nova (solid) and Centrifugo (dashed)", b.cfg.Rate)
		charts = append(charts, namedChart{"latency_shapes.svg", percentileChart(title, ss)})
	}
	var written []string
	for _, c := range charts {
		path := filepath.Join(b.cfg.Out, c.file)
		if err := os.WriteFile(path, []byte(c.svg()), 0o644); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

// loadCharts are the latency percentiles by offered load, throughput and latency against the
// offered load, and the main run's latency per second.
func (b *Bench) loadCharts() []namedChart {
	var ok []*LatencyResult
	for _, l := range b.loadRuns() {
		if l.Error == "" && l.Delivery.Count > 0 {
			ok = append(ok, l)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	var ss []series
	for _, l := range ok {
		ss = append(ss, percentileSeries(fmt.Sprintf("%d msg/s", l.OfferedRate), l.Delivery))
	}
	title := fmt.Sprintf("Nova send-to-deliver latency by offered load (%d nodes, %d conversations)", b.res.Instances, ok[0].Conversations)
	charts := []namedChart{{"latency_percentiles.svg", percentileChart(title, ss)}}

	offered := series{Name: "offered (ideal)", Dashed: true}
	sent := series{Name: "sends completed/s", Dots: true}
	deliv := series{Name: "delivered/s", Dots: true}
	p50 := series{Name: "p50", Dots: true}
	p99 := series{Name: "p99", Dots: true}
	for _, l := range ok {
		x := float64(l.OfferedRate)
		offered.X, offered.Y = append(offered.X, x), append(offered.Y, x)
		sent.X, sent.Y = append(sent.X, x), append(sent.Y, l.SendRate)
		deliv.X, deliv.Y = append(deliv.X, x), append(deliv.Y, l.DeliveredRate)
		p50.X, p50.Y = append(p50.X, x), append(p50.Y, l.Delivery.P50)
		p99.X, p99.Y = append(p99.X, x), append(p99.Y, l.Delivery.P99)
	}
	xmax := offered.X[len(offered.X)-1] * 1.1
	charts = append(charts, namedChart{"throughput_vs_offered.svg", chart{Title: "Nova throughput against offered load (open loop)",
		XLabel: "offered load (messages/s)", YLabel: "messages/s", Series: []series{offered, sent, deliv}, XMin: 0, XMax: xmax}})
	if main := b.res.Latency; main != nil && len(main.Timeline) > 0 {
		mean, worst := series{Name: "mean"}, series{Name: "max"}
		for _, p := range main.Timeline {
			if p.Delivered > 0 {
				mean.X, mean.Y = append(mean.X, float64(p.Second)), append(mean.Y, p.MeanMs)
				worst.X, worst.Y = append(worst.X, float64(p.Second)), append(worst.Y, p.MaxMs)
			}
		}
		charts = append(charts, namedChart{"latency_timeline.svg", chart{Title: fmt.Sprintf("Latency per second of the %d msg/s run (warm-up included)", main.OfferedRate),
			XLabel: "second of the run (by intended send time)", YLabel: "latency (ms, log scale)", Series: []series{mean, worst}, LogY: true}})
	}
	return append(charts, namedChart{"latency_vs_offered.svg", chart{Title: "Nova send-to-deliver latency against offered load",
		XLabel: "offered load (messages/s)", YLabel: "latency (ms, log scale)", Series: []series{p50, p99}, LogY: true, XMin: 0, XMax: xmax}})
}

// abCharts put the old fan-out reader's percentiles beside interest-based delivery's, per A/B rate.
func (b *Bench) abCharts() []namedChart {
	var charts []namedChart
	for _, rate := range []int{b.cfg.Rate, b.cfg.ABLowRate} {
		suffix := ""
		if rate != b.cfg.Rate {
			suffix = "@" + itoa(rate)
		}
		var ab []series
		if rate == b.cfg.Rate && b.res.Latency != nil && b.res.Latency.Error == "" && b.res.Latency.Delivery.Count > 0 {
			ab = append(ab, percentileSeries("main run (interest-based)", b.res.Latency.Delivery))
		}
		for _, l := range b.res.Sweep {
			if l.OfferedRate == rate && l.Error == "" && l.Delivery.Count > 0 {
				ab = append(ab, percentileSeries("main run (interest-based)", l.Delivery))
			}
		}
		for _, feed := range []string{"fanout", "interest"} {
			if l := b.res.AB[feed+suffix]; l != nil && l.Error == "" && l.Delivery.Count > 0 {
				ab = append(ab, percentileSeries(map[string]string{"fanout": "Fan-out reader (every instance, old)", "interest": "Interest-based (live channels)"}[feed], l.Delivery))
			}
		}
		if len(ab) > 1 {
			title := fmt.Sprintf("A/B: the fan-out reader vs interest-based delivery, %d msg/s", rate)
			charts = append(charts, namedChart{fmt.Sprintf("ab_latency_percentiles_%d.svg", rate), percentileChart(title, ab)})
		}
	}
	return charts
}

// shapeSeries are the percentile curves of every shape, Nova's solid and Centrifugo's dashed
// in the same colour.
func (b *Bench) shapeSeries() []series {
	var ss []series
	colors := map[loadShape]int{}
	color := func(sh loadShape) int {
		if _, ok := colors[sh]; !ok {
			colors[sh] = len(colors) + 1
		}
		return colors[sh]
	}
	for _, l := range b.novaShapeRuns() {
		if l.Error == "" && l.Delivery.Count > 0 {
			s := percentileSeries("Nova "+l.Shape, l.Delivery)
			s.Color = color(l.ShapeSpec)
			ss = append(ss, s)
		}
	}
	if c := b.res.Centrifugo; c != nil {
		for _, r := range c.Runs {
			if r.Error == "" && r.Delivery.Count > 0 {
				s := percentileSeries("Centrifugo "+r.Shape, r.Delivery)
				s.Color, s.Dashed = color(r.ShapeSpec), true
				ss = append(ss, s)
			}
		}
	}
	return ss
}
