package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTheProfilerNeverSharesAListenerReachableFromElsewhere(t *testing.T) {
	cases := []struct {
		admin, pprof string
		onAdmin      bool
	}{
		{"127.0.0.1:9090", "", true}, // the default: loopback, as PROTOCOL.md lists it
		{"localhost:9090", "", true},
		{"[::1]:9090", "", true},
		{":9090", "", false}, // every interface: Prometheus scrapes it from elsewhere
		{"0.0.0.0:9090", "", false},
		{"10.0.0.5:9090", "", false},
		{"127.0.0.1:9090", "127.0.0.1:6060", false}, // a listener of its own
	}
	for _, c := range cases {
		if got := PprofOnAdmin(c.admin, c.pprof); got != c.onAdmin {
			t.Errorf("admin %q, pprof %q: on the admin listener = %v, want %v", c.admin, c.pprof, got, c.onAdmin)
		}
	}

	// and the profiler's routes answer where they are registered
	mux := http.NewServeMux()
	RegisterPprof(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/debug/pprof/: %d", rec.Code)
	}
}
