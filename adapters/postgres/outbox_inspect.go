package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/application/monitoring"
)

// OutboxInspector reads the relay's backlog: how many outbox rows wait and since when.
type OutboxInspector struct {
	pool *pgxpool.Pool
}

func NewOutboxInspector(pool *pgxpool.Pool) *OutboxInspector {
	if pool == nil {
		panic("postgres.NewOutboxInspector: nil pool")
	}
	return &OutboxInspector{pool: pool}
}

var _ monitoring.OutboxSource = (*OutboxInspector)(nil)

// Outbox counts the waiting rows. The oldest is the one with the lowest id (the relay works in
// id order), found through the primary key; its age is read off the database's clock alone
// (queued_at), whatever the instances' clocks say.
func (o *OutboxInspector) Outbox(ctx context.Context) (monitoring.Outbox, error) {
	var out monitoring.Outbox
	var oldest *float64 // seconds
	err := o.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox),
		(SELECT extract(epoch FROM clock_timestamp() - queued_at)::float8 FROM outbox ORDER BY id LIMIT 1),
		(SELECT count(*) FROM outbox_dead)`).Scan(&out.Rows, &oldest, &out.DeadRows)
	if err != nil {
		return monitoring.Outbox{}, fmt.Errorf("postgres: read outbox backlog: %w", err)
	}
	if oldest != nil {
		out.OldestAge = max(time.Duration(*oldest*float64(time.Second)), 0)
	}
	return out, nil
}
