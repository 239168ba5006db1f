package memory_test

import (
	"testing"

	"github.com/nova-chat/nova/adapters/memory"
	"github.com/nova-chat/nova/adapters/repositorytest"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

func TestConversationRepositoryContract(t *testing.T) {
	repositorytest.RunConversationRepositorySuite(t, func(*testing.T) conversation.Repository {
		return memory.NewConversationRepository()
	})
}

func TestClientSyncRepositoryContract(t *testing.T) {
	repositorytest.RunClientSyncRepositorySuite(t, func(*testing.T) clientsync.Repository {
		return memory.NewClientSyncRepository()
	})
}
