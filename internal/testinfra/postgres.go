// Package testinfra gives tests real, private infrastructure: a fresh Postgres database per
// test package and a private redis-server per test, so runs never collide.
package testinfra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
	dbURL, drop, err := CreateDatabase(ctx, AdminURL(), "nova_test_")
	if err != nil {
		t.Fatalf("%v (run tests with `make test`, which starts Postgres)", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = drop(ctx)
	})
	return dbURL
}

// CreateDatabase creates an empty database named prefix + a random suffix on the Postgres at
// admin, and returns its URL and the function that drops it (closing its sessions).
func CreateDatabase(ctx context.Context, admin, prefix string) (dbURL string, drop func(context.Context) error, err error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("admin URL: %w", err)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect to Postgres %s: %w", Redacted(admin), err)
	}
	defer conn.Close(ctx)
	name := prefix + randomHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop = func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		return err
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Redacted is the URL s with its password hidden, for messages.
func Redacted(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Pool opens a pool on an existing database (a test's look into what the instances wrote).
func Pool(t testing.TB, databaseURL string) *pgxpool.Pool {
	t.Helper()
	pool, closePool, err := postgres.NewPool(context.Background(), postgres.DSN(databaseURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closePool)
	return pool
}

// NewMigratedPool opens a pool on a fresh database with every migration applied.
func NewMigratedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	_, pool := NewMigratedDatabase(t)
	return pool
}

// NewMigratedDatabase is NewMigratedPool that also returns the database's URL.
func NewMigratedDatabase(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	dbURL := NewDatabase(t)
	pool, closePool, err := postgres.NewPool(ctx, postgres.DSN(dbURL))
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
	return dbURL, pool
}
