package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/internal/testinfra"
)

type fixture struct {
	pool  *pgxpool.Pool
	rdb   *redis.Client
	redis *testinfra.Redis
	pub   *redisstream.DualStreamPublisher
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pool := testinfra.NewMigratedPool(t)
	r := testinfra.StartRedis(t)
	rdb := r.Client()
	return &fixture{pool: pool, rdb: rdb, redis: r, pub: redisstream.NewDualStreamPublisher(rdb, 1000, true, 1)}
}

func (f *fixture) relay() *outbox.Relay {
	return outbox.NewRelay(f.pool, f.pub, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// addRow writes one outbox row inside tx, as the send path does.
func addRow(t testing.TB, tx pgx.Tx, conv string, seq int64) string {
	t.Helper()
	id := uuid.NewString()
	m := conversation.Message{ID: id, ConversationID: conversation.ID(conv), Seq: seq, StreamID: conversation.StreamID(seq),
		SenderID: conversation.UserID(uuid.NewString()), ClientMsgID: id, Body: json.RawMessage(`{"n":1}`), CreatedAt: time.Now().UTC()}
	payload, _ := messagejson.Encode(m)
	if _, err := tx.Exec(context.Background(), `INSERT INTO outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
		VALUES ($1, $2, $3, $4, $5, $6)`, conv, seq, id, string(m.SenderID), m.CreatedAt, payload); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) begin(t testing.TB) pgx.Tx {
	tx, err := f.pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

func (f *fixture) relayAll(t *testing.T, r *outbox.Relay) {
	t.Helper()
	for {
		n, err := r.RelayOnce(context.Background())
		if err != nil {
			t.Fatalf("relay: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

func (f *fixture) streamIDs(t *testing.T, key string) []string {
	t.Helper()
	entries, err := f.rdb.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	return ids
}

func (f *fixture) fanoutMessageIDs(t *testing.T) []string {
	t.Helper()
	entries, err := f.rdb.XRange(context.Background(), redisstream.FanoutStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = fmt.Sprint(e.Values["_watermill_message_uuid"])
	}
	return ids
}

func TestRelayDeliversLateCommitsAndNeverRolledBackOnes(t *testing.T) {
	f := newFixture(t)
	r := f.relay()
	ctx := context.Background()
	convA, convB, convC := uuid.NewString(), uuid.NewString(), uuid.NewString()

	// given transactions A, B, C begun in that order, each writing an outbox row
	txA, txB, txC := f.begin(t), f.begin(t), f.begin(t)
	idA, idB, idC := addRow(t, txA, convA, 1), addRow(t, txB, convB, 1), addRow(t, txC, convC, 1)

	// when C commits and the relay runs before A has committed
	if err := txC.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	f.relayAll(t, r)
	// and B rolls back, A commits, and the relay runs again
	_ = txB.Rollback(ctx)
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	f.relayAll(t, r)

	// then C and A are published (A is not skipped for committing late) and B never is
	got := f.fanoutMessageIDs(t)
	if len(got) != 2 || got[0] != idC || got[1] != idA {
		t.Fatalf("fan-out holds %v, want [C=%s A=%s] (B=%s must not appear)", got, idC, idA, idB)
	}
	if ids := f.streamIDs(t, redisstream.ConversationStream(convB)); len(ids) != 0 {
		t.Fatalf("rolled-back B was published: %v", ids)
	}
	var left int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("outbox still holds %d rows (err %v)", left, err)
	}
}

func TestRelayCrashBetweenRedisWriteAndAckWritesEachStreamOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conv := uuid.NewString()
	tx := f.begin(t)
	msgID := addRow(t, tx, conv, 1)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// given a relay that wrote the entry to Redis and died before deleting its outbox row
	var entry redisstream.Entry
	if err := f.pool.QueryRow(ctx, `SELECT id, conversation_id, seq, message_id, sender_id, created_at, payload FROM outbox`).
		Scan(&entry.OutboxID, &entry.ConversationID, &entry.Seq, &entry.MessageID, &entry.SenderID, &entry.CreatedAt, &entry.Payload); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pub.Publish(ctx, [][]redisstream.Entry{{entry}}); err != nil {
		t.Fatal(err)
	}

	// when a fresh relay starts and relays the outbox
	r := f.relay()
	f.relayAll(t, r)

	// then each stream holds the message exactly once and the re-send was counted as a duplicate
	if ids := f.streamIDs(t, redisstream.ConversationStream(conv)); len(ids) != 1 || ids[0] != "1-0" {
		t.Fatalf("conversation stream = %v, want [1-0]", ids)
	}
	if got := f.fanoutMessageIDs(t); len(got) != 1 || got[0] != msgID {
		t.Fatalf("fan-out = %v, want [%s]", got, msgID)
	}
	if d := r.Stats().Duplicates; d != 1 {
		t.Fatalf("duplicates = %d, want 1", d)
	}
}

func TestConcurrentRelaysKeepEachConversationInSeqOrder(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	convs := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}

	// given 3 conversations with 400 committed messages each, written interleaved
	const perConv = 400
	tx := f.begin(t)
	for seq := int64(1); seq <= perConv; seq++ {
		for _, c := range convs {
			addRow(t, tx, c, seq)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// when three relays (as after a leader hand-over) race over the same outbox
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.relay()
			for {
				n, err := r.RelayOnce(ctx)
				if err != nil {
					t.Errorf("relay: %v", err)
					return
				}
				if n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()

	// then every conversation stream holds 1-0 ... 400-0, each once, in order
	for _, c := range convs {
		ids := f.streamIDs(t, redisstream.ConversationStream(c))
		if len(ids) != perConv {
			t.Fatalf("conversation %s has %d entries, want %d", c, len(ids), perConv)
		}
		for i, id := range ids {
			if want := fmt.Sprintf("%d-0", i+1); id != want {
				t.Fatalf("conversation %s entry %d = %s, want %s", c, i, id, want)
			}
		}
	}
	if n := f.rdb.XLen(ctx, redisstream.FanoutStream).Val(); n != perConv*int64(len(convs)) {
		t.Fatalf("fan-out has %d entries, want %d", n, perConv*len(convs))
	}
}

func TestUndecodableOutboxRowIsMovedAsideAndTheRestFlows(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conv := uuid.NewString()

	// given a corrupt row followed by a good one
	tx := f.begin(t)
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
		VALUES ($1, 1, $2, $3, now(), 'not json')`, conv, uuid.NewString(), uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	good := addRow(t, tx, conv, 2)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// when the relay runs
	r := f.relay()
	f.relayAll(t, r)

	// then the corrupt row is set aside and counted, and the good one is published
	var dead int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox_dead WHERE conversation_id = $1 AND seq = 1`, conv).Scan(&dead); err != nil || dead != 1 {
		t.Fatalf("outbox_dead holds %d rows for the corrupt one (err %v)", dead, err)
	}
	if got := f.fanoutMessageIDs(t); len(got) != 1 || got[0] != good {
		t.Fatalf("fan-out = %v, want [%s]", got, good)
	}
	if n := r.Stats().MovedAside; n != 1 {
		t.Fatalf("moved aside = %d, want 1", n)
	}
}

func TestRelayKeepsRowsWhileRedisIsDownAndFlushesThemAfter(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := f.relay()
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// given Redis is down
	f.redis.Stop()
	conv := uuid.NewString()
	// when messages commit meanwhile
	for seq := int64(1); seq <= 5; seq++ {
		tx := f.begin(t)
		addRow(t, tx, conv, seq)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		r.Notify()
	}
	time.Sleep(300 * time.Millisecond)
	var waiting int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&waiting); err != nil || waiting != 5 {
		t.Fatalf("outbox holds %d rows while Redis is down, want 5 (err %v)", waiting, err)
	}

	// then once Redis is back (empty) the backlog flows, in order
	f.redis.Start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ids := f.streamIDs(t, redisstream.ConversationStream(conv))
		if len(ids) == 5 {
			for i, id := range ids {
				if id != fmt.Sprintf("%d-0", i+1) {
					t.Fatalf("entry %d = %s", i, id)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Redis came back the stream holds %v", ids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestARelayWhoseSessionsWentHalfOpenLeadsAgainOnNewOnes(t *testing.T) {
	dbURL, pool := testinfra.NewMigratedDatabase(t)
	proxied, proxy := testinfra.ProxiedDatabaseURL(t, dbURL)
	u, err := url.Parse(proxied)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "via-proxy")
	u.RawQuery = q.Encode()
	rdb := testinfra.StartRedis(t).Client()
	r := outbox.NewRelay(testinfra.Pool(t, u.String()), redisstream.NewDualStreamPublisher(rdb, 1000, true, 1), 1,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	f := &fixture{pool: pool, rdb: rdb}
	conv := uuid.NewString()
	commit := func(seq int64) {
		tx := f.begin(t)
		addRow(t, tx, conv, seq)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		r.Notify()
	}
	relayed := func(n int) func() bool {
		return func() bool { return len(f.streamIDs(t, redisstream.ConversationStream(conv))) == n }
	}
	testinfra.Eventually(t, 10*time.Second, "the relay leads", func() bool { led, _ := r.Leading(); return led == 1 })
	commit(1)
	testinfra.Eventually(t, 10*time.Second, "the first row is relayed", relayed(1))

	// when the network path of every connection the relay holds dies without a reset (the
	// proxy swallows their traffic), and Postgres gives up on those sessions, as its keep-alive
	// would, so the shard lock goes with them (what reaches the relay of that: nothing)
	proxy.Swallow()
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name IN ('via-proxy', 'nova-relay', 'nova-relay-listener')`); err != nil {
		t.Fatal(err)
	}
	commit(2)

	// then the relay gives up on them in turn (each statement waits 10 s at most: about 10 s for
	// its pool, 10 more for its session), opens new sessions, leads again and relays
	testinfra.Eventually(t, 45*time.Second, "the row committed after the path died is relayed", relayed(2))
}
