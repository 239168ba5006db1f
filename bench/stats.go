package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Hist is a concurrency-safe HDR histogram of durations, recorded in microseconds
// (1 µs to 5 min, 3 significant digits).
type Hist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newHist() *Hist { return &Hist{h: hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)} }

func (h *Hist) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	h.mu.Lock()
	_ = h.h.RecordValue(us) // values beyond 5 min are clamped away; nothing takes that long
	h.mu.Unlock()
}

// merge adds o's values to h; a nil o (a result without that histogram) adds nothing.
func (h *Hist) merge(o *Hist) {
	if o == nil {
		return
	}
	o.mu.Lock()
	c := o.h.Export()
	o.mu.Unlock()
	h.mu.Lock()
	h.h.Merge(hdrhistogram.Import(c))
	h.mu.Unlock()
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	// Curve is the percentile curve: (percentile, ms) pairs, denser toward the tail.
	Curve []CurvePoint `json:"curve,omitempty"`
}

type CurvePoint struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

func (h *Hist) Summary(withCurve bool) Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	s := Summary{Count: h.h.TotalCount()}
	if s.Count == 0 {
		return s
	}
	s.Mean = h.h.Mean() / 1000
	s.P50, s.P90, s.P99 = ms(h.h.ValueAtQuantile(50)), ms(h.h.ValueAtQuantile(90)), ms(h.h.ValueAtQuantile(99))
	s.P999, s.Max = ms(h.h.ValueAtQuantile(99.9)), ms(h.h.Max())
	if withCurve {
		// x = -log10(1-p): 0 is p0, 1 is p90, 2 is p99, 3 is p99.9, ... up to what the count resolves.
		maxX := math.Min(5, math.Log10(float64(s.Count)))
		for x := 0.0; x <= maxX+1e-9; x += 0.05 {
			p := 100 * (1 - math.Pow(10, -x))
			s.Curve = append(s.Curve, CurvePoint{Percentile: p, Ms: ms(h.h.ValueAtQuantile(p))})
		}
		s.Curve = append(s.Curve, CurvePoint{Percentile: 100, Ms: s.Max})
	}
	return s
}

// median of a few durations, in milliseconds.
func medianMs(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	c := append([]time.Duration(nil), ds...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	m := c[len(c)/2]
	if len(c)%2 == 0 {
		m = (c[len(c)/2-1] + c[len(c)/2]) / 2
	}
	return msOf(m)
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Progress prints timestamped progress lines while the bench runs.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *Progress) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start).Round(100 * time.Millisecond)
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", el.Seconds(), fmt.Sprintf(format, args...))
}

// Every calls line every interval until the returned stop is called, printing what it returns.
func (p *Progress) Every(interval time.Duration, line func() string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.Printf("%s", line())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// Brief is "p50 / p99 / max" of s ("-" for nil).
func (s *Summary) Brief() string {
	if s == nil {
		return "-"
	}
	return fms(s.P50) + " / " + fms(s.P99) + " / " + fms(s.Max)
}
