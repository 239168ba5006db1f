package postgres

import (
	"encoding/json"
	"time"

	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/jsonenc"
	"github.com/nova-chat/nova/internal/messagejson"
)

// The data column of the events table: one JSON object per event type, declared here so that
// renaming a domain field cannot change stored history. These shapes are history: add fields,
// never rename or retype one (event_data_test.go holds one golden row per type).

type startedData struct {
	ConversationID string    `json:"conversation_id"`
	Title          string    `json:"title"`
	Participants   []string  `json:"participants"`
	StartedBy      string    `json:"started_by"`
	At             time.Time `json:"at"`
}

type participantAddedData struct {
	ConversationID string    `json:"conversation_id"`
	UserID         string    `json:"user_id"`
	AddedBy        string    `json:"added_by"`
	At             time.Time `json:"at"`
}

type participantRemovedData struct {
	ConversationID string    `json:"conversation_id"`
	UserID         string    `json:"user_id"`
	RemovedBy      string    `json:"removed_by"`
	At             time.Time `json:"at"`
}

type messagePostedData struct {
	Message messagejson.Message `json:"message"`
}

// acknowledgedData: the key's fields went out under their Go names from the first stored event on.
type acknowledgedData struct {
	Key struct {
		User         string `json:"User"`
		Client       string `json:"Client"`
		Conversation string `json:"Conversation"`
	} `json:"key"`
	Seq int64     `json:"seq"`
	At  time.Time `json:"at"`
}

// encodeConversationEvent is the data column of a conversation event.
func encodeConversationEvent(e conversation.Event) ([]byte, error) {
	var v any
	switch e := e.(type) {
	case conversation.Started:
		v = startedData{ConversationID: string(e.ConversationID), Title: e.Title, Participants: keepNil(e.Participants),
			StartedBy: string(e.StartedBy), At: e.At}
	case conversation.ParticipantAdded:
		v = participantAddedData{ConversationID: string(e.ConversationID), UserID: string(e.UserID), AddedBy: string(e.AddedBy), At: e.At}
	case conversation.ParticipantRemoved:
		v = participantRemovedData{ConversationID: string(e.ConversationID), UserID: string(e.UserID), RemovedBy: string(e.RemovedBy), At: e.At}
	case conversation.MessagePosted:
		v = messagePostedData{Message: messagejson.From(e.Message)}
	default:
		return nil, &UnknownEventError{Type: e.EventType()}
	}
	return jsonenc.Marshal(v)
}

// keepNil is userIDs, except that nil stays nil (null in JSON, as it was always stored).
func keepNil(us []conversation.UserID) []string {
	if us == nil {
		return nil
	}
	return userIDs(us)
}

// decodeConversationEvent turns a stored conversation event back into its type; unknown names
// are an error, never guessed.
func decodeConversationEvent(eventType string, data []byte) (conversation.Event, error) {
	switch eventType {
	case conversation.EventStarted:
		var v startedData
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		var participants []conversation.UserID
		if v.Participants != nil {
			participants = make([]conversation.UserID, len(v.Participants))
			for i, p := range v.Participants {
				participants[i] = conversation.UserID(p)
			}
		}
		return conversation.Started{ConversationID: conversation.ID(v.ConversationID), Title: v.Title, Participants: participants,
			StartedBy: conversation.UserID(v.StartedBy), At: v.At}, nil
	case conversation.EventParticipantAdded:
		var v participantAddedData
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		return conversation.ParticipantAdded{ConversationID: conversation.ID(v.ConversationID), UserID: conversation.UserID(v.UserID),
			AddedBy: conversation.UserID(v.AddedBy), At: v.At}, nil
	case conversation.EventParticipantRemoved:
		var v participantRemovedData
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		return conversation.ParticipantRemoved{ConversationID: conversation.ID(v.ConversationID), UserID: conversation.UserID(v.UserID),
			RemovedBy: conversation.UserID(v.RemovedBy), At: v.At}, nil
	case conversation.EventMessagePosted:
		var v messagePostedData
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		return conversation.MessagePosted{Message: messagejson.To(v.Message)}, nil
	default:
		return nil, &UnknownEventError{Type: eventType}
	}
}

// encodeAcknowledged is the data column of a ClientSync event.
func encodeAcknowledged(e clientsync.Acknowledged) ([]byte, error) {
	var v acknowledgedData
	v.Key.User, v.Key.Client, v.Key.Conversation = string(e.Key.User), string(e.Key.Client), string(e.Key.Conversation)
	v.Seq, v.At = e.Seq, e.At
	return jsonenc.Marshal(v)
}

// UnknownEventError: a stored event's name that no version of Nova wrote.
type UnknownEventError struct{ Type string }

func (e *UnknownEventError) Error() string { return "unknown conversation event type " + e.Type }
