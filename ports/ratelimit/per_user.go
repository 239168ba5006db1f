// Package ratelimit limits how fast each user may write (send a message, create a conversation,
// change its participants), shared by the HTTP and WebSocket ports.
package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nova-chat/nova/internal/outagelog"
)

// SendRate is NOVA_SEND_RATE: messages per second per user (burst 5x); 0 turns the limit off.
type SendRate float64

// Burst is how many sends a user may make at once.
func (r SendRate) Burst() int { return max(1, int(5*r)) }

// Shared counts a user's sends on every instance (Redis); false means over the rate.
type Shared interface {
	Allow(ctx context.Context, user string) (bool, error)
}

// PerUser limits each user's sends across the deployment. A token bucket per user on this
// instance answers first (a user over the rate here is over it everywhere, and no round trip
// is spent on them); then the shared bucket, which sees every instance's sends. When the shared
// one cannot be asked (Redis away), the local answer stands: sends go on, limited per instance.
type PerUser struct {
	limit  rate.Limit
	burst  int
	shared Shared
	outage *outagelog.Log // the shared bucket cannot be asked (logged once per outage)

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const idleAfter = 10 * time.Minute

// NewPerUser limits sends to r per user; shared may be nil (per instance only).
func NewPerUser(r SendRate, shared Shared, log *slog.Logger) *PerUser {
	if log == nil {
		panic("ratelimit.NewPerUser: nil logger")
	}
	return &PerUser{limit: rate.Limit(r), burst: r.Burst(), shared: shared,
		outage: outagelog.New(log, "the shared send rate cannot be checked; limiting per instance until it can",
			"the shared send rate is checked again"),
		buckets: map[string]*bucket{}, lastSweep: time.Now()}
}

// Allow reports whether user may make one more write now.
func (p *PerUser) Allow(ctx context.Context, user string) bool {
	if p.limit <= 0 {
		return true
	}
	if !p.allowLocal(user) {
		return false
	}
	if p.shared == nil {
		return true
	}
	ok, err := p.shared.Allow(ctx, user)
	if err != nil {
		p.outage.Failed(err)
		return true
	}
	p.outage.OK()
	return ok
}

func (p *PerUser) allowLocal(user string) bool {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.lastSweep) > idleAfter {
		for k, b := range p.buckets {
			if now.Sub(b.seen) > idleAfter {
				delete(p.buckets, k)
			}
		}
		p.lastSweep = now
	}
	b, ok := p.buckets[user]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(p.limit, p.burst)}
		p.buckets[user] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}
