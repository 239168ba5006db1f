package admin

import (
	"net"
	"net/http"
	"net/http/pprof"
)

// RegisterPprof mounts the Go profiler under /debug/pprof/.
func RegisterPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// PprofOnAdmin decides where the profiler is served. It exposes memory contents and stack
// traces, so it never shares a listener that is reachable from elsewhere (the one Prometheus
// scrapes, once NOVA_ADMIN_ADDR is opened up): with NOVA_PPROF_ADDR it has a listener of its
// own; without, it stays on the admin listener (PROTOCOL.md section 1) only while that one is
// bound to loopback, and is off otherwise.
func PprofOnAdmin(adminAddr, pprofAddr string) bool {
	if pprofAddr != "" {
		return false
	}
	host, _, err := net.SplitHostPort(adminAddr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
