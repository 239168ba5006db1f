package conversation

import (
	"encoding/json"
	"time"
)

// Event names are stable, namespaced and versioned: renaming a Go type must not orphan history.
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
	ConversationID ID        `json:"conversation_id"`
	Title          string    `json:"title"`
	Participants   []UserID  `json:"participants"`
	StartedBy      UserID    `json:"started_by"`
	At             time.Time `json:"at"`
}

type ParticipantAdded struct {
	ConversationID ID        `json:"conversation_id"`
	UserID         UserID    `json:"user_id"`
	AddedBy        UserID    `json:"added_by"`
	At             time.Time `json:"at"`
}

type ParticipantRemoved struct {
	ConversationID ID        `json:"conversation_id"`
	UserID         UserID    `json:"user_id"`
	RemovedBy      UserID    `json:"removed_by"`
	At             time.Time `json:"at"`
}

// MessagePosted carries the whole message; it is the payload of the outbox and the fan-out stream.
type MessagePosted struct {
	Message Message `json:"message"`
}

func (Started) EventType() string            { return EventStarted }
func (ParticipantAdded) EventType() string   { return EventParticipantAdded }
func (ParticipantRemoved) EventType() string { return EventParticipantRemoved }
func (MessagePosted) EventType() string      { return EventMessagePosted }

// DecodeEvent turns a stored event back into its type; unknown names are an error, never guessed.
func DecodeEvent(eventType string, data []byte) (Event, error) {
	var e Event
	switch eventType {
	case EventStarted:
		var v Started
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		e = v
	case EventParticipantAdded:
		var v ParticipantAdded
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		e = v
	case EventParticipantRemoved:
		var v ParticipantRemoved
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		e = v
	case EventMessagePosted:
		var v MessagePosted
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		e = v
	default:
		return nil, &UnknownEventError{Type: eventType}
	}
	return e, nil
}

type UnknownEventError struct{ Type string }

func (e *UnknownEventError) Error() string { return "unknown conversation event type " + e.Type }
