package conversation

import "time"

// Event names are stable, namespaced and versioned: renaming a Go type must not orphan history.
// How events are stored (their JSON) is the event store's business: adapters/postgres.
const (
	EventStarted            = "conversation.started.v1"
	EventParticipantAdded   = "conversation.participant_added.v1"
	EventParticipantRemoved = "conversation.participant_removed.v1"
	EventMessagePosted      = "conversation.message_posted.v1"
)

// Event is one recorded change of a Conversation.
type Event interface {
	EventType() string
}

type Started struct {
	ConversationID ID
	Title          string
	Participants   []UserID
	StartedBy      UserID
	At             time.Time
}

type ParticipantAdded struct {
	ConversationID ID
	UserID         UserID
	AddedBy        UserID
	At             time.Time
}

type ParticipantRemoved struct {
	ConversationID ID
	UserID         UserID
	RemovedBy      UserID
	At             time.Time
}

// MessagePosted carries the whole message; it is the payload of the outbox and the fan-out stream.
type MessagePosted struct {
	Message Message
}

func (Started) EventType() string            { return EventStarted }
func (ParticipantAdded) EventType() string   { return EventParticipantAdded }
func (ParticipantRemoved) EventType() string { return EventParticipantRemoved }
func (MessagePosted) EventType() string      { return EventMessagePosted }
