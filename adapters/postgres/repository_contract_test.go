package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/repositorytest"
	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
)

// The contract every conversation.Repository keeps (adapters/repositorytest), here on a real
// database; after each test, what only Postgres keeps is checked too.
func TestConversationRepositoryContract(t *testing.T) {
	repositorytest.RunConversationRepositorySuite(t, func(t *testing.T) conversation.Repository {
		repo, pool, sig := newRepo(t)
		t.Cleanup(func() { checkReadModelsAndOutbox(t, pool, sig) }) // runs before the pool closes
		return repo
	})
}

func TestClientSyncRepositoryContract(t *testing.T) {
	repositorytest.RunClientSyncRepositorySuite(t, func(t *testing.T) clientsync.Repository {
		return postgres.NewClientSyncRepository(testinfra.NewMigratedPool(t))
	})
}

// checkReadModelsAndOutbox: every conversation has one event per version and messages 1 to its
// last seq, every message one outbox row, and the outbox signal heard of each once.
func checkReadModelsAndOutbox(t *testing.T, pool *pgxpool.Pool, sig *countingSignal) {
	ctx := context.Background()
	var badConversations int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM conversations c
		WHERE (SELECT count(*) FROM events e WHERE e.aggregate_id = c.id) <> c.version
		   OR (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) <> c.last_seq
		   OR (SELECT coalesce(max(seq), 0) FROM messages m WHERE m.conversation_id = c.id) <> c.last_seq`).
		Scan(&badConversations); err != nil {
		t.Fatal(err)
	}
	var messages, outbox int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM outbox)`).Scan(&messages, &outbox); err != nil {
		t.Fatal(err)
	}
	if badConversations != 0 || outbox != messages || sig.n.Load() != messages {
		t.Fatalf("%d conversations whose events or messages disagree with their state row; %d messages, %d outbox rows, %d signalled",
			badConversations, messages, outbox, sig.n.Load())
	}
}
