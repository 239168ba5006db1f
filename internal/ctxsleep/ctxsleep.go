// Package ctxsleep is the one sleep that a context cuts short (standard library only; every
// layer may use it).
package ctxsleep

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends: then it returns ctx's error. d <= 0 does not wait.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
