package admin

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/nova-chat/nova/application/monitoring"
)

// streamsView is the JSON of /admin/api/streams: what the dashboard shows, for scripts too.
// Durations are in milliseconds; counters are totals since this instance started.
type streamsView struct {
	InstanceID    string         `json:"instance_id"`
	GeneratedAt   time.Time      `json:"generated_at"`
	InspectedAt   time.Time      `json:"inspected_at"`
	InspectionMs  float64        `json:"inspection_ms"`
	RelayLeader   bool           `json:"relay_leader"`
	RelayShards   int64          `json:"relay_shards"`
	Redis         healthView     `json:"redis"`
	Postgres      healthView     `json:"postgres"`
	Instances     []instanceView `json:"instances"`
	Streams       []streamView   `json:"streams"`
	Outbox        *outboxView    `json:"outbox"` // null while Postgres cannot be read
	Connections   int64          `json:"connections"`
	Subscriptions int64          `json:"subscriptions"`
	Counters      countersView   `json:"counters"`
	Latency       latencyView    `json:"latency"`
}

type healthView struct {
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
}

// instanceView is one instance as the fan-out stream's consumer groups know it.
type instanceView struct {
	ID     string  `json:"id"`
	Self   bool    `json:"self"`
	IdleMs float64 `json:"idle_ms"` // since it last read from any group
}

type streamView struct {
	Key           string      `json:"key"`
	Kind          string      `json:"kind"`
	Exists        bool        `json:"exists"`
	Length        int64       `json:"length"`
	FirstID       string      `json:"first_id"`
	LastID        string      `json:"last_id"`
	RecentEntries int         `json:"recent_entries,omitempty"`
	Groups        []groupView `json:"groups"`
}

type groupView struct {
	Name                string         `json:"name"`
	Pending             int64          `json:"pending"`
	Lag                 *int64         `json:"lag"` // null when Redis cannot tell
	LastDeliveredID     string         `json:"last_delivered_id"`
	OldestPendingIdleMs float64        `json:"oldest_pending_idle_ms"`
	Consumers           []consumerView `json:"consumers"`
}

type consumerView struct {
	Name    string  `json:"name"`
	Pending int64   `json:"pending"`
	IdleMs  float64 `json:"idle_ms"`
}

type outboxView struct {
	Backlog     int64   `json:"backlog"`
	OldestAgeMs float64 `json:"oldest_age_ms"`
	Dead        int64   `json:"dead"`
}

type countersView struct {
	Stored                int64            `json:"stored"`
	SendFailed            int64            `json:"send_failed"`
	Relayed               int64            `json:"relayed"`
	RelayDuplicates       int64            `json:"relay_duplicates"`
	RelayErrors           int64            `json:"relay_errors"`
	MovedAside            int64            `json:"moved_aside"`
	Delivered             int64            `json:"delivered"`
	DuplicatesDropped     int64            `json:"duplicates_dropped"`
	GapsFilled            int64            `json:"gaps_filled"`
	RecoveredFromRedis    int64            `json:"recovered_from_redis"`
	RecoveredFromPostgres int64            `json:"recovered_from_postgres"`
	SlowCutoffs           int64            `json:"slow_cutoffs"`
	FanoutEntries         int64            `json:"fanout_entries"`
	FanoutOutages         int64            `json:"fanout_outages"`
	LiveChannels          int64            `json:"live_channels"`
	LiveMessages          int64            `json:"live_messages"`
	ConsumerHandled       int64            `json:"consumer_handled"`
	DeadLettered          int64            `json:"dead_lettered"`
	ClaimsTotal           int64            `json:"claims_total"`
	Claims                map[string]int64 `json:"claims"` // by consumer group
	Helped                map[string]int64 `json:"helped"` // by consumer group
}

type latencyView struct {
	Send          Histogram `json:"send"`
	SendToDeliver Histogram `json:"send_to_deliver"`
}

