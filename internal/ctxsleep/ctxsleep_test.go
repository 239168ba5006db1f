package ctxsleep_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nova-chat/nova/internal/ctxsleep"
)

func TestSleepWaitsOrEndsWithItsContext(t *testing.T) {
	start := time.Now()
	if err := ctxsleep.Sleep(context.Background(), 20*time.Millisecond); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("err %v after %v, want nil after 20 ms", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := ctxsleep.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v, want the context's error at once", err, time.Since(start))
	}
}
