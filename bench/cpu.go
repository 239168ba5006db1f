package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nova-chat/nova/internal/ctxsleep"
)

// The machine is shared (Postgres serves other databases, other work may run), so every run
// records who used the CPU meanwhile: the nodes, the bench database's Postgres backends, the
// private Redis, the bench itself, and the rest.

const clockTicks = 100 // USER_HZ on Linux

type cpuSnap struct {
	at          time.Time
	busy, total uint64
	steal       uint64          // ticks the hypervisor ran something else while this VM had work (in busy)
	groups      map[int]procCPU // pid -> group and ticks
	allTicks    map[int]uint64  // pid -> CPU ticks of every process, in a group or not
	nodes       map[int]string  // pid -> node name, of the nova nodes running at the snapshot
	checkpoints int64           // Postgres checkpoints so far (timed + requested), server-wide
}

// checkpointsKey counts the Postgres checkpoints in a window (forced ones, e.g. by another
// test run's CREATE/DROP DATABASE, stall every commit on the server for a moment).
const checkpointsKey = "pg checkpoints"

// stolen is the CPU group of the time the hypervisor gave this VM's cores to someone else while
// they had work (/proc/stat's steal): no process here used it, so before it had a group of its
// own it showed as "rest". A run with much of it ran on a host that was busy elsewhere.
const stolen = "stolen by the hypervisor"

// redisNotInUse is the CPU group of the single redis-server while the nodes use the cluster:
// it stays up (idle), counted apart from the "redis" of the topology in use.
const redisNotInUse = "redis (single, not in use)"

type procCPU struct {
	group  string
	ticks  uint64
	waitNs uint64 // time its threads spent runnable, waiting for a core (schedstat)
	slices uint64 // times its threads were put on a core (schedstat): its context switches in
}

// waitedPrefix marks a CPUUse entry that is not CPU used but time a group's threads spent
// runnable without a core (summed over threads, in cores): on 2 shared cores, a process that
// waits there delays whatever waits on it, e.g. Redis's replies.
const waitedPrefix = "waited: "

// slicesPrefix marks a CPUUse entry that is a rate, not cores: how many times a second a group's
// threads were put on a core (each a context switch). Where a context switch is dear (on a
// virtual machine whose kernel pays the hypervisor for every interrupt it enables again), a
// process that sleeps and wakes for every event pays for it in CPU as well as in latency.
const slicesPrefix = "scheduled: "

// threadIDs lists a process's threads (the entries of /proc/<pid>/task).
func threadIDs(pid string) ([]string, error) {
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		return nil, err
	}
	tids := make([]string, 0, len(tasks))
	for _, t := range tasks {
		tids = append(tids, t.Name())
	}
	return tids, nil
}

// schedStats sums over a process's threads the run-queue wait (ns) and the number of times
// they were put on a core: the second and third fields of /proc/<pid>/task/<tid>/schedstat.
// Both are 0 where the kernel keeps no schedstats. A thread that ended meanwhile takes its
// counts with it, which undercounts a little for processes that start and end threads.
func schedStats(pid string) (waitNs, slices uint64) {
	tids, _ := threadIDs(pid) // none: a process that ended meanwhile
	for _, tid := range tids {
		data, err := os.ReadFile("/proc/" + pid + "/task/" + tid + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(data)); len(f) >= 3 {
			w, _ := strconv.ParseUint(f[1], 10, 64)
			n, _ := strconv.ParseUint(f[2], 10, 64)
			waitNs, slices = waitNs+w, slices+n
		}
	}
	return waitNs, slices
}

// pgBenchDB is the CPU group of the Postgres backends serving the bench database (Nova's, or
// pgbench's for the baselines); other Postgres processes are "postgres (other)".
const pgBenchDB = "postgres (bench db)"

// CPUUse is cores used on average during a run, by group ("machine" is everything).
type CPUUse map[string]float64

func (b *Bench) cpuSnapshot() cpuSnap {
	s := cpuSnap{at: time.Now(), groups: map[int]procCPU{}, nodes: map[int]string{}, allTicks: map[int]uint64{}}
	if b.env.DB != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = b.env.DB.QueryRow(ctx, `SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter`).Scan(&s.checkpoints)
		cancel()
	}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := bytes.Cut(data, []byte("\n"))
		f := strings.Fields(string(line))
		for i, v := range f[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			if i >= 8 { // guest time is already in user
				break
			}
			s.total += n
			if i != 3 && i != 4 { // idle, iowait
				s.busy += n
			}
			if i == 7 {
				s.steal = n
			}
		}
	}
	known := map[int]string{os.Getpid(): "novabench"}
	for _, n := range b.env.Nodes {
		known[n.PID()] = "nova"
		s.nodes[n.PID()] = n.Name
	}
	for _, pid := range b.cf.pids() {
		known[pid] = "centrifugo"
	}
	inUse, idle := b.env.redisPIDs()
	for _, pid := range inUse {
		known[pid] = "redis" // every redis-server of the topology the nodes use
	}
	for _, pid := range idle {
		known[pid] = redisNotInUse
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15): split after the closing paren.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		comm := string(data[bytes.IndexByte(data, '(')+1 : i])
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		s.allTicks[pid] = ut + st
		group, ok := known[pid]
		switch {
		case ok:
		case comm == "postgres":
			group = "postgres (other)"
			if cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && b.env.DBName != "" &&
				bytes.Contains(cmd, []byte(" "+b.env.DBName+" ")) {
				group = pgBenchDB
			}
		case comm == "pgbench" || comm == "redis-benchmark":
			group = comm
		default:
			continue
		}
		waitNs, slices := schedStats(e.Name())
		s.groups[pid] = procCPU{group, ut + st, waitNs, slices}
	}
	return s
}

