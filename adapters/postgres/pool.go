// Package postgres holds Nova's driven adapters on Postgres: the event store, read models and outbox.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DSN is the Postgres connection string (DATABASE_URL).
type DSN string

// NewPool opens a pgx pool. Requests fail fast while Postgres is down and the pool reconnects by itself.
func NewPool(ctx context.Context, dsn DSN) (*pgxpool.Pool, func(), error) {
	cfg, err := pgxpool.ParseConfig(string(dsn))
	if err != nil {
		return nil, nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	cfg.HealthCheckPeriod = 5 * time.Second
	cfg.ConnConfig.ConnectTimeout = 3 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	return pool, pool.Close, nil
}
