package nova

import (
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/ports/messaging"
	"github.com/nova-chat/nova/ports/websocket"
)

// bump adds n to every exported atomic.Int64 of the stats struct at p (and of structs in it).
func bump(p any, n *int64) {
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanAddr() || !v.Type().Field(i).IsExported() {
			continue
		}
		switch c := f.Addr().Interface().(type) {
		case *atomic.Int64:
			*n++
			c.Add(*n)
		default:
			if f.Kind() == reflect.Struct {
				bump(f.Addr().Interface(), n)
			}
		}
	}
}

// TestEveryCounterReadsItsComponentsTotal sets every running total of every component to a
// non-zero value and checks that each exported counter moved: a counter left out of the
// source (as two outbox counters once were, inside a comment) reads 0 and fails here.
func TestEveryCounterReadsItsComponentsTotal(t *testing.T) {
	bg := Background{Relay: &outbox.Relay{}, FastPath: &outbox.FastPath{}, Fanout: &messaging.FanoutListener{},
		Channels: &redisstream.LiveChannels{}, Router: &messaging.Router{Stats: &messaging.RouterStats{}}, Hub: &delivery.Hub{}}
	ws, groups := &websocket.Handler{}, &redisstream.GroupSubscribers{}
	var n int64
	for _, stats := range []any{&bg.Relay.Stats, &bg.FastPath.Stats, &bg.Fanout.Stats, bg.Router.Stats, &bg.Hub.Stats,
		&ws.Stats, &groups.Redrive} {
		bump(stats, &n)
	}

	c := NewCounterSource(bg, ws, groups)()

	// what these components cannot be made to hold without running (live channels are read
	// from their subscriptions, claims from a Redis hook, the leader flag from a lock)
	notSettable := map[string]bool{"LiveFollowing": true, "LiveMessages": true, "LiveMalformed": true,
		"RelayLeader": true, "Claims": true}
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if notSettable[name] {
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("counter %s reads 0 although every component's totals are set: is it wired?", name)
		}
	}
}
