package websocket

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nova-chat/nova/application/query"
	"github.com/nova-chat/nova/domain/conversation"
)

// membershipTTL bounds how stale the shared membership view may be.
const membershipTTL = 5 * time.Second

// memberships caches who is in a conversation for the periodic re-check of live subscriptions,
// so thousands of connections to one conversation cost one query per TTL, not one each.
type memberships struct {
	convs query.Conversations

	mu      sync.Mutex
	entries map[conversation.ID]membershipEntry

	// changes counts the membership changes heard here (removal notices, and the re-checks
	// after a channel is confirmed), by a hash of the conversation: a subscribe during which
	// its conversation's count moved checks membership again (conn.subscribe).
	changes [256]atomic.Uint64
}

var changesSeed = maphash.MakeSeed()

// changed records that conv's membership changed, or may have without its notice being heard.
func (m *memberships) changed(conv conversation.ID) {
	m.changes[maphash.String(changesSeed, string(conv))%uint64(len(m.changes))].Add(1)
}

// version is the count of conv's changes so far (shared with the conversations of the same hash).
func (m *memberships) version(conv conversation.ID) uint64 {
	return m.changes[maphash.String(changesSeed, string(conv))%uint64(len(m.changes))].Load()
}

type membershipEntry struct {
	participants []conversation.UserID
	at           time.Time
}

func (m *memberships) isMember(ctx context.Context, conv conversation.ID, user conversation.UserID) (bool, error) {
	m.mu.Lock()
	e, ok := m.entries[conv]
	m.mu.Unlock()
	if ok && time.Since(e.at) <= membershipTTL {
		return slices.Contains(e.participants, user), nil
	}
	participants, err := m.refresh(ctx, conv)
	if err != nil {
		return false, err
	}
	return slices.Contains(participants, user), nil
}

// refresh reads conv's participants from Postgres, whatever is cached, and caches them.
func (m *memberships) refresh(ctx context.Context, conv conversation.ID) ([]conversation.UserID, error) {
	participants, err := m.convs.Participants(ctx, conv)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) > 100_000 { // bounded: start over rather than grow without end
		m.entries = map[conversation.ID]membershipEntry{}
	}
	m.entries[conv] = membershipEntry{participants: participants, at: time.Now()}
	return participants, nil
}

// forget drops conv's cached participants (someone left it), so the next check asks again.
func (m *memberships) forget(conv conversation.ID) {
	m.changed(conv)
	m.mu.Lock()
	delete(m.entries, conv)
	m.mu.Unlock()
}
