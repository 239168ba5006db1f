package memory

import (
	"context"
	"sync"
	"time"

	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

// ClientSyncRepository keeps the durable cursors in memory, with the contract of the Postgres one.
type ClientSyncRepository struct {
	mu      sync.Mutex // guards cursors and every stored field below
	cursors map[clientsync.Key]*storedCursor
}

// storedCursor is a cursor's state row; version 0 means nothing was stored yet.
type storedCursor struct {
	writer   turn
	ackedSeq int64
	syncedAt time.Time
	version  int64
}

func NewClientSyncRepository() *ClientSyncRepository {
	return &ClientSyncRepository{cursors: map[clientsync.Key]*storedCursor{}}
}

var _ clientsync.Repository = (*ClientSyncRepository)(nil)

// Update runs fn on the stored cursor (a new one if none exists) and stores what it recorded.
func (r *ClientSyncRepository) Update(ctx context.Context, key clientsync.Key, fn func(c *clientsync.ClientSync) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	s, ok := r.cursors[key]
	if !ok {
		s = &storedCursor{writer: newTurn()}
		r.cursors[key] = s
	}
	r.mu.Unlock()
	if err := s.writer.take(ctx); err != nil {
		return err
	}
	defer s.writer.release()

	r.mu.Lock()
	c := clientsync.FromState(key, s.ackedSeq, s.syncedAt, s.version)
	r.mu.Unlock()
	if err := fn(c); err != nil {
		return err
	}
	if !c.HasChanges() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.PersistedVersion() != s.version {
		return clientsync.ErrConcurrentUpdate
	}
	s.ackedSeq, s.syncedAt, s.version = c.AckedSeq(), c.SyncedAt(), c.Version()
	return nil
}

// AckedSeqs returns the stored cursors of one client, by conversation.
func (r *ClientSyncRepository) AckedSeqs(ctx context.Context, user conversation.UserID, client clientsync.ClientID) (map[conversation.ID]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[conversation.ID]int64{}
	for k, s := range r.cursors {
		if k.User == user && k.Client == client && s.version > 0 {
			out[k.Conversation] = s.ackedSeq
		}
	}
	return out, nil
}
