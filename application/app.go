// Package application holds Nova's use cases; it depends on the domain and on interfaces it declares.
package application

import (
	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/application/query"
)

type Application struct {
	Commands Commands
	Queries  Queries
}

type Commands struct {
	StartConversation  command.StartConversationHandler
	ChangeParticipants command.ChangeParticipantsHandler
	PostMessage        command.PostMessageHandler
	AcknowledgeSync    command.AcknowledgeSyncHandler
	CountOffline       command.CountOfflineHandler
}

type Queries struct {
	Conversations query.Conversations
	Messages      query.Messages
	Cursors       query.Cursors
}
