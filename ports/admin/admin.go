// Package admin is the operators' port on the admin listener: /metrics for Prometheus, the
// /admin dashboard and its JSON API /admin/api/streams. All read the same Counters and
// inspection Snapshots.
package admin

import (
	"context"
	_ "embed"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nova-chat/nova/application/monitoring"
)

// InstanceID names this instance on the dashboard and in nova_instance_info.
type InstanceID string

// Admin serves the admin routes of one instance.
type Admin struct {
	instance  string
	counters  CounterSource
	inspector *monitoring.Inspector
	metrics   *Metrics
	registry  *prometheus.Registry
}

// NewRegistry is the instance's metrics registry, which other ports may register into (the
// messaging port adds Watermill's router metrics). Each instance has its own, so that several
// instances in one test process do not collide.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// New builds the admin port over reg. ctx bounds the inspections that scrapes trigger.
func New(ctx context.Context, instance InstanceID, reg *prometheus.Registry, counters CounterSource,
	inspector *monitoring.Inspector, metrics *Metrics) *Admin {
	if reg == nil || counters == nil || inspector == nil || metrics == nil {
		panic("admin.New: nil dependency")
	}
	reg.MustRegister(metrics.collectors()...)
	reg.MustRegister(&collector{ctx: ctx, instance: string(instance), counters: counters, inspector: inspector})
	return &Admin{instance: string(instance), counters: counters, inspector: inspector, metrics: metrics, registry: reg}
}

//go:embed dashboard.html
var dashboardHTML []byte

// Register adds /metrics, /admin and /admin/api/streams to the admin mux.
func (a *Admin) Register(mux *http.ServeMux) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /admin", a.dashboard)
	mux.HandleFunc("GET /admin/{$}", a.dashboard)
	mux.HandleFunc("GET /admin/api/streams", a.streams)
}

func (a *Admin) dashboard(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Everything is inline; nothing may be loaded from elsewhere.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
	_, _ = w.Write(dashboardHTML)
}
