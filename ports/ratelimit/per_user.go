// Package ratelimit limits how fast each user may send, shared by the HTTP and WebSocket ports.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// SendRate is NOVA_SEND_RATE: messages per second per user (burst 5x); 0 turns the limit off.
type SendRate float64

// PerUser keeps one token bucket per user and forgets users idle for a while.
type PerUser struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const idleAfter = 10 * time.Minute

func NewPerUser(r SendRate) *PerUser {
	return &PerUser{limit: rate.Limit(r), burst: max(1, int(5*r)), buckets: map[string]*bucket{}, lastSweep: time.Now()}
}

// Allow reports whether user may send one more message now.
func (p *PerUser) Allow(user string) bool {
	if p.limit <= 0 {
		return true
	}
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
