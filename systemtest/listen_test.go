package systemtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nova-chat/nova/internal/testinfra"
)

// TestOnlyTheRelayLeaderListens: a session that LISTENs queues every notification until it
// reads them, so an instance that leads no relay shard (and reads none) must not listen, or
// its memory grows with every send of the deployment. With one fan-out partition one instance
// of three leads the one shard; with four partitions two instances lead two shards each.
func TestOnlyTheRelayLeaderListens(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		partitions             string
		wantRelays, wantListen int // relays = instances
	}{
		{"one shard, three instances", "1", 3, 1},
		{"two shards, three instances", "2", 3, 2},
		{"four shards, two instances", "4", 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rds := testinfra.StartRedis(t)
			db := testinfra.NewDatabase(t)
			env := testinfra.Env{DatabaseURL: db, RedisURL: rds.URL(), Settings: map[string]string{"NOVA_FANOUT_PARTITIONS": tc.partitions}}
			for range tc.wantRelays {
				testinfra.StartProcess(t, env)
			}
			sessions := relaySessions(t, db)
			testinfra.Eventually(t, 10*time.Second, "the leaders' listeners and nobody else's", func() bool {
				relays, listen := sessions()
				return relays == tc.wantRelays && listen == tc.wantListen
			})
			// and it stays so
			time.Sleep(2 * time.Second)
			if relays, listen := sessions(); relays != tc.wantRelays || listen != tc.wantListen {
				t.Fatalf("%d relay sessions and %d listening, want %d and %d", relays, listen, tc.wantRelays, tc.wantListen)
			}
		})
	}
}

// relaySessions counts the relay's lock sessions and the sessions that listen (those whose last
// statement is LISTEN; Postgres shows no list of listeners) in the database.
func relaySessions(t *testing.T, db string) func() (relays, listening int) {
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return func() (relays, listening int) {
		err := conn.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE application_name = 'nova-relay'),
				count(*) FILTER (WHERE query LIKE 'LISTEN%')
			FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&relays, &listening)
		if err != nil {
			t.Fatal(err)
		}
		return relays, listening
	}
}
