package outbox_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
)

// With four fan-out partitions the outbox has four relay shards: one relay alone leads all four,
// a second instance takes half of them, both relay rows, and when one stops the other leads all
// four again and relays what the stopped one would have.
func TestRelayShardsSpreadOverInstancesAndMoveWhenOneStops(t *testing.T) {
	const partitions = 4
	f := newFixture(t)
	f.pub = redisstream.NewDualStreamPublisher(f.rdb, 1000, true, partitions)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func() (*outbox.Relay, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		r := outbox.NewRelay(f.pool, f.pub, partitions, quiet)
		done := make(chan struct{})
		go func() { defer close(done); _ = r.Run(ctx) }()
		stop := func() { cancel(); <-done }
		t.Cleanup(stop)
		return r, stop
	}
	leads := func(r *outbox.Relay) int { led, _ := r.Leading(); return led }

	// given one relay, which leads every shard
	a, _ := start()
	testinfra.Eventually(t, 10*time.Second, "the only relay leads all 4 shards", func() bool { return leads(a) == 4 })

	// when a second instance's relay starts, the shards spread over both
	b, stopB := start()
	testinfra.Eventually(t, 10*time.Second, "2 shards each", func() bool { return leads(a) == 2 && leads(b) == 2 })
	if a.LeadsFirstShard() == b.LeadsFirstShard() {
		t.Fatalf("shard 0, whose leader trims the fan-out streams, led by a: %v, b: %v; want exactly one", a.LeadsFirstShard(), b.LeadsFirstShard())
	}

	// then rows of 40 conversations committed meanwhile are all relayed, by both
	convs := f.commitOneRowEach(t, 40, b)
	f.eventuallyEveryStreamHolds(t, convs, 1)
	// (a relay counts what it published once Redis has answered: after the streams show it)
	testinfra.Eventually(t, 5*time.Second, "the relays count 40 rows between them", func() bool {
		return a.Stats().Relayed+b.Stats().Relayed == 40
	})
	if a.Stats().Relayed == 0 || b.Stats().Relayed == 0 {
		t.Fatalf("relayed %d and %d rows: both instances should carry some", a.Stats().Relayed, b.Stats().Relayed)
	}
	// each relayed only its own shards, without taking over the other's
	for name, r := range map[string]*outbox.Relay{"a": a, "b": b} {
		if s := r.Stats(); s.Duplicates != 0 || s.TakenOver != 0 {
			t.Fatalf("relay %s wrote %d duplicates and took over %d times: it relayed shards it does not lead", name, s.Duplicates, s.TakenOver)
		}
	}

	// and when b stops, a leads all four again and relays every conversation's next row
	stopB()
	testinfra.Eventually(t, 10*time.Second, "a leads all 4 shards again", func() bool { return leads(a) == 4 })
	for _, conv := range convs {
		tx := f.begin(t)
		addRow(t, tx, conv, 2)
		if err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	a.Notify()
	f.eventuallyEveryStreamHolds(t, convs, 2)
}

// commitOneRowEach commits seq 1 of n new conversations and lets the relay know.
func (f *fixture) commitOneRowEach(t *testing.T, n int, r *outbox.Relay) []string {
	t.Helper()
	convs := make([]string, n)
	for i := range convs {
		convs[i] = uuid.NewString()
		tx := f.begin(t)
		addRow(t, tx, convs[i], 1)
		if err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r.Notify()
	return convs
}

func (f *fixture) eventuallyEveryStreamHolds(t *testing.T, convs []string, n int) {
	t.Helper()
	testinfra.Eventually(t, 10*time.Second, "every conversation's stream holds its rows", func() bool {
		for _, conv := range convs {
			l, err := f.rdb.XLen(context.Background(), redisstream.ConversationStream(conv)).Result()
			if err != nil {
				t.Fatalf("XLEN of %s: %v", conv, err)
			}
			if l != int64(n) {
				return false
			}
		}
		return true
	})
}

// Whether a leader stalls is judged by the database's clock: a row from an instance whose clock
// runs an hour behind is not taken for a stalled leader's, and a row queued long ago is.
func TestAStalledLeaderIsJudgedByTheDatabasesClockNotTheSendersOne(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := f.relay()
	outboxRows := func() (n int) {
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// given a row just committed by an instance whose clock runs an hour behind
	tx := f.begin(t)
	addRow(t, tx, uuid.NewString(), 1)
	if _, err := tx.Exec(ctx, `UPDATE outbox SET created_at = created_at - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// when an instance that does not lead its shard looks for a stalled leader
	r.RelayIfLeaderStalls(ctx, []int{0})

	// then it leaves the row to its leader
	if s := r.Stats(); s.TakenOver != 0 || outboxRows() != 1 {
		t.Fatalf("took over %d times, %d rows left: a sender's slow clock read as a stalled leader", s.TakenOver, outboxRows())
	}

	// and once the row has waited past the bound by the database's clock, it relays it
	if _, err := f.pool.Exec(ctx, `UPDATE outbox SET queued_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	r.RelayIfLeaderStalls(ctx, []int{0})
	if s := r.Stats(); s.TakenOver != 1 || s.Relayed != 1 || outboxRows() != 0 {
		t.Fatalf("took over %d times and relayed %d rows, %d left; want the stalled row relayed", s.TakenOver, s.Relayed, outboxRows())
	}
}
