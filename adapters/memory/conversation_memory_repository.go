// Package memory holds in-memory implementations of the domain's repositories: test doubles
// for application tests, keeping the contract of adapters/postgres (adapters/repositorytest
// runs one suite against both). Nothing in `nova serve` uses them, and nothing of theirs lasts.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/nova-chat/nova/domain/conversation"
)

// ConversationRepository keeps each conversation's state and messages in memory. Writers of one
// conversation take turns (as the row lock makes them in Postgres); the append is still checked
// against the version the writer loaded, as the events key checks it there.
type ConversationRepository struct {
	mu            sync.Mutex // guards conversations and every stored field below
	conversations map[conversation.ID]*storedConversation
}

type storedConversation struct {
	writer   turn
	state    conversation.Snapshot
	messages []conversation.Message // messages[i] has seq i+1
	byKey    map[messageKey]int     // (sender, client_msg_id) -> index in messages
}

// messageKey is the idempotency key of a send within its conversation.
type messageKey struct {
	sender      conversation.UserID
	clientMsgID string
}

func NewConversationRepository() *ConversationRepository {
	return &ConversationRepository{conversations: map[conversation.ID]*storedConversation{}}
}

var _ conversation.Repository = (*ConversationRepository)(nil)

// Create stores a started conversation; an id already stored is a conflict (its version 1 is taken).
func (r *ConversationRepository) Create(ctx context.Context, c *conversation.Conversation) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(c.Changes()) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.conversations[c.ID()]; ok {
		return conversation.ErrConcurrentUpdate
	}
	s := &storedConversation{writer: newTurn(), byKey: map[messageKey]int{}}
	if err := s.append(c); err != nil {
		return err
	}
	r.conversations[c.ID()] = s
	return nil
}

// Get returns a copy: changes recorded on it are stored only through Update.
func (r *ConversationRepository) Get(ctx context.Context, id conversation.ID) (*conversation.Conversation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.conversations[id]
	if !ok {
		return nil, conversation.ErrNotFound
	}
	return conversation.FromSnapshot(s.state), nil
}

// Update runs fn on the current state and appends what it recorded, all or nothing. A repeated
// (sender, client_msg_id) appends nothing and returns the original as a DuplicateMessageError.
func (r *ConversationRepository) Update(ctx context.Context, id conversation.ID, fn func(c *conversation.Conversation) error) error {
	r.mu.Lock()
	s, ok := r.conversations[id]
	r.mu.Unlock()
	if !ok {
		return conversation.ErrNotFound
	}
	if err := s.writer.take(ctx); err != nil {
		return err
	}
	defer s.writer.release()
	c, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := fn(c); err != nil {
		return err
	}
	if len(c.Changes()) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return s.append(c)
}

// append stores c's changes if c was loaded at the stored version; the caller holds r.mu.
func (s *storedConversation) append(c *conversation.Conversation) error {
	if c.PersistedVersion() != s.state.Version {
		return conversation.ErrConcurrentUpdate
	}
	var posted []conversation.Message
	for _, e := range c.Changes() {
		p, ok := e.(conversation.MessagePosted)
		if !ok {
			continue
		}
		m := p.Message
		k := messageKey{m.SenderID, m.ClientMsgID}
		if i, dup := s.byKey[k]; dup {
			return &conversation.DuplicateMessageError{Original: copyMessage(s.messages[i])}
		}
		if want := s.state.LastSeq + int64(len(posted)) + 1; m.Seq != want {
			return fmt.Errorf("message seq %d where %d is next", m.Seq, want)
		}
		for _, q := range posted {
			if q.SenderID == m.SenderID && q.ClientMsgID == m.ClientMsgID {
				return fmt.Errorf("client_msg_id %q posted twice in one update", m.ClientMsgID)
			}
		}
		posted = append(posted, copyMessage(m))
	}
	s.state = c.Snapshot()
	for _, m := range posted {
		s.byKey[messageKey{m.SenderID, m.ClientMsgID}] = len(s.messages)
		s.messages = append(s.messages, m)
	}
	return nil
}

// copyMessage keeps callers from changing a stored body through the slice they hold.
func copyMessage(m conversation.Message) conversation.Message {
	m.Body = bytes.Clone(m.Body)
	return m
}
