package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/internal/testinfra"
)

// The outbox's oldest row is aged by the database's clock: a row whose message time came from an
// instance whose clock runs an hour behind is seconds old, not an hour.
func TestTheOutboxsOldestRowIsAgedByTheDatabasesClock(t *testing.T) {
	pool := testinfra.NewMigratedPool(t)
	ctx := context.Background()
	inspector := postgres.NewOutboxInspector(pool)
	if got, err := inspector.Outbox(ctx); err != nil || got.Rows != 0 || got.OldestAge != 0 {
		t.Fatalf("empty outbox: %+v, %v", got, err)
	}

	if _, err := pool.Exec(ctx, `INSERT INTO outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
		VALUES ($1, 1, $2, $3, now() - interval '1 hour', '{}')`, uuid.NewString(), uuid.NewString(), uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	got, err := inspector.Outbox(ctx)
	if err != nil || got.Rows != 1 || got.OldestAge > time.Minute {
		t.Fatalf("one fresh row whose sender's clock runs an hour behind: %+v, %v; want 1 row, under a minute old", got, err)
	}

	if _, err := pool.Exec(ctx, `UPDATE outbox SET queued_at = clock_timestamp() - interval '90 seconds'`); err != nil {
		t.Fatal(err)
	}
	got, err = inspector.Outbox(ctx)
	if err != nil || got.OldestAge < 90*time.Second || got.OldestAge > 100*time.Second {
		t.Fatalf("a row queued 90 s ago: %+v, %v", got, err)
	}
}
