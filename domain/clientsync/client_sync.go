// Package clientsync holds the ClientSync aggregate: how far one installation of a client app
// has processed one conversation.
package clientsync

import (
	"context"
	"errors"
	"time"

	"github.com/nova-chat/nova/domain/conversation"
)

// EventAcknowledged is the stable, versioned name of the only ClientSync event.
const EventAcknowledged = "clientsync.acknowledged.v1"

// ClientID names one installation of a client app; it stays the same across reconnects.
type ClientID string

// ParseClientID accepts a UUID.
func ParseClientID(s string) (ClientID, error) {
	u, err := conversation.ParseUserID(s)
	if err != nil {
		return "", &conversation.ValidationError{Reason: "client_id must be a UUID"}
	}
	return ClientID(u), nil
}

// Key identifies a cursor: per (user, client, conversation), so a client in two conversations
// keeps two cursors.
type Key struct {
	User         conversation.UserID
	Client       ClientID
	Conversation conversation.ID
}

// Acknowledged records that the client processed everything up to Seq.
type Acknowledged struct {
	Key Key
	Seq int64
	At  time.Time
}

func (Acknowledged) EventType() string { return EventAcknowledged }

// ClientSync is the cursor aggregate. It only moves forward.
type ClientSync struct {
	key      Key
	ackedSeq int64
	syncedAt time.Time
	version  int64
	changes  []Acknowledged
}

// New is the cursor of a client that never acknowledged anything.
func New(key Key) *ClientSync { return &ClientSync{key: key} }

// FromState rebuilds a cursor from its state row.
func FromState(key Key, ackedSeq int64, syncedAt time.Time, version int64) *ClientSync {
	return &ClientSync{key: key, ackedSeq: ackedSeq, syncedAt: syncedAt, version: version}
}

var ErrBadSeq = &conversation.ValidationError{Reason: "seq must be positive"}

// Acknowledge moves the cursor to seq; an older or equal seq changes nothing.
func (c *ClientSync) Acknowledge(seq int64, at time.Time) error {
	if seq < 1 {
		return ErrBadSeq
	}
	if seq <= c.ackedSeq {
		return nil
	}
	e := Acknowledged{Key: c.key, Seq: seq, At: at.UTC().Truncate(time.Microsecond)}
	c.apply(e)
	c.version++
	c.changes = append(c.changes, e)
	return nil
}

func (c *ClientSync) apply(e Acknowledged) { c.ackedSeq, c.syncedAt = e.Seq, e.At }

func (c *ClientSync) Key() Key                { return c.key }
func (c *ClientSync) AckedSeq() int64         { return c.ackedSeq }
func (c *ClientSync) SyncedAt() time.Time     { return c.syncedAt }
func (c *ClientSync) Version() int64          { return c.version }
func (c *ClientSync) PersistedVersion() int64 { return c.version - int64(len(c.changes)) }
func (c *ClientSync) Changes() []Acknowledged { return c.changes }
func (c *ClientSync) HasChanges() bool        { return len(c.changes) > 0 }

// ErrConcurrentUpdate: another writer stored a newer version first.
var ErrConcurrentUpdate = errors.New("client sync was changed concurrently")

// Repository stores cursors as events (durable copy).
type Repository interface {
	// Update loads the cursor (a new one if none exists), runs fn and appends what it recorded.
	Update(ctx context.Context, key Key, fn func(c *ClientSync) error) error
	// AckedSeqs returns the durable cursors of one client, by conversation.
	AckedSeqs(ctx context.Context, user conversation.UserID, client ClientID) (map[conversation.ID]int64, error)
}
