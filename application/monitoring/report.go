// Package monitoring answers "do messages flow?": the state of the Redis streams, their consumer
// groups and the outbox, gathered for /metrics, /admin and `nova streams` by one Inspector.
package monitoring

import (
	"context"
	"time"
)

// StreamKind says what a stream is for.
type StreamKind string

const (
	KindFanout       StreamKind = "fanout"
	KindDeadLetter   StreamKind = "dead-letter"
	KindConversation StreamKind = "conversation"
)

// Stream is one Redis stream as XINFO sees it.
type Stream struct {
	Key     string
	Kind    StreamKind
	Exists  bool
	Length  int64
	FirstID string // "" when the stream is empty
	LastID  string // the last entry's id ("" when empty)
	// RecentEntries is, for a conversation stream, how many of the fan-out stream's most recent
	// entries belong to it: what "busiest" is ranked by.
	RecentEntries int
	Groups        []Group
}

// Group is one consumer group of a stream.
type Group struct {
	Name            string
	Pending         int64 // delivered to a consumer, not acknowledged (XPENDING)
	Lag             int64 // entries not yet delivered to the group; -1 when Redis cannot tell
	LastDeliveredID string
	// OldestPendingIdle is how long the oldest pending entry has waited since it was last
	// delivered (0 when nothing is pending).
	OldestPendingIdle time.Duration
	Consumers         []Consumer
}

// Consumer is one consumer (an instance, named by NOVA_INSTANCE_ID) inside a group.
type Consumer struct {
	Name    string
	Pending int64
	Idle    time.Duration // since its last read or claim
}

// Outbox is the relay's backlog in Postgres: rows committed but not yet in Redis.
type Outbox struct {
	Rows      int64
	OldestAge time.Duration // age of the oldest unrelayed row (0 when empty)
	DeadRows  int64         // rows set aside as undecodable (outbox_dead)
}

// Snapshot is everything the Inspector gathered at one moment.
type Snapshot struct {
	At         time.Time
	RedisUp    bool
	RedisError string
	Streams    []Stream // the fan-out stream, the dead-letter stream, then the busiest conversations

	PostgresUp    bool
	PostgresError string
	Outbox        Outbox
	Took          time.Duration // how long gathering took
}

// StreamSource reads the streams: the fan-out and dead-letter streams, and up to busiest of the
// conversation streams with the most recent traffic.
type StreamSource interface {
	Streams(ctx context.Context, busiest int) ([]Stream, error)
}

// OutboxSource reads the outbox backlog.
type OutboxSource interface {
	Outbox(ctx context.Context) (Outbox, error)
}

// FanoutPartitions returns every partition of the fan-out stream that was read (one without partitions).
func (s Snapshot) FanoutPartitions() []Stream {
	var out []Stream
	for _, st := range s.Streams {
		if st.Kind == KindFanout {
			out = append(out, st)
		}
	}
	return out
}

// DeadLetters returns the dead-letter stream of s, if it was read.
func (s Snapshot) DeadLetters() (Stream, bool) { return s.stream(KindDeadLetter) }

func (s Snapshot) stream(k StreamKind) (Stream, bool) {
	for _, st := range s.Streams {
		if st.Kind == k {
			return st, true
		}
	}
	return Stream{}, false
}

// Group returns the group of st named name.
func (st Stream) Group(name string) (Group, bool) {
	for _, g := range st.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}