func (a *Admin) streams(w http.ResponseWriter, r *http.Request) {
	v := a.view(a.inspector.Snapshot(r.Context()))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (a *Admin) view(s monitoring.Snapshot) streamsView {
	n := a.counters()
	v := streamsView{
		InstanceID: a.instance, GeneratedAt: time.Now().UTC(), InspectedAt: s.At.UTC(), InspectionMs: ms(s.Took),
		RelayLeader: n.RelayLeader, RelayShards: n.RelayShards,
		Redis:       healthView{Up: s.RedisUp, Error: s.RedisError},
		Postgres:    healthView{Up: s.PostgresUp, Error: s.PostgresError},
		Connections: n.Connections, Subscriptions: n.Subscriptions,
		Counters: countersView{
			Stored: a.metrics.Stored(), SendFailed: a.metrics.Failed(),
			Relayed: n.Relayed, RelayDuplicates: n.RelayDuplicates, RelayErrors: n.RelayErrors, MovedAside: n.RelayMovedAside,
			Delivered: n.Delivered, DuplicatesDropped: n.DuplicatesDropped, GapsFilled: n.GapsFilled,
			RecoveredFromRedis: n.RecoveredFromRedis, RecoveredFromPostgres: n.RecoveredFromPostgres,
			SlowCutoffs: n.SlowCutoffs, FanoutEntries: n.FanoutEntries, FanoutOutages: n.FanoutOutages,
			LiveChannels: n.LiveFollowing, LiveMessages: n.LiveMessages,
			ConsumerHandled: n.ConsumerHandled, DeadLettered: n.DeadLettered, Claims: n.Claims, Helped: n.Helped,
		},
		Latency:   latencyView{Send: a.metrics.SendLatency(), SendToDeliver: a.metrics.DeliverLatency()},
		Streams:   []streamView{},
		Instances: instancesOf(a.instance, s),
	}
	if v.Counters.Claims == nil {
		v.Counters.Claims = map[string]int64{}
	}
	if v.Counters.Helped == nil {
		v.Counters.Helped = map[string]int64{}
	}
	for _, n := range v.Counters.Claims {
		v.Counters.ClaimsTotal += n
	}
	if s.PostgresUp {
		v.Outbox = &outboxView{Backlog: s.Outbox.Rows, OldestAgeMs: ms(s.Outbox.OldestAge), Dead: s.Outbox.DeadRows}
	}
	for _, st := range s.Streams {
		sv := streamView{Key: st.Key, Kind: string(st.Kind), Exists: st.Exists, Length: st.Length, FirstID: st.FirstID,
			LastID: st.LastID, RecentEntries: st.RecentEntries, Groups: []groupView{}}
		for _, g := range st.Groups {
			gv := groupView{Name: g.Name, Pending: g.Pending, LastDeliveredID: g.LastDeliveredID,
				OldestPendingIdleMs: ms(g.OldestPendingIdle), Consumers: []consumerView{}}
			if g.Lag >= 0 {
				lag := g.Lag
				gv.Lag = &lag
			}
			for _, c := range g.Consumers {
				gv.Consumers = append(gv.Consumers, consumerView{Name: c.Name, Pending: c.Pending, IdleMs: ms(c.Idle)})
			}
			sv.Groups = append(sv.Groups, gv)
		}
		v.Streams = append(v.Streams, sv)
	}
	return v
}

// instancesOf lists the instances the fan-out stream's groups know (consumer names are instance
// ids), this one first even before it has joined a group.
func instancesOf(self string, s monitoring.Snapshot) []instanceView {
	idle := map[string]time.Duration{}
	for _, fan := range s.FanoutPartitions() {
		for _, g := range fan.Groups {
			for _, c := range g.Consumers {
				if d, seen := idle[c.Name]; !seen || c.Idle < d {
					idle[c.Name] = c.Idle
				}
			}
		}
	}
	out := []instanceView{{ID: self, Self: true, IdleMs: ms(idle[self])}}
	var others []string
	for name := range idle {
		if name != self {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	for _, name := range others {
		out = append(out, instanceView{ID: name, IdleMs: ms(idle[name])})
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
