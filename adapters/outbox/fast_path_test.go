package outbox_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/messagejson"
	"github.com/nova-chat/nova/internal/testinfra"
)

// committedRow writes and commits one outbox row and returns what the repository would signal.
func (f *fixture) committedRow(t *testing.T, conv string, seq int64) postgres.CommittedMessage {
	t.Helper()
	m := conversation.Message{ID: uuid.NewString(), ConversationID: conversation.ID(conv), Seq: seq,
		StreamID: conversation.StreamID(seq), SenderID: conversation.UserID(uuid.NewString()), ClientMsgID: "c",
		Body: json.RawMessage(`1`), CreatedAt: time.Now().UTC()}
	payload, _ := messagejson.Encode(m)
	cm := postgres.CommittedMessage{Message: m, Payload: payload}
	if err := f.pool.QueryRow(context.Background(), `INSERT INTO outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, conv, seq, m.ID, string(m.SenderID), m.CreatedAt, payload).Scan(&cm.OutboxID); err != nil {
		t.Fatal(err)
	}
	return cm
}

func TestFastPathPublishesTheNextSeqAndDefersAGapToTheRelay(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relay := f.relay()
	fast := outbox.NewFastPath(f.pool, f.pub, relay, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { _ = fast.Run(ctx) }()
	conv := uuid.NewString()
	one, two, three := f.committedRow(t, conv, 1), f.committedRow(t, conv, 2), f.committedRow(t, conv, 3)

	// when the fast path hears of seq 2 before seq 1 is in the stream (another instance is slower)
	fast.Committed([]postgres.CommittedMessage{two})

	// then it does not write it: 2 does not follow the stream's top, and the row stays for the relay
	waitUntil(t, func() bool { return fast.Stats().Deferred == 1 }, "seq 2 deferred")
	if ids := f.streamIDs(t, redisstream.ConversationStream(conv)); len(ids) != 0 {
		t.Fatalf("the fast path wrote %v ahead of seq 1", ids)
	}

	// when it hears of seq 1, that one goes straight out and its row is deleted
	fast.Committed([]postgres.CommittedMessage{one})
	waitUntil(t, func() bool { return len(f.streamIDs(t, redisstream.ConversationStream(conv))) == 1 }, "seq 1 published")

	// and the relay publishes what was deferred, in order, after which 3 follows by the fast path
	f.relayAll(t, relay)
	fast.Committed([]postgres.CommittedMessage{three})
	waitUntil(t, func() bool { return len(f.streamIDs(t, redisstream.ConversationStream(conv))) == 3 }, "all three")
	if ids := f.streamIDs(t, redisstream.ConversationStream(conv)); ids[0] != "1-0" || ids[1] != "2-0" || ids[2] != "3-0" {
		t.Fatalf("stream = %v", ids)
	}
	waitUntil(t, func() bool {
		var n int
		_ = f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n)
		return n == 0
	}, "every row deleted once Redis held it")
	if n := f.rdb.XLen(ctx, redisstream.FanoutStream).Val(); n != 3 {
		t.Fatalf("fan-out holds %d entries, want 3 (each once)", n)
	}
}

func TestRowsTheFastPathPublishedJustBeforeItStopsAreStillDeleted(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	fast := outbox.NewFastPath(f.pool, f.pub, f.relay(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = fast.Run(ctx) }()
	conv := uuid.NewString()

	// when a row is published and the instance stops before the rows' batched delete is due
	fast.Committed([]postgres.CommittedMessage{f.committedRow(t, conv, 1)})
	waitUntil(t, func() bool { return len(f.streamIDs(t, redisstream.ConversationStream(conv))) == 1 }, "seq 1 published")
	cancel()
	<-stopped

	// then its row is deleted before Run returns
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("outbox holds %d rows after the fast path stopped (err %v)", n, err)
	}
}

// A request that committed just before the instance was told to stop has handed its message to
// the fast path; stopping publishes it (and deletes its row) instead of leaving it to the relay,
// which may not lead its shard yet, so a graceful stop gets what was committed into Redis.
func TestWhatWasQueuedWhenTheFastPathStopsIsPublished(t *testing.T) {
	f := newFixture(t)
	fast := outbox.NewFastPath(f.pool, f.pub, f.relay(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	conv := uuid.NewString()
	fast.Committed([]postgres.CommittedMessage{f.committedRow(t, conv, 1), f.committedRow(t, conv, 2)})

	// when the fast path runs only after the stop (the queue and the stop are both waiting)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fast.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// then both are in the stream and their rows are gone
	if ids := f.streamIDs(t, redisstream.ConversationStream(conv)); len(ids) != 2 {
		t.Fatalf("stream holds %v after the stop, want seqs 1 and 2", ids)
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("outbox holds %d rows after the fast path stopped (err %v)", n, err)
	}
}

func TestABurstOfMoreRowsThanOneDeleteTakesIsDeletedWhole(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fast := outbox.NewFastPath(f.pool, f.pub, f.relay(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { _ = fast.Run(ctx) }()
	conv := uuid.NewString()
	const n = 1001 // one more than a batched delete holds
	burst := make([]postgres.CommittedMessage, n)
	for i := range burst {
		burst[i] = f.committedRow(t, conv, int64(i+1))
	}

	// when one publish hands the deleter more rows than one delete takes
	fast.Committed(burst)

	// then every row is published once and deleted
	waitUntil(t, func() bool { return f.rdb.XLen(ctx, redisstream.ConversationStream(conv)).Val() == n }, "the burst published")
	waitUntil(t, func() bool {
		var left int
		_ = f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left)
		return left == 0
	}, "every row of the burst deleted")
	if s := fast.Stats(); s.Published != n || s.Deferred != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v, want all %d published by the fast path", s, n)
	}
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	testinfra.Eventually(t, 5*time.Second, what, cond)
}
