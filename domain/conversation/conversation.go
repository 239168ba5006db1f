package conversation

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Conversation is the aggregate that orders messages and guards who may take part.
// Command methods check invariants and then record an event; apply is the only code that changes state.
type Conversation struct {
	id           ID
	title        string
	participants []UserID
	createdAt    time.Time
	lastSeq      int64
	version      int64

	changes []Event
}

// Start begins a conversation; the starter is always a participant.
func Start(id ID, title string, startedBy UserID, participants []UserID, at time.Time) (*Conversation, error) {
	if len(title) > MaxTitleLen || !utf8.ValidString(title) || strings.ContainsRune(title, 0) {
		return nil, invalid("title must be at most 200 bytes of text")
	}
	members := []UserID{startedBy}
	for _, p := range participants {
		if !slices.Contains(members, p) {
			members = append(members, p)
		}
	}
	if len(members) > MaxParticipants {
		return nil, invalid("a conversation has at most 1000 participants")
	}
	c := &Conversation{}
	c.record(Started{ConversationID: id, Title: title, Participants: members, StartedBy: startedBy, At: at.UTC().Truncate(time.Microsecond)})
	return c, nil
}

// FromSnapshot rebuilds a conversation from its compact state row, so loading never replays history.
func FromSnapshot(s Snapshot) *Conversation {
	return &Conversation{
		id:           s.ID,
		title:        s.Title,
		participants: slices.Clone(s.Participants),
		createdAt:    s.CreatedAt,
		lastSeq:      s.LastSeq,
		version:      s.Version,
	}
}

// FromEvents rebuilds a conversation by replaying its whole history (used to check snapshots).
func FromEvents(events []Event) *Conversation {
	c := &Conversation{}
	for _, e := range events {
		c.apply(e)
		c.version++
	}
	return c
}

// Snapshot is the state of a conversation at a version.
type Snapshot struct {
	ID           ID
	Title        string
	Participants []UserID
	CreatedAt    time.Time
	LastSeq      int64
	Version      int64
}

func (c *Conversation) Snapshot() Snapshot {
	return Snapshot{
		ID: c.id, Title: c.title, Participants: slices.Clone(c.participants),
		CreatedAt: c.createdAt, LastSeq: c.lastSeq, Version: c.version,
	}
}

func (c *Conversation) ID() ID                 { return c.id }
func (c *Conversation) Title() string          { return c.title }
func (c *Conversation) Participants() []UserID { return slices.Clone(c.participants) }
func (c *Conversation) CreatedAt() time.Time   { return c.createdAt }
func (c *Conversation) LastSeq() int64         { return c.lastSeq }

// Version counts stored events; with uncommitted changes it is the version the next event must take minus one.
func (c *Conversation) Version() int64 { return c.version }

// Changes are the events recorded since the conversation was loaded, oldest first.
func (c *Conversation) Changes() []Event { return c.changes }

// PersistedVersion is the version the conversation had when it was loaded.
func (c *Conversation) PersistedVersion() int64 { return c.version - int64(len(c.changes)) }

func (c *Conversation) IsParticipant(u UserID) bool { return slices.Contains(c.participants, u) }

// AddParticipant lets a participant bring another user in; adding a member again changes nothing.
func (c *Conversation) AddParticipant(by, user UserID, at time.Time) error {
	if !c.IsParticipant(by) {
		return ErrNotFound
	}
	if c.IsParticipant(user) {
		return nil
	}
	if len(c.participants) >= MaxParticipants {
		return invalid("a conversation has at most 1000 participants")
	}
	c.record(ParticipantAdded{ConversationID: c.id, UserID: user, AddedBy: by, At: at.UTC()})
	return nil
}

// RemoveParticipant lets a participant remove anyone, including themselves.
func (c *Conversation) RemoveParticipant(by, user UserID, at time.Time) error {
	if !c.IsParticipant(by) {
		return ErrNotFound
	}
	if !c.IsParticipant(user) {
		return ErrNotFound
	}
	c.record(ParticipantRemoved{ConversationID: c.id, UserID: user, RemovedBy: by, At: at.UTC()})
	return nil
}

// PostMessage gives the draft the next seq. Only participants post.
func (c *Conversation) PostMessage(d NewMessageDraft) (Message, error) {
	if !c.IsParticipant(d.SenderID) {
		return Message{}, ErrNotFound
	}
	if err := d.Validate(); err != nil {
		return Message{}, err
	}
	seq := c.lastSeq + 1
	m := Message{
		ID: d.ID, ConversationID: c.id, Seq: seq, StreamID: StreamID(seq),
		SenderID: d.SenderID, ClientMsgID: d.ClientMsgID, Body: d.Body, CreatedAt: d.At.UTC().Truncate(time.Microsecond),
	}
	c.record(MessagePosted{Message: m})
	return m, nil
}

func (c *Conversation) record(e Event) {
	c.apply(e)
	c.version++
	c.changes = append(c.changes, e)
}

func (c *Conversation) apply(e Event) {
	switch e := e.(type) {
	case Started:
		c.id, c.title, c.createdAt = e.ConversationID, e.Title, e.At
		c.participants = slices.Clone(e.Participants)
	case ParticipantAdded:
		c.participants = append(c.participants, e.UserID)
	case ParticipantRemoved:
		c.participants = slices.DeleteFunc(c.participants, func(u UserID) bool { return u == e.UserID })
	case MessagePosted:
		c.lastSeq = e.Message.Seq
	}
}
