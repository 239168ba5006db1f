package monitoring_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nova-chat/nova/application/monitoring"
)

type fakeStreams struct {
	calls atomic.Int32
	delay time.Duration
	err   error
}

func (f *fakeStreams) Streams(ctx context.Context, busiest int) ([]monitoring.Stream, error) {
	f.calls.Add(1)
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	return []monitoring.Stream{{Key: "stream:fanout:all-conversations", Kind: monitoring.KindFanout, Exists: true, Length: int64(busiest)}}, nil
}

type fakeOutbox struct{ err error }

func (f fakeOutbox) Outbox(context.Context) (monitoring.Outbox, error) {
	return monitoring.Outbox{Rows: 3, OldestAge: time.Second}, f.err
}

func TestInspectorSharesOneInspectionBetweenConcurrentCallers(t *testing.T) {
	// given a slow Redis
	streams := &fakeStreams{delay: 100 * time.Millisecond}
	in := monitoring.NewInspector(streams, fakeOutbox{}, monitoring.InspectorOptions{Busiest: 7})

	// when ten scrapes arrive at once, and one more right after
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); in.Snapshot(context.Background()) }()
	}
	wg.Wait()
	s := in.Snapshot(context.Background())

	// then Redis was asked once, and every caller got the result
	if n := streams.calls.Load(); n != 1 {
		t.Fatalf("inspections = %d, want 1", n)
	}
	if fans := s.FanoutPartitions(); len(fans) != 1 || fans[0].Length != 7 || !s.RedisUp || !s.PostgresUp || s.Outbox.Rows != 3 {
		t.Fatalf("snapshot = %+v", s)
	}
}

func TestInspectorRefreshesAfterMaxAge(t *testing.T) {
	streams := &fakeStreams{}
	in := monitoring.NewInspector(streams, nil, monitoring.InspectorOptions{MaxAge: 20 * time.Millisecond})
	in.Snapshot(context.Background())
	time.Sleep(30 * time.Millisecond)
	s := in.Snapshot(context.Background())
	if n := streams.calls.Load(); n != 2 {
		t.Fatalf("inspections = %d, want 2", n)
	}
	if s.PostgresUp || s.PostgresError == "" {
		t.Fatalf("without an outbox source Postgres must read as not up, with a reason: %+v", s)
	}
}

func TestInspectorReportsADeadRedisWithinItsTimeout(t *testing.T) {
	// given a Redis that never answers, and one that refuses
	hanging := monitoring.NewInspector(&fakeStreams{delay: time.Hour}, fakeOutbox{}, monitoring.InspectorOptions{Timeout: 50 * time.Millisecond})
	refusing := monitoring.NewInspector(&fakeStreams{err: errors.New("connection refused")}, fakeOutbox{err: errors.New("no pg")}, monitoring.InspectorOptions{})

	start := time.Now()
	s := hanging.Snapshot(context.Background())
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a hanging Redis held the snapshot for %s", took)
	}
	if s.RedisUp || s.RedisError == "" || !s.PostgresUp {
		t.Fatalf("hanging: %+v", s)
	}
	s = refusing.Snapshot(context.Background())
	if s.RedisUp || s.RedisError != "connection refused" || s.PostgresUp || s.PostgresError != "no pg" {
		t.Fatalf("refusing: %+v", s)
	}
}
