package postgres

// DecodeConversationEvent lets the repository tests replay what the events table holds.
var DecodeConversationEvent = decodeConversationEvent
