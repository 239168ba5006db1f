package messaging

import "github.com/nova-chat/nova/events"

// Metadata keys of fan-out messages as Watermill handlers see them (owned by package events,
// the contract other services import).
const (
	MetaConversationID = events.MetaConversationID
	MetaStreamKey      = events.MetaStreamKey
	MetaEntryID        = events.MetaEntryID
	MetaParticipants   = events.MetaParticipants
	MetaSeq            = events.MetaSeq
	MetaSenderID       = events.MetaSenderID
	// MetaMalformed is set (to the reason) on an entry whose envelope could not be read; handlers
	// never see it: the router sends it to the dead-letter stream.
	MetaMalformed = events.MetaMalformed
)

// FanoutUnmarshaller reads fan-out entries and never fails (see events.Unmarshaller).
type FanoutUnmarshaller = events.Unmarshaller