// nodeCPUBetween is the average cores each nova node (by name) used from a to z; a node that
// was not running at both snapshots is left out.
func nodeCPUBetween(a, z cpuSnap) map[string]float64 {
	secs := z.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return nil
	}
	out := map[string]float64{}
	for pid, name := range z.nodes {
		before, ok := a.groups[pid]
		after, ok2 := z.groups[pid]
		if !ok || !ok2 || a.nodes[pid] != name || after.ticks < before.ticks {
			continue
		}
		out[name] = float64(after.ticks-before.ticks) / clockTicks / secs
	}
	return out
}

// formatNodeCPU lists each node's cores by name: "n1 0.42, n2 0.18".
func formatNodeCPU(m map[string]float64) string {
	if len(m) == 0 {
		return "n/a"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %.3f", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// cpuBetween is the average cores each group used from a to z.
func cpuBetween(a, z cpuSnap) CPUUse {
	secs := z.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return nil
	}
	use := CPUUse{}
	if dt := z.total - a.total; dt > 0 {
		use["machine"] = float64(z.busy-a.busy) / float64(dt) * float64(runtime.NumCPU())
	}
	// /proc/stat samples busy time at the tick, and at low, bursty load (a CPU idle between
	// short bursts) it reads less than the processes' own figures, which the kernel derives
	// from their exact run time. The machine was at least as busy as its processes were.
	var procs uint64
	for pid, t := range z.allTicks {
		if before := a.allTicks[pid]; t >= before {
			procs += t - before
		}
	}
	accounted := 0.0
	if dt := z.total - a.total; dt > 0 && z.steal > a.steal {
		use[stolen] = float64(z.steal-a.steal) / float64(dt) * float64(runtime.NumCPU())
		accounted += use[stolen]
	}
	use["machine"] = max(use["machine"], float64(procs)/clockTicks/secs+use[stolen])
	for pid, p := range z.groups {
		before := a.groups[pid].ticks // 0 for a process that started meanwhile
		if p.ticks < before {
			continue
		}
		c := float64(p.ticks-before) / clockTicks / secs
		use[p.group] += c
		accounted += c
		if w0 := a.groups[pid].waitNs; p.waitNs > w0 {
			use[waitedPrefix+p.group] += float64(p.waitNs-w0) / 1e9 / secs
		}
		if n0 := a.groups[pid].slices; p.slices > n0 {
			use[slicesPrefix+p.group] += float64(p.slices-n0) / secs
		}
	}
	use["rest"] = max(0, use["machine"]-accounted)
	use[checkpointsKey] = float64(z.checkpoints - a.checkpoints)
	return use
}

// String lists the groups, biggest first: "machine 1.9/2: nova 0.8, postgres (bench db) 0.5, ...".
func (u CPUUse) String() string {
	if len(u) == 0 {
		return "n/a"
	}
	var used, waited, scheduled []string
	for k := range u {
		switch {
		case k == "machine" || k == checkpointsKey:
		case strings.HasPrefix(k, waitedPrefix):
			waited = append(waited, k)
		case strings.HasPrefix(k, slicesPrefix):
			scheduled = append(scheduled, k)
		default:
			used = append(used, k)
		}
	}
	list := func(keys []string, prefix, format string, least float64) string {
		sort.Slice(keys, func(i, j int) bool { return u[keys[i]] > u[keys[j]] })
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			if u[k] >= least {
				parts = append(parts, strings.TrimPrefix(k, prefix)+" "+fmt.Sprintf(format, u[k]))
			}
		}
		return strings.Join(parts, ", ")
	}
	out := fmt.Sprintf("busy %.2f of %d cores: %s", u["machine"], runtime.NumCPU(), list(used, "", "%.2f", 0.005))
	if w := list(waited, waitedPrefix, "%.2f", 0.005); w != "" {
		out += "; runnable, waiting for a core: " + w
	}
	if n := list(scheduled, slicesPrefix, "%.0f", 50); n != "" {
		out += "; put on a core, times a second: " + n
	}
	if n := u[checkpointsKey]; n > 0 {
		out += fmt.Sprintf("; Postgres checkpoints meanwhile: %.0f", n)
	}
	return out
}

// cpuDuring measures CPU use from one instant to another in the background; wait returns it
// (nil if ctx ended first).
func (b *Bench) cpuDuring(ctx context.Context, from, to time.Time) (wait func() CPUUse) {
	w := b.cpuDuringByNode(ctx, from, to)
	return func() CPUUse { u, _ := w(); return u }
}

// cpuDuringByNode is cpuDuring that also returns each nova node's cores.
func (b *Bench) cpuDuringByNode(ctx context.Context, from, to time.Time) (wait func() (CPUUse, map[string]float64)) {
	var use CPUUse
	var nodes map[string]float64
	done := make(chan struct{})
	go func() {
		defer close(done)
		if ctxsleep.Sleep(ctx, time.Until(from)) != nil {
			return
		}
		snap := b.cpuSnapshot()
		if ctxsleep.Sleep(ctx, time.Until(to)) != nil {
			return
		}
		z := b.cpuSnapshot()
		use, nodes = cpuBetween(snap, z), nodeCPUBetween(snap, z)
	}()
	return func() (CPUUse, map[string]float64) { <-done; return use, nodes }
}
