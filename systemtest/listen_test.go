package systemtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nova-chat/nova/internal/testinfra"
)

// TestOnlyTheRelayLeaderListens: a session that LISTENs queues every notification until it
// reads them, so an instance that is not the relay leader (and reads none) must not listen, or
// its memory grows with every send of the deployment.
func TestOnlyTheRelayLeaderListens(t *testing.T) {
	// given three instances of one deployment
	rds := testinfra.StartRedis(t)
	db := testinfra.NewDatabase(t)
	env := testinfra.Env{DatabaseURL: db, RedisURL: rds.URL()}
	for range 3 {
		testinfra.StartProcess(t, env)
	}
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	// then exactly one session's last statement is LISTEN (the leader's, which listens only
	// once it holds the lock), and the others only ask for the lock. (Postgres shows no list of
	// listeners; before the fix every session listened first, so none showed LISTEN last.)
	listening := func() (listen, asking int) {
		rows, err := conn.Query(context.Background(), `SELECT query FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var q string
			_ = rows.Scan(&q)
			switch {
			case len(q) >= 6 && q[:6] == "LISTEN":
				listen++
			case q == "SELECT pg_try_advisory_lock($1)":
				asking++
			}
		}
		return listen, asking
	}
	testinfra.Eventually(t, 10*time.Second, "one listener and two sessions waiting for the lock", func() bool {
		l, a := listening()
		return l == 1 && a == 2
	})
	// and it stays so
	time.Sleep(2 * time.Second)
	if l, a := listening(); l != 1 || a != 2 {
		t.Fatalf("%d sessions listen and %d ask for the lock, want 1 and 2", l, a)
	}
}
