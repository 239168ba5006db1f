package nova

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/application"
	"github.com/nova-chat/nova/application/command"
	"github.com/nova-chat/nova/application/query"
	"github.com/nova-chat/nova/domain/conversation"
	nhttp "github.com/nova-chat/nova/ports/http"
)

// Plain constructors that wire.go composes; each works without wire too.

func NewApplication(repo conversation.Repository, rm *postgres.ReadModel) application.Application {
	return application.Application{
		Commands: application.Commands{
			StartConversation:  command.NewStartConversationHandler(repo),
			ChangeParticipants: command.NewChangeParticipantsHandler(repo),
			PostMessage:        command.NewPostMessageHandler(repo, rm),
		},
		Queries: application.Queries{
			Conversations: query.NewConversations(rm),
			Messages:      query.NewMessages(rm),
		},
	}
}

// NewReadinessChecks are what /readyz asks: Postgres, Redis, and that migrations are applied.
func NewReadinessChecks(pool *pgxpool.Pool, rdb redis.UniversalClient, m *postgres.Migrator) []nhttp.ReadinessCheck {
	return []nhttp.ReadinessCheck{
		{Name: "postgres", Check: pool.Ping},
		{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		{Name: "migrations", Check: func(ctx context.Context) error {
			pending, err := m.Pending(ctx)
			if err == nil && pending {
				err = fmt.Errorf("pending")
			}
			return err
		}},
	}
}
