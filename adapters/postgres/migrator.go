package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/nova-chat/nova/migrations"
)

// Migrator applies the embedded migrations with goose under a Postgres advisory lock,
// so several instances starting at once apply each migration exactly once.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

func NewMigrator(pool *pgxpool.Pool) (*Migrator, func(), error) {
	db := stdlib.OpenDBFromPool(pool)
	// retry the lock every second (not goose's default 5 s), for up to five minutes, so
	// instances started together do not wait long for the one applying migrations
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return &Migrator{db: db, provider: p}, func() { _ = db.Close() }, nil
}

// Up applies every pending migration.
func (m *Migrator) Up(ctx context.Context, log *slog.Logger) error {
	results, err := m.provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}
	return nil
}

// Pending reports whether migrations remain to be applied (used by /readyz).
func (m *Migrator) Pending(ctx context.Context) (bool, error) {
	return m.provider.HasPending(ctx)
}
