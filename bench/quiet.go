package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nova-chat/nova/internal/ctxsleep"
)

// The figures mean something only on a quiet machine: a test run, a build or a helper beside
// the bench takes the cores the nodes, Postgres and Redis wait for. Before its first
// measurement the bench therefore waits until the work that is not its own stays under
// quietCores, and records what it found. It reads CPU use, not the load average: a kernel
// thread that stays runnable keeps the load average near 1 on an idle machine (seen here).

const (
	quietCores  = 0.2             // other work allowed beside the bench, in cores
	quietSample = 3 * time.Second // one reading of the other work's CPU use
	// quickQuietWait is -quiet-wait's default in quick mode, a smoke run of under 2 minutes.
	quickQuietWait = 30 * time.Second
)

// flagGiven reports whether the command line set the named flag.
func flagGiven(name string) bool {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// QuietCheck is what the bench found before its first measurement.
type QuietCheck struct {
	OtherCores float64 `json:"other_cores"` // cores used by work that is not the bench's, last reading
	Load1      float64 `json:"load1"`       // the 1-minute load average then, for comparison
	WaitedS    float64 `json:"waited_s"`    // readings before the quiet one (all of them if none was)
	Quiet      bool    `json:"quiet"`       // under quietCores (else the bench gave up waiting)
}

// otherWork is the CPU use of a window that is not the bench's: what no group claims and other
// databases' Postgres backends, and the time the hypervisor gave the cores to someone else.
func otherWork(u CPUUse) float64 { return u["rest"] + u["postgres (other)"] + u[stolen] }

// waitQuiet reads the other work's CPU use every quietSample until it is under quietCores or
// limit has passed (limit 0: one reading, no wait).
func (b *Bench) waitQuiet(ctx context.Context, limit time.Duration) QuietCheck {
	sample := func(ctx context.Context) (float64, error) {
		a := b.cpuSnapshot()
		if err := ctxsleep.Sleep(ctx, quietSample); err != nil {
			return 0, err
		}
		return otherWork(cpuBetween(a, b.cpuSnapshot())), nil
	}
	q := quietLoop(ctx, sample, limit, func(other float64, waited time.Duration) {
		b.log.Printf("waiting for a quiet machine: other work uses %.2f cores (the bench needs < %.2f); waited %s of %s",
			other, quietCores, waited.Round(time.Second), limit)
	})
	q.Load1 = loadAverage()
	switch {
	case q.Quiet:
		b.log.Printf("machine quiet: other work uses %.2f cores (load average %.2f)", q.OtherCores, q.Load1)
	case ctx.Err() == nil:
		b.log.Printf("machine NOT quiet after %s: other work uses %.2f cores; the figures of this run are disturbed", limit, q.OtherCores)
	}
	return q
}

// quietLoop is waitQuiet's loop, apart from the machine: sample reads the other work's cores
// over one interval; busy hears of each reading that was not quiet while there is time left.
func quietLoop(ctx context.Context, sample func(context.Context) (float64, error), limit time.Duration,
	busy func(other float64, waited time.Duration)) QuietCheck {
	start := time.Now()
	var q QuietCheck
	for {
		reading := time.Now()
		other, err := sample(ctx)
		if err != nil {
			break
		}
		q.OtherCores = other
		if q.Quiet = other < quietCores; q.Quiet {
			q.WaitedS = reading.Sub(start).Seconds() // the readings before the quiet one
			return q
		}
		if time.Since(start) >= limit {
			break
		}
		busy(other, time.Since(start))
	}
	q.WaitedS = time.Since(start).Seconds()
	return q
}

// loadAverage is the 1-minute load average (0 if unreadable).
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(data), " ")
	v, _ := strconv.ParseFloat(first, 64)
	return v
}

// quietNote is the report's line on it.
func quietNote(q *QuietCheck) string {
	if q == nil {
		return ""
	}
	if q.Quiet {
		return fmt.Sprintf("Before the first measurement the machine was quiet: work other than the bench's used %.2f cores over %s (under %.2f), after %.0f s of waiting for it; load average %.2f.",
			q.OtherCores, quietSample, quietCores, q.WaitedS, q.Load1)
	}
	return fmt.Sprintf("THE MACHINE WAS NOT QUIET: work other than the bench's still used %.2f cores after the bench waited %.0f s (it needs under %.2f); load average %.2f. Every figure of this run is disturbed; run it again when nothing else runs.",
		q.OtherCores, q.WaitedS, quietCores, q.Load1)
}
