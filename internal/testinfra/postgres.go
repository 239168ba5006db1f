// Package testinfra gives tests real, private infrastructure: a fresh Postgres database per
// test package and a private redis-server per test, so runs never collide.
package testinfra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/adapters/postgres"
)

// AdminURL is the Postgres where tests may CREATE DATABASE (NOVA_TEST_DATABASE_URL, set by make test).
func AdminURL() string {
	if u := os.Getenv("NOVA_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database for this test and drops it afterwards.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("connect to test Postgres %s (run tests with `make test`, which starts it): %v", redact(AdminURL()), err)
	}
	defer admin.Close(ctx)
	name := "nova_test_" + randomHex(6)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, AdminURL()); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(ctx)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// NewMigratedPool opens a pool on a fresh database with every migration applied.
func NewMigratedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, closePool, err := postgres.NewPool(ctx, postgres.DSN(NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closePool)
	m, closeMigrator, err := postgres.NewMigrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeMigrator)
	if err := m.Up(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	return pool
}
