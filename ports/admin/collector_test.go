package admin

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nova-chat/nova/application/monitoring"
)

type oneFanoutStream struct{}

func (oneFanoutStream) Streams(context.Context, int) ([]monitoring.Stream, error) {
	return []monitoring.Stream{{Key: "nova:fanout", Kind: monitoring.KindFanout, Exists: true, Length: 3, FirstID: "1-0", LastID: "3-0",
		Groups: []monitoring.Group{{Name: "offline", Pending: 1, Lag: 0, LastDeliveredID: "3-0", OldestPendingIdle: time.Second,
			Consumers: []monitoring.Consumer{{Name: "n1", Pending: 1, Idle: time.Second}}}}}}, nil
}

type someOutbox struct{}

func (someOutbox) Outbox(context.Context) (monitoring.Outbox, error) {
	return monitoring.Outbox{Rows: 2, OldestAge: time.Second, DeadRows: 1}, nil
}

// A pedantic registry refuses a metric the collector sends without describing it first (which
// the default registry lets pass): a new counter added to Collect but not to Describe.
func TestEveryMetricCollectedIsDescribed(t *testing.T) {
	c := &collector{ctx: context.Background(), instance: "n1",
		counters: func() Counters {
			return Counters{Claims: map[string]int64{"offline": 1}, Helped: map[string]int64{"offline": 1}, LiveRedirected: 1}
		},
		inspector: monitoring.NewInspector(oneFanoutStream{}, someOutbox{}, monitoring.InspectorOptions{})}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		seen[f.GetName()] = true
	}
	for _, name := range []string{"nova_live_connections_redirected_total", "nova_outbox_backlog_rows", "nova_consumer_pending"} {
		if !seen[name] {
			t.Errorf("%s not gathered", name)
		}
	}
}
