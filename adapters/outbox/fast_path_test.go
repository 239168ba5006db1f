package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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
	return f.committedRows(t, conv, seq, 1)[0]
}

// runFastPath runs a fast path publishing through pub, deferring to relay, until the test ends
// (and waits for it to stop, so it is done before the fixture's Postgres and Redis go).
func (f *fixture) runFastPath(t *testing.T, pub outbox.NextPublisher, relay *outbox.Relay) *outbox.FastPath {
	t.Helper()
	fast := outbox.NewFastPath(f.pool, pub, relay, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = fast.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return fast
}

func TestFastPathPublishesTheNextSeqAndDefersAGapToTheRelay(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	relay := f.relay()
	fast := f.runFastPath(t, f.pub, relay)
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
	ctx := context.Background()
	fast := f.runFastPath(t, f.pub, f.relay())
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

// The fast path's queue is the instance's, not one lane's: commits into the conversations of one
// lane (here of one conversation) may fill all of it before anything is left to the relay.
func TestOneLaneMayFillTheWholeQueue(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	fast := outbox.NewFastPath(f.pool, f.pub, f.relay(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	conv := uuid.NewString()
	rows := f.committedRows(t, conv, 1, outbox.FastPathQueue+1)

	// when a whole queue of commits of one conversation arrives before any is published (as
	// while Redis is slow), and then one more
	for _, cm := range rows[:outbox.FastPathQueue] {
		fast.Committed([]postgres.CommittedMessage{cm})
	}
	if s := fast.Stats(); s.Dropped != 0 {
		t.Fatalf("%d of %d commits of one lane were left to the relay; the queue holds %d over all lanes",
			s.Dropped, outbox.FastPathQueue, outbox.FastPathQueue)
	}
	fast.Committed(rows[outbox.FastPathQueue:])
	if s := fast.Stats(); s.Dropped != 1 {
		t.Fatalf("stats %+v after one commit more than the queue holds, want that one left to the relay", s)
	}

	// then, once the fast path runs, every queued one is published in order, and the one left
	// over stays in the outbox for the relay
	done := make(chan struct{})
	runCtx, cancel := context.WithCancel(ctx)
	go func() { defer close(done); _ = fast.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitUntil(t, func() bool { return fast.Stats().Published == outbox.FastPathQueue }, "the queue published")
	last, err := f.rdb.XRevRangeN(ctx, redisstream.ConversationStream(conv), "+", "-", 1).Result()
	if err != nil || len(last) != 1 || last[0].ID != fmt.Sprintf("%d-0", outbox.FastPathQueue) {
		t.Fatalf("the stream ends at %v (err %v), want seq %d", last, err, outbox.FastPathQueue)
	}
	waitUntil(t, func() bool {
		var seqs []int64
		left, err := f.pool.Query(ctx, `SELECT seq FROM outbox`)
		if err == nil {
			seqs, err = pgx.CollectRows(left, pgx.RowTo[int64])
		}
		return err == nil && len(seqs) == 1 && seqs[0] == outbox.FastPathQueue+1
	}, "only the row left to the relay still in the outbox")
}

// committedRows writes and commits n outbox rows of conv (seqs first, first+1, ...) in one
// statement and returns what the repository would signal for each, in seq order.
func (f *fixture) committedRows(t *testing.T, conv string, first int64, n int) []postgres.CommittedMessage {
	t.Helper()
	out := make([]postgres.CommittedMessage, n)
	ids, senders, created, payloads := make([]string, n), make([]string, n), make([]time.Time, n), make([][]byte, n)
	for i := range out {
		m := conversation.Message{ID: uuid.NewString(), ConversationID: conversation.ID(conv), Seq: first + int64(i),
			StreamID: conversation.StreamID(first + int64(i)), SenderID: conversation.UserID(uuid.NewString()), ClientMsgID: "c",
			Body: json.RawMessage(`1`), CreatedAt: time.Now().UTC()}
		payload, err := messagejson.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = postgres.CommittedMessage{Message: m, Payload: payload}
		ids[i], senders[i], created[i], payloads[i] = m.ID, string(m.SenderID), m.CreatedAt, payload
	}
	rows, err := f.pool.Query(context.Background(), `INSERT INTO outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
		SELECT $1, $6 + i - 1, m, u, c, p FROM unnest($2::uuid[], $3::uuid[], $4::timestamptz[], $5::bytea[]) WITH ORDINALITY AS t(m, u, c, p, i)
		RETURNING seq, id`, conv, ids, senders, created, payloads, first)
	if err != nil {
		t.Fatal(err)
	}
	var seq, id int64
	if _, err := pgx.ForEachRow(rows, []any{&seq, &id}, func() error { out[seq-first].OutboxID = id; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// blockingPublisher holds every publish that includes a conversation of blocked until release
// is closed (or its ctx ends), as a Redis round trip that takes long would.
type blockingPublisher struct {
	outbox.NextPublisher
	blocked string
	held    chan struct{} // closed when a publish of blocked is being held
	release chan struct{}
	once    sync.Once
}

func (p *blockingPublisher) PublishNext(ctx context.Context, byConversation [][]redisstream.Entry) (redisstream.PublishResult, error) {
	for _, entries := range byConversation {
		if entries[0].ConversationID == p.blocked {
			p.once.Do(func() { close(p.held) })
			select {
			case <-p.release:
			case <-ctx.Done():
				return redisstream.PublishResult{}, ctx.Err()
			}
		}
	}
	return p.NextPublisher.PublishNext(ctx, byConversation)
}

// conversationInLane returns a new conversation id whose messages take the fast path's lane
// (the lane is the conversation's partition among FastPathLanes).
func conversationInLane(lane int) string { return testinfra.ConversationIn(lane, outbox.FastPathLanes) }

// A publish that takes long holds up the conversations of its own lane only: a message of
// another conversation, committed meanwhile, goes out at once (with one lane it waited).
func TestASlowPublishHoldsUpOnlyTheConversationsOfItsLane(t *testing.T) {
	f := newFixture(t)
	slow, other := conversationInLane(0), conversationInLane(1)
	pub := &blockingPublisher{NextPublisher: f.pub, blocked: slow, held: make(chan struct{}), release: make(chan struct{})}
	fast := f.runFastPath(t, pub, f.relay())

	// when one conversation's publish is on its way and slow
	fast.Committed([]postgres.CommittedMessage{f.committedRow(t, slow, 1)})
	select {
	case <-pub.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow conversation's publish never started")
	}
	// and another conversation commits a message meanwhile
	fast.Committed([]postgres.CommittedMessage{f.committedRow(t, other, 1)})

	// then that message is published while the slow one still waits
	waitUntil(t, func() bool { return len(f.streamIDs(t, redisstream.ConversationStream(other))) == 1 }, "the other conversation published")
	if ids := f.streamIDs(t, redisstream.ConversationStream(slow)); len(ids) != 0 {
		t.Fatalf("the slow publish was not held: stream %v", ids)
	}

	// and once the slow publish ends, its conversation goes on in order by the fast path
	close(pub.release)
	fast.Committed([]postgres.CommittedMessage{f.committedRow(t, slow, 2)})
	waitUntil(t, func() bool { return len(f.streamIDs(t, redisstream.ConversationStream(slow))) == 2 }, "the slow conversation published")
	// (the fast path counts a publish once Redis has answered it, a moment after the stream holds it)
	waitUntil(t, func() bool { return fast.Stats().Published == 3 }, "all 3 counted as published by the fast path")
	if s := fast.Stats(); s.Published != 3 || s.Deferred != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v, want all 3 published by the fast path", s)
	}
}

// Publishes run side by side in lanes, yet a conversation always takes the same lane: messages
// committed one by one, many conversations interleaved, all go out in order by the fast path,
// and none finds a gap (which it would if two lanes raced on one conversation).
func TestEachConversationKeepsItsOrderAcrossTheLanes(t *testing.T) {
	f := newFixture(t)
	fast := f.runFastPath(t, f.pub, f.relay())
	const convs, perConv = 16, 40
	ids := make([]string, convs)
	for i := range ids {
		ids[i] = conversationInLane(i % outbox.FastPathLanes)
	}
	rows := make([][]postgres.CommittedMessage, convs)
	for i, conv := range ids {
		for seq := int64(1); seq <= perConv; seq++ {
			rows[i] = append(rows[i], f.committedRow(t, conv, seq))
		}
	}

	// when each message is handed over alone, the conversations interleaved
	for seq := range perConv {
		for i := range ids {
			fast.Committed([]postgres.CommittedMessage{rows[i][seq]})
		}
	}
	// and one commit hands over messages of several conversations at once
	var mixed []postgres.CommittedMessage
	for i, conv := range ids {
		rows[i] = append(rows[i], f.committedRow(t, conv, perConv+1))
		mixed = append(mixed, rows[i][perConv])
	}
	fast.Committed(mixed)

	// then every conversation's stream holds 1..perConv+1 in order, all written by the fast path
	// once (on this fresh Redis the publisher loads its scripts before the lanes' first publish,
	// so no pipeline meets an empty script cache and runs again)
	total := int64(convs * (perConv + 1))
	waitUntil(t, func() bool {
		s := fast.Stats()
		return s.Published+s.Duplicates+s.Deferred+s.Dropped == total
	}, "every message handled")
	if s := fast.Stats(); s.Duplicates != 0 || s.Deferred != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v: a message was re-sent, or a conversation found a gap or a full lane", s)
	}
	for _, conv := range ids {
		got := f.streamIDs(t, redisstream.ConversationStream(conv))
		if len(got) != perConv+1 {
			t.Fatalf("conversation %s: stream holds %d entries, want %d", conv, len(got), perConv+1)
		}
		for j, id := range got {
			if want := conversation.StreamID(int64(j + 1)); id != want {
				t.Fatalf("conversation %s: entry %d is %s, want %s", conv, j, id, want)
			}
		}
	}
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	testinfra.Eventually(t, 5*time.Second, what, cond)
}
