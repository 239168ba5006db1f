package nova

import (
	"reflect"
	"testing"

	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/ports/messaging"
	"github.com/nova-chat/nova/ports/websocket"
)

// filled returns a T whose every int64 field holds a distinct non-zero value.
func filled[T any](n *int64) T {
	var v T
	rv := reflect.ValueOf(&v).Elem()
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Kind() == reflect.Int64 {
			*n++
			f.SetInt(*n)
		}
	}
	return v
}

// TestEveryCounterReadsItsComponentsTotal gives every component's snapshot a distinct non-zero
// value in every field and checks that each counter of the admin port reads one of them: a
// counter left out (as two outbox counters once were, inside a comment) reads 0 and fails here,
// and a field of a snapshot that no counter reads fails too.
func TestEveryCounterReadsItsComponentsTotal(t *testing.T) {
	var n int64
	relay, fast, fan := filled[outbox.Stats](&n), filled[outbox.FastPathStats](&n), filled[messaging.FanoutStats](&n)
	router, hub, ws := filled[messaging.RouterStats](&n), filled[delivery.Stats](&n), filled[websocket.Stats](&n)
	redrive, live := filled[redisstream.RedriveStats](&n), filled[redisstream.LiveSnapshot](&n)
	sends, batches := filled[postgres.GroupCommitStats](&n), filled[postgres.PostBatchStats](&n)
	src := snapshots{
		sends: func() postgres.GroupCommitStats { return sends }, batches: func() postgres.PostBatchStats { return batches },
		relay: func() outbox.Stats { return relay }, fastPath: func() outbox.FastPathStats { return fast },
		fanout: func() messaging.FanoutStats { return fan }, router: func() messaging.RouterStats { return router },
		hub: func() delivery.Stats { return hub }, ws: func() websocket.Stats { return ws },
		redrive: func() redisstream.RedriveStats { return redrive }, live: func() redisstream.LiveSnapshot { return live },
		claims: func() map[string]int64 { return map[string]int64{"messaging-service": 7} },
		helped: func() map[string]int64 { return map[string]int64{"messaging-service": 8} }, leading: func() (int, int) { return 3, 4 },
	}

	c := src.counters()

	read := map[int64]bool{}
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		if f.IsZero() {
			t.Errorf("counter %s reads 0 although every component's totals are set: is it wired?", name)
		}
		if f.Kind() == reflect.Int64 {
			read[f.Int()] = true
		}
	}
	// sums read two fields at once; every other field must be read as it is
	sums := map[string]bool{"outbox.Stats.Relayed": true, "outbox.FastPathStats.Published": true,
		"outbox.Stats.Duplicates": true, "outbox.FastPathStats.Duplicates": true,
		"outbox.FastPathStats.Deferred": true, "outbox.FastPathStats.Dropped": true}
	for _, snap := range []any{sends, batches, relay, fast, fan, router, hub, ws, redrive, live} {
		sv := reflect.ValueOf(snap)
		for i := range sv.NumField() {
			name := sv.Type().String() + "." + sv.Type().Field(i).Name
			if !sums[name] && !read[sv.Field(i).Int()] && name != "redisstream.LiveSnapshot.Confirmations" {
				t.Errorf("%s is in a snapshot but no counter reads it", name)
			}
		}
	}
	if c.Relayed != relay.Relayed+fast.Published || c.FastPathDeferred != fast.Deferred+fast.Dropped ||
		c.RelayDuplicates != relay.Duplicates+fast.Duplicates {
		t.Errorf("sums: Relayed %d, FastPathDeferred %d, RelayDuplicates %d", c.Relayed, c.FastPathDeferred, c.RelayDuplicates)
	}
}
