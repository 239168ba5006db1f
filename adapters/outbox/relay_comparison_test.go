package outbox_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
)

// These benchmarks measured the outbox choice recorded in ARCHITECTURE.md: watermill-sql's
// forwarder (the starting point the design card names) against Nova's own relay, both moving
// committed rows from Postgres to Redis Streams. Run them with `make bench-outbox`.
//
// Each reports commit-to-Redis latency (one message at a time, the next sent when the previous
// arrived) and throughput (many concurrent writers, time until all arrived).

const benchTopic = "stream:bench:forwarded"

func BenchmarkOutboxLatency(b *testing.B) {
	b.Run("watermill-forwarder-poll-1s-default", func(b *testing.B) { forwarderLatency(b, time.Second) })
	b.Run("watermill-forwarder-poll-10ms", func(b *testing.B) { forwarderLatency(b, 10*time.Millisecond) })
	b.Run("nova-relay", novaRelayLatency)
}

// BenchmarkOutboxDrain measures the relay alone: b.N rows are committed first, then the relay
// starts and the clock runs until all of them are in Redis.
func BenchmarkOutboxDrain(b *testing.B) {
	b.Run("watermill-forwarder-poll-10ms", func(b *testing.B) { forwarderDrain(b, 10*time.Millisecond) })
	b.Run("nova-relay", novaRelayDrain)
}

type forwarderRig struct {
	f       *fixture
	publish func(ctx context.Context) error
	start   func()
}

func newForwarderRig(b *testing.B, poll time.Duration) *forwarderRig {
	f := newFixture(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	logger := watermill.NopLogger{}
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(f.pool), wsql.SubscriberConfig{
		SchemaAdapter: wsql.DefaultPostgreSQLSchema{}, OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{},
		InitializeSchema: true, PollInterval: poll,
	}, logger)
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.SubscribeInitialize("outbox"); err != nil { // creates the forwarder's tables
		b.Fatal(err)
	}
	pub, err := wredis.NewPublisher(wredis.PublisherConfig{Client: f.rdb}, logger)
	if err != nil {
		b.Fatal(err)
	}
	fwd, err := forwarder.NewForwarder(sub, pub, logger, forwarder.Config{ForwarderTopic: "outbox"})
	if err != nil {
		b.Fatal(err)
	}
	return &forwarderRig{f: f, start: func() {
		go func() { _ = fwd.Run(ctx) }()
		<-fwd.Running()
	}, publish: func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
			sqlPub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: wsql.DefaultPostgreSQLSchema{}}, logger)
			if err != nil {
				return err
			}
			return forwarder.NewPublisher(sqlPub, forwarder.PublisherConfig{ForwarderTopic: "outbox"}).
				Publish(benchTopic, message.NewMessage(uuid.NewString(), []byte(`{"n":1}`)))
		})
	}}
}

func forwarderLatency(b *testing.B, poll time.Duration) {
	rig := newForwarderRig(b, poll)
	rig.start()
	_ = rig.publish(context.Background()) // creates the schema on first use
	waitLen(b, rig.f.rdb, benchTopic, 1)
	measureLatency(b, rig.f.rdb, benchTopic, 1, func() { _ = rig.publish(context.Background()) })
}

func forwarderDrain(b *testing.B, poll time.Duration) {
	rig := newForwarderRig(b, poll)
	for i := 0; i < b.N; i++ {
		if err := rig.publish(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	rig.start()
	waitLen(b, rig.f.rdb, benchTopic, int64(b.N))
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func novaRelayDrain(b *testing.B) {
	f := newFixture(b)
	convs := make([]string, 100)
	for i := range convs {
		convs[i] = uuid.NewString()
	}
	tx := f.begin(b)
	for i := 0; i < b.N; i++ {
		addRow(b, tx, convs[i%len(convs)], int64(i/len(convs)+1))
	}
	if err := tx.Commit(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	startRelay(b, f)
	waitLen(b, f.rdb, redisstream.FanoutStream, int64(b.N))
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func novaRelayLatency(b *testing.B) {
	f := newFixture(b)
	r := startRelay(b, f)
	conv := uuid.NewString()
	seq := int64(0)
	measureLatency(b, f.rdb, redisstream.FanoutStream, 0, func() {
		seq++
		tx := f.begin(b)
		addRow(b, tx, conv, seq)
		_ = tx.Commit(context.Background())
		r()
	})
}

// startRelay runs a relay and returns its commit signal.
func startRelay(b *testing.B, f *fixture) func() {
	ctx, cancel := context.WithCancel(context.Background())
	r := f.relay()
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	for led, _ := r.Leading(); led == 0; led, _ = r.Leading() {
		time.Sleep(10 * time.Millisecond)
	}
	return r.Notify
}

func measureLatency(b *testing.B, rdb *redis.Client, stream string, already int64, send func()) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		send()
		waitLen(b, rdb, stream, already+int64(i)+1)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func waitLen(b *testing.B, rdb *redis.Client, stream string, n int64) {
	deadline := time.Now().Add(60 * time.Second)
	for rdb.XLen(context.Background(), stream).Val() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%s did not reach %d entries", stream, n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}
