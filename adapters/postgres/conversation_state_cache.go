package postgres

import (
	"sync"
	"time"

	"github.com/moby/locker"

	"github.com/nova-chat/nova/domain/conversation"
)

const (
	// stateCacheSize bounds the conversations whose state an instance remembers.
	stateCacheSize = 100_000
	// contendedFor is how long a conversation whose cached state proved stale (another instance
	// wrote it) is written the locked way, so alternating writers do not pay a conflict each time.
	contendedFor = time.Second
)

// stateCache remembers the state row of the conversations this instance wrote last, so the
// next send to one of them can skip the locked read: it writes at the remembered version in
// one round trip, and the events primary key (aggregate id, version) refuses it if any other
// writer got there first, in which case the write is made again the locked way.
type stateCache struct {
	mu        sync.Mutex
	states    map[conversation.ID]conversation.Snapshot
	contended map[conversation.ID]time.Time

	// writers serialises this instance's remembered-state writers of one conversation, so they
	// do not make each other's state stale. One lock per conversation (kept while anyone holds
	// or waits for it): through it, a send stuck on a row lock held elsewhere holds up only its
	// own conversation's sends on this instance (and its batch turn for 500 ms at most).
	writers *locker.Locker
}

func newStateCache() *stateCache {
	return &stateCache{states: map[conversation.ID]conversation.Snapshot{}, contended: map[conversation.ID]time.Time{},
		writers: locker.New()}
}

// lockWriter takes id's writer lock; the caller releases it with unlockWriter.
func (s *stateCache) lockWriter(id conversation.ID) { s.writers.Lock(string(id)) }

// unlockWriter releases id's writer lock, taken by lockWriter.
func (s *stateCache) unlockWriter(id conversation.ID) {
	_ = s.writers.Unlock(string(id)) // fails only for a lock not taken, which lockWriter's callers never do
}

func (s *stateCache) get(id conversation.ID) (conversation.Snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[id]
	return st, ok
}

// put remembers a committed state, unless the conversation was found contended lately.
func (s *stateCache) put(st conversation.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if until, ok := s.contended[st.ID]; ok {
		if time.Now().Before(until) {
			return
		}
		delete(s.contended, st.ID)
	}
	if len(s.states) >= stateCacheSize {
		clear(s.states) // crude but bounded: the next write of each conversation re-reads it
	}
	s.states[st.ID] = st
}

// isContended reports whether id was found written by another writer lately.
func (s *stateCache) isContended(id conversation.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.contended[id]
	return ok && time.Now().Before(until)
}

// stale forgets id's state after another writer changed it.
func (s *stateCache) stale(id conversation.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.states, id)
	if len(s.contended) >= stateCacheSize {
		clear(s.contended)
	}
	s.contended[id] = time.Now().Add(contendedFor)
}

// forget drops id's state without marking it contended (its write failed for another reason).
func (s *stateCache) forget(id conversation.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.states, id)
}
