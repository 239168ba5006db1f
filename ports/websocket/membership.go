package websocket

import (
	"context"
	"slices"
	"sync"
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
}

type membershipEntry struct {
	participants []conversation.UserID
	at           time.Time
}

func (m *memberships) isMember(ctx context.Context, conv conversation.ID, user conversation.UserID) (bool, error) {
	m.mu.Lock()
	e, ok := m.entries[conv]
	m.mu.Unlock()
	if !ok || time.Since(e.at) > membershipTTL {
		participants, err := m.convs.Participants(ctx, conv)
		if err != nil {
			return false, err
		}
		e = membershipEntry{participants: participants, at: time.Now()}
		m.mu.Lock()
		if len(m.entries) > 100_000 { // bounded: start over rather than grow without end
			m.entries = map[conversation.ID]membershipEntry{}
		}
		m.entries[conv] = e
		m.mu.Unlock()
	}
	return slices.Contains(e.participants, user), nil
}

// forget drops conv's cached participants (someone left it), so the next check asks again.
func (m *memberships) forget(conv conversation.ID) {
	m.mu.Lock()
	delete(m.entries, conv)
	m.mu.Unlock()
}
