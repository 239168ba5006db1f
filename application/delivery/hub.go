// Package delivery is the one path by which stored messages reach local subscriptions: it drops
// duplicates and fills gaps by seq, so a subscription sees 1, 2, 3 ... once each, whichever
// feed (the live channel, a stream re-check, the backlog) brought them.
package delivery

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/ctxsleep"
)

// Item is one message as delivered: its seq and its Message JSON (encoded once, at the source).
type Item struct {
	Seq  int64
	JSON []byte
	// CreatedAtMs is the message's created_at in Unix ms when the feed carries it (live fan-out
	// entries), for the send-to-deliver latency; 0 otherwise (Pub/Sub, backlog pages).
	CreatedAtMs int64
}

// Origin says where a backlog page came from.
type Origin int

const (
	FromRedis Origin = iota
	FromPostgres
)

// Source pages through stored messages: after returns up to limit messages with seq > after,
// ascending and contiguous from after+1, from the conversation stream where it still holds
// them and from Postgres otherwise. An empty page means there is nothing after.
type Source interface {
	After(ctx context.Context, conv conversation.ID, after int64, limit int) ([]Item, Origin, error)
}

// Sink is one subscription's way out (a WebSocket connection's queue).
type Sink interface {
	// Deliver queues a message without blocking; an error means the sink is gone or cut off.
	Deliver(conv conversation.ID, it Item) error
	// WaitRoom blocks until the sink can take more backlog (flow control for catch-up).
	WaitRoom(ctx context.Context) error
}

// Interest hears which conversations this instance follows, so the live feed carries only
// those (DESIGN.md decision 6). Both calls are made under the hub's lock and must not block.
type Interest interface {
	// Follow: conv got its first local subscription.
	Follow(conv conversation.ID)
	// Unfollow: conv lost its last local subscription.
	Unfollow(conv conversation.ID)
}

// Stats are the hub's running totals (exported as metrics).
type Stats struct {
	Delivered, DuplicatesDropped, GapsFilled, FromRedis, FromPostgres, Subscriptions int64
}

type hubCounts struct {
	Delivered, DuplicatesDropped, GapsFilled, FromRedis, FromPostgres, Subscriptions atomic.Int64
}

const pageSize = 500

// Hub holds this instance's subscriptions by conversation.
type Hub struct {
	source   Source
	interest Interest
	log      *slog.Logger
	counts   hubCounts

	mu   sync.RWMutex
	subs map[conversation.ID]map[*Subscription]struct{}
}

func NewHub(source Source, interest Interest, log *slog.Logger) *Hub {
	if source == nil || interest == nil || log == nil {
		panic("delivery.NewHub: nil dependency")
	}
	return &Hub{source: source, interest: interest, log: log.With("component", "delivery"),
		subs: map[conversation.ID]map[*Subscription]struct{}{}}
}

// Subscription is one sink following one conversation from a seq on.
type Subscription struct {
	hub  *Hub
	conv conversation.ID
	sink Sink
	ctx  context.Context
	stop context.CancelFunc

	mu         sync.Mutex
	last       int64 // highest seq handed to the sink
	catchingUp bool
	wantMore   bool
}

// Subscribe registers sink for conv after fromSeq and starts delivering the backlog, then live
// messages. Registration comes first, so nothing sent meanwhile can fall between the two.
func (h *Hub) Subscribe(ctx context.Context, conv conversation.ID, fromSeq int64, sink Sink) *Subscription {
	sctx, stop := context.WithCancel(ctx)
	s := &Subscription{hub: h, conv: conv, sink: sink, ctx: sctx, stop: stop, last: fromSeq, catchingUp: true}
	h.mu.Lock()
	set := h.subs[conv]
	if set == nil {
		set = map[*Subscription]struct{}{}
		h.subs[conv] = set
		h.interest.Follow(conv)
	}
	set[s] = struct{}{}
	h.mu.Unlock()
	h.counts.Subscriptions.Add(1)
	go s.catchUp()
	return s
}

// Close stops the subscription; nothing more reaches its sink.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	if set, ok := h.subs[s.conv]; ok {
		if _, mine := set[s]; mine {
			delete(set, s)
			h.counts.Subscriptions.Add(-1)
		}
		if len(set) == 0 {
			delete(h.subs, s.conv)
			h.interest.Unfollow(s.conv)
		}
	}
	h.mu.Unlock()
	// cancelled under the subscription's lock: once Close returns, no page in progress hands
	// the sink another message (deliverLocked checks it under the same lock)
	s.mu.Lock()
	s.stop()
	s.mu.Unlock()
}

