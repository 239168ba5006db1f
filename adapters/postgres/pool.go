// Package postgres holds Nova's driven adapters on Postgres: the event store, read models and outbox.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DSN is the Postgres connection string (DATABASE_URL).
type DSN string

// idleInTransactionTimeout ends a transaction left open between statements for this long.
const idleInTransactionTimeout = "3s"

// NewPool opens a pgx pool. Requests fail fast while Postgres is down and the pool reconnects by itself.
func NewPool(ctx context.Context, dsn DSN) (*pgxpool.Pool, func(), error) {
	cfg, err := pgxpool.ParseConfig(string(dsn))
	if err != nil {
		return nil, nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	if _, set := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		// Nova's transactions never wait between statements (two pipelined round trips at most);
		// one that does belongs to a frozen process (SIGSTOP, a paused VM) and holds the row
		// locks of the conversations it writes: Postgres ends it, and the writers queued behind
		// go on. The frozen process's request fails; the client's retry is idempotent.
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = idleInTransactionTimeout
	}
	cfg.HealthCheckPeriod = 5 * time.Second
	cfg.ConnConfig.ConnectTimeout = 3 * time.Second
	cfg.ConnConfig.DialFunc = dialer().DialContext
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	return pool, pool.Close, nil
}

// SendTransaction sends b, which opens and ends a transaction itself (BEGIN ... COMMIT), on one
// connection in one round trip. When anything in it failed, Postgres skipped the rest, COMMIT
// included, and the transaction is rolled back here (a ROLLBACK after a transaction that had
// already ended only draws a warning).
func SendTransaction(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		rollback(ctx, conn)
		return err
	}
	return nil
}

// rollback ends the failed transaction of a batch on conn. Its own error needs no handling:
// pgxpool does not put back a connection that is still inside a transaction (or broken, or
// busy) but closes it on Release, and Postgres then rolls the transaction back itself, so no
// later caller ever runs in it.
func rollback(ctx context.Context, conn *pgxpool.Conn) {
	_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
}
