package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// readings returns a sample func that gives the values in turn (the last one from then on).
func readings(values ...float64) func(context.Context) (float64, error) {
	i := 0
	return func(ctx context.Context) (float64, error) {
		v := values[min(i, len(values)-1)]
		i++
		return v, ctx.Err()
	}
}

func TestQuietLoopWaitsUntilTheOtherWorkStops(t *testing.T) {
	var heard []float64
	q := quietLoop(context.Background(), readings(0.9, 0.5, 0.05, 0.9), time.Minute, func(other float64, _ time.Duration) {
		heard = append(heard, other)
	})
	if !q.Quiet || q.OtherCores != 0.05 {
		t.Fatalf("got %+v, want quiet at the third reading (0.05 cores)", q)
	}
	if q.WaitedS > 1 {
		t.Fatalf("waited %.1f s, want no more than the two instant busy readings took", q.WaitedS)
	}
	if len(heard) != 2 || heard[0] != 0.9 || heard[1] != 0.5 {
		t.Fatalf("progress heard %v, want the two busy readings [0.9 0.5]", heard)
	}
}

func TestQuietLoopGivesUpAfterItsLimit(t *testing.T) {
	calls := 0
	sample := func(context.Context) (float64, error) {
		calls++
		time.Sleep(20 * time.Millisecond)
		return 0.8, nil
	}
	q := quietLoop(context.Background(), sample, 100*time.Millisecond, func(float64, time.Duration) {})
	if q.Quiet || q.OtherCores != 0.8 {
		t.Fatalf("got %+v, want not quiet with the last reading 0.8", q)
	}
	if calls < 2 || q.WaitedS < 0.1 {
		t.Fatalf("%d readings over %.2f s, want it to keep reading for the whole 100 ms", calls, q.WaitedS)
	}
}

func TestAMachineQuietAtOnceIsNotWaitedFor(t *testing.T) {
	sample := func(context.Context) (float64, error) { time.Sleep(30 * time.Millisecond); return 0.01, nil }
	q := quietLoop(context.Background(), sample, time.Minute, func(float64, time.Duration) { t.Fatal("it was quiet") })
	if !q.Quiet || q.WaitedS > 0.001 {
		t.Fatalf("got %+v, want quiet with no wait (the quiet reading itself is not waiting)", q)
	}
}

func TestQuietLoopWithNoLimitReadsOnce(t *testing.T) {
	q := quietLoop(context.Background(), readings(0.7, 0.0), 0, func(float64, time.Duration) {
		t.Fatal("no limit: nothing to wait for")
	})
	if q.Quiet || q.OtherCores != 0.7 {
		t.Fatalf("got %+v, want one reading, 0.7, not quiet", q)
	}
}

func TestOtherWorkLeavesTheBenchsOwnGroupsOut(t *testing.T) {
	u := CPUUse{"machine": 1.5, "nova": 0.6, "novabench": 0.3, "redis": 0.1, pgBenchDB: 0.2, "postgres (other)": 0.15, "rest": 0.15}
	if got := otherWork(u); got < 0.299 || got > 0.301 {
		t.Fatalf("otherWork = %.3f, want 0.30 (rest 0.15 + other databases' backends 0.15)", got)
	}
}

func TestTheReportSaysWhenTheMachineWasNotQuiet(t *testing.T) {
	quiet := quietNote(&QuietCheck{OtherCores: 0.03, Load1: 0.9, Quiet: true})
	if !strings.Contains(quiet, "quiet: work other than the bench's used 0.03 cores") {
		t.Fatalf("quiet note: %q", quiet)
	}
	busy := quietNote(&QuietCheck{OtherCores: 0.85, WaitedS: 300})
	if !strings.Contains(busy, "NOT QUIET") || !strings.Contains(busy, "0.85 cores") {
		t.Fatalf("busy note: %q", busy)
	}
	if quietNote(nil) != "" {
		t.Fatal("no check, no note")
	}
}