// LastSeq is the highest seq handed to the sink.
func (s *Subscription) LastSeq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Publish offers a live message to every local subscription of its conversation. It never blocks.
func (h *Hub) Publish(conv conversation.ID, it Item) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs[conv] {
		s.offer(it)
	}
}

// Following lists the conversations that have a local subscription.
func (h *Hub) Following() []conversation.ID {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]conversation.ID, 0, len(h.subs))
	for conv := range h.subs {
		out = append(out, conv)
	}
	return out
}

// Sinks lists the sinks subscribed to conv at this moment.
func (h *Hub) Sinks(conv conversation.ID) []Sink {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]Sink, 0, len(h.subs[conv]))
	for s := range h.subs[conv] {
		out = append(out, s.sink)
	}
	return out
}

// CatchUpTo tells conv's subscriptions that the conversation holds messages up to top: each one
// behind it fetches what it misses (a live message that was lost, or the last of a burst).
func (h *Hub) CatchUpTo(conv conversation.ID, top int64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs[conv] {
		s.mu.Lock()
		if s.last < top && s.ctx.Err() == nil {
			h.counts.GapsFilled.Add(1)
			s.startCatchUpLocked()
		}
		s.mu.Unlock()
	}
}

// Resync makes every subscription look for messages it may have missed (after a live feed outage).
func (h *Hub) Resync() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.subs {
		for s := range set {
			s.mu.Lock()
			s.startCatchUpLocked()
			s.mu.Unlock()
		}
	}
}

func (s *Subscription) offer(it Item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ctx.Err() != nil:
	case s.catchingUp:
		if it.Seq > s.last {
			s.wantMore = true
		}
	case it.Seq <= s.last:
		s.hub.counts.DuplicatesDropped.Add(1)
	case it.Seq == s.last+1:
		s.deliverLocked(it)
	default: // a gap: fetch what is missing, in order, before this one
		s.hub.counts.GapsFilled.Add(1)
		s.startCatchUpLocked()
	}
}

func (s *Subscription) startCatchUpLocked() {
	if s.catchingUp {
		s.wantMore = true
		return
	}
	s.catchingUp = true
	go s.catchUp()
}

func (s *Subscription) deliverLocked(it Item) {
	if s.ctx.Err() != nil {
		return // closed
	}
	if err := s.sink.Deliver(s.conv, it); err != nil {
		s.stop()
		return
	}
	s.last = it.Seq
	s.hub.counts.Delivered.Add(1)
}

// catchUp pages from the source until nothing is left and no live message arrived meanwhile.
func (s *Subscription) catchUp() {
	backoff := 50 * time.Millisecond
	for s.ctx.Err() == nil {
		s.mu.Lock()
		after := s.last
		s.wantMore = false
		s.mu.Unlock()

		page, origin, err := s.hub.source.After(s.ctx, s.conv, after, pageSize)
		if err != nil {
			if s.ctx.Err() == nil {
				s.hub.log.Warn("backlog read failed; retrying", "conversation_id", s.conv, "after_seq", after, "error", err)
			}
			ctxsleep.Sleep(s.ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if len(page) > 0 {
			if origin == FromPostgres {
				s.hub.counts.FromPostgres.Add(int64(len(page)))
			} else {
				s.hub.counts.FromRedis.Add(int64(len(page)))
			}
		}
		for _, it := range page {
			if err := s.sink.WaitRoom(s.ctx); err != nil {
				return
			}
			s.mu.Lock()
			if it.Seq == s.last+1 {
				s.deliverLocked(it)
			}
			s.mu.Unlock()
		}
		s.mu.Lock()
		if len(page) < pageSize && !s.wantMore {
			s.catchingUp = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// Stats returns the running totals at this moment (a copy: read-only for the caller).
func (h *Hub) Stats() Stats {
	c := &h.counts
	return Stats{Delivered: c.Delivered.Load(), DuplicatesDropped: c.DuplicatesDropped.Load(), GapsFilled: c.GapsFilled.Load(), FromRedis: c.FromRedis.Load(), FromPostgres: c.FromPostgres.Load(), Subscriptions: c.Subscriptions.Load()}
}
