package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMessageSeq(t *testing.T) {
	frame := []byte(`{"type":"message","message":{"id":"x","conversation_id":"c","seq":1234,"stream_id":"1234-0","body":{"k":7}}}`)
	if seq, ok := messageSeq(frame); !ok || seq != 1234 {
		t.Fatalf("messageSeq = %d, %v", seq, ok)
	}
	if _, ok := messageSeq([]byte(`{"type":"subscribed","conversation_id":"c","from_seq":0,"last_seq":9}`)); ok {
		t.Fatal("a subscribed frame is not a message")
	}
}

func TestHistMergeAndSummary(t *testing.T) {
	a, b := newHist(), newHist()
	for i := 1; i <= 100; i++ {
		a.Record(time.Duration(i) * time.Millisecond)
		b.Record(time.Duration(i+100) * time.Millisecond)
	}
	a.merge(b)
	s := a.Summary(true)
	if s.Count != 200 {
		t.Fatalf("count %d", s.Count)
	}
	if s.P50 < 99 || s.P50 > 101 || s.Max < 199.9 || s.Max > 200.2 {
		t.Fatalf("p50 %.2f max %.2f", s.P50, s.Max)
	}
	if len(s.Curve) == 0 || s.Curve[len(s.Curve)-1].Percentile != 100 {
		t.Fatalf("curve %v", s.Curve)
	}
}

func TestMergeLatencyRounds(t *testing.T) {
	mk := func(ms int) *LatencyResult {
		h := newHist()
		h.Record(time.Duration(ms) * time.Millisecond)
		return &LatencyResult{SentOK: 1, Received: 1, MeasureS: 5, SendRate: 100, delivery: h, http: newHist()}
	}
	m := mergeLatency([]*LatencyResult{mk(1), mk(3)})
	if m.Rounds != 2 || m.SentOK != 2 || m.MeasureS != 10 || m.SendRate != 100 || m.Delivery.Count != 2 {
		t.Fatalf("merged %+v", m)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestChartIsWellFormedSVG(t *testing.T) {
	s := Summary{Count: 1000, Curve: []CurvePoint{{0, 1}, {50, 2}, {99, 9}, {99.9, 20}, {100, 25}}}
	charts := []chart{
		percentileChart("latency <&> test", []series{percentileSeries("a & b", s)}),
		{Title: "lines", Series: []series{{Name: "x", X: []float64{0, 1, 2}, Y: []float64{0, 5, 3}, Dots: true}}},
		{Title: "empty"},
	}
	for _, c := range charts {
		dec := xml.NewDecoder(strings.NewReader(c.svg()))
		for {
			_, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: not well-formed XML: %v", c.Title, err)
			}
		}
	}
}

func TestTableAlignsColumns(t *testing.T) {
	out := formatTable([]Row{{"a", "1 ms", "<= 2 ms", "-", "-", pass}, {"longer figure", "10 ms", "-", "-", "-", miss}})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("lines: %q", lines)
	}
	col := strings.Index(lines[0], "| measured")
	for _, l := range lines[2:] {
		if strings.Index(l, "|") != col {
			t.Fatalf("misaligned:\n%s", out)
		}
	}
}

// The paced baseline's latency comes from pgbench's per-transaction logs, one per thread, and
// counts every line's latency (third field, µs).
func TestPgbenchLogLatencyReadsEveryThreadsLog(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "pgbench-paced")
	var first, second strings.Builder
	for i := range 99 {
		fmt.Fprintf(&first, "0 %d 500 0 1796116308 %d 20\n", i, i)
	}
	fmt.Fprintf(&second, "1 0 45000 0 1796116309 0 42000\n")
	if err := os.WriteFile(prefix+".2870", []byte(first.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prefix+".2870.1", []byte(second.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := pgbenchLogLatency(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 100 || got.P50 < 0.49 || got.P50 > 0.51 || got.Max < 44.9 || got.Max > 45.1 {
		t.Fatalf("got %+v, want 100 transactions, p50 0.5 ms, max 45 ms", got)
	}
	if _, err := pgbenchLogLatency(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("no log files: want an error")
	}
}

// A shape whose senders completed clearly fewer sends than offered is flagged: its latency is
// then its own queue.
func TestBehindFlagsASenderThatCouldNotKeepTheRate(t *testing.T) {
	for _, c := range []struct {
		done float64
		want bool
	}{{1000, false}, {990, false}, {965, true}, {859, true}, {0, false}} {
		if got := behind(&LatencyResult{OfferedRate: 1000, SendRate: c.done}); got != c.want {
			t.Errorf("behind(%v/s of 1000/s) = %v, want %v", c.done, got, c.want)
		}
	}
}
