package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nova-chat/nova/application/monitoring"
)

// latencyBuckets (seconds) span a Postgres commit on a quiet machine to a send stuck behind an outage.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

var transports = []string{"http", "ws"}

// Metrics is what the driving ports report from their hot paths: sends and live deliveries.
// Each call costs a few atomic adds. It implements monitoring.Observer.
type Metrics struct {
	stored  *prometheus.CounterVec
	sends   *prometheus.CounterVec
	send    *prometheus.HistogramVec
	deliver prometheus.Histogram
}

var _ monitoring.Observer = (*Metrics)(nil)

func NewMetrics() *Metrics {
	m := &Metrics{
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nova_messages_stored_total",
			Help: "Messages stored by sends to this instance (new messages only, not retried client_msg_ids), by transport."},
			[]string{"transport"}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nova_sends_total",
			Help: "Send requests that reached the PostMessage command, by transport and outcome (stored, repeat, rejected: the client's fault, failed: ours)."},
			[]string{"transport", "outcome"}),
		send: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "nova_send_duration_seconds",
			Help:    "Time to handle a successful send (stored or repeat), from the request reaching the port to the answer being ready, by transport.",
			Buckets: latencyBuckets}, []string{"transport"}),
		deliver: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nova_send_to_deliver_seconds",
			Help:    "Time from a message's created_at to its frame being queued to a subscribed WebSocket on this instance (live fan-out deliveries only; across machines it includes clock skew).",
			Buckets: latencyBuckets}),
	}
	for _, t := range transports { // present from the start, at 0
		m.stored.WithLabelValues(t)
		m.send.WithLabelValues(t)
		for _, o := range []monitoring.SendOutcome{monitoring.SendStored, monitoring.SendRepeat, monitoring.SendRejected, monitoring.SendFailed} {
			m.sends.WithLabelValues(t, string(o))
		}
	}
	return m
}

func (m *Metrics) SendHandled(transport string, took time.Duration, outcome monitoring.SendOutcome) {
	m.sends.WithLabelValues(transport, string(outcome)).Inc()
	switch outcome {
	case monitoring.SendStored:
		m.stored.WithLabelValues(transport).Inc()
		m.send.WithLabelValues(transport).Observe(took.Seconds())
	case monitoring.SendRepeat:
		m.send.WithLabelValues(transport).Observe(took.Seconds())
	}
}

func (m *Metrics) LiveQueued(sinceCreated time.Duration) {
	m.deliver.Observe(max(sinceCreated, 0).Seconds())
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.stored, m.sends, m.send, m.deliver}
}

// Stored is the number of messages stored through this instance, over all transports.
func (m *Metrics) Stored() int64 {
	var n float64
	for _, t := range transports {
		n += value(m.stored.WithLabelValues(t))
	}
	return int64(n)
}

// Failed is the number of sends that failed on our side, over all transports.
func (m *Metrics) Failed() int64 {
	var n float64
	for _, t := range transports {
		n += value(m.sends.WithLabelValues(t, string(monitoring.SendFailed)))
	}
	return int64(n)
}

// Histogram is a latency histogram as the dashboard reads it: cumulative counts per upper bound.
type Histogram struct {
	Bounds     []float64 `json:"bounds"`     // upper bounds in seconds; +Inf is implied after the last
	Cumulative []uint64  `json:"cumulative"` // observations <= each bound
	Count      uint64    `json:"count"`
	Sum        float64   `json:"sum"`
}

// SendLatency merges the send histograms of both transports.
func (m *Metrics) SendLatency() Histogram {
	var h Histogram
	for _, t := range transports {
		h = h.add(histogramOf(m.send.WithLabelValues(t).(prometheus.Metric)))
	}
	return h
}

// DeliverLatency is the send-to-deliver histogram.
func (m *Metrics) DeliverLatency() Histogram { return histogramOf(m.deliver) }

func histogramOf(metric prometheus.Metric) Histogram {
	var d dto.Metric
	if err := metric.Write(&d); err != nil || d.Histogram == nil {
		return Histogram{}
	}
	h := Histogram{Count: d.Histogram.GetSampleCount(), Sum: d.Histogram.GetSampleSum()}
	for _, b := range d.Histogram.Bucket {
		h.Bounds = append(h.Bounds, b.GetUpperBound())
		h.Cumulative = append(h.Cumulative, b.GetCumulativeCount())
	}
	return h
}

func (h Histogram) add(o Histogram) Histogram {
	if h.Bounds == nil {
		return o
	}
	for i := range h.Cumulative {
		if i < len(o.Cumulative) {
			h.Cumulative[i] += o.Cumulative[i]
		}
	}
	h.Count += o.Count
	h.Sum += o.Sum
	return h
}

func value(c prometheus.Metric) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return 0
}
