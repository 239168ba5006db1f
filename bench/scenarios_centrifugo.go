package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// CentrifugoResult is the same-run comparison: Centrifugo v6.9.1 measured with the paced
// workload of Nova's latency scenario, on the same machine, in the same run.
type CentrifugoResult struct {
	Version  string   `json:"version"`
	Binary   string   `json:"binary"`
	Install  string   `json:"install"`
	Nodes    []string `json:"nodes,omitempty"`
	Configs  []string `json:"config_files,omitempty"`
	Setup    string   `json:"setup"`
	Warnings []string `json:"node_log_warnings,omitempty"`
	// NotRun says why nothing was measured when Centrifugo could not be installed: the run
	// goes on without the comparison.
	NotRun string           `json:"not_run,omitempty"`
	Runs   []*CentrifugoRun `json:"runs,omitempty"`
	Table  []Row            `json:"table,omitempty"`
	// Error is a failure after installation (the nodes would not start): a scenario error.
	Error string `json:"error,omitempty"`
}

// CentrifugoRun is one paced run: HTTP publishes to node c1, WebSocket subscribers on c2.
type CentrifugoRun struct {
	Name             string    `json:"name"`
	Shape            string    `json:"shape"`
	ShapeSpec        loadShape `json:"shape_spec"`
	ShapeDescription string    `json:"shape_description"`
	OfferedRate      int       `json:"offered_rate_per_s"`
	Conversations    int       `json:"channels"`
	WarmupS          float64   `json:"warmup_s"`
	MeasureS         float64   `json:"measure_s"`
	PublishNode      string    `json:"publish_node"`
	SubscriberNode   string    `json:"subscriber_node"`
	SubscriberConns  int       `json:"subscriber_connections"`
	Scheduled        int       `json:"scheduled_sends"`
	SentOK           int64     `json:"sent_ok"`
	SendErrors       int64     `json:"send_errors"`
	Skipped          int64     `json:"skipped_late_sends,omitempty"`
	FirstSendError   string    `json:"first_send_error,omitempty"`
	Received         int64     `json:"received"`
	Lost             int64     `json:"lost"`
	OrderViolations  int64     `json:"order_violations"`
	SubscriberError  string    `json:"first_subscriber_error,omitempty"`
	SendRate         float64   `json:"sends_completed_per_s"`
	DeliveredRate    float64   `json:"delivered_per_s"`
	Delivery         Summary   `json:"delivery_latency"`
	HTTP             Summary   `json:"http_publish_latency"`
	StartLag         Summary   `json:"send_start_lag"`          // how late the load generator started each publish
	AfterAnswer      Summary   `json:"delivered_after_answer"`  // as LatencyResult's
	BeforeAnswer     int64     `json:"delivered_before_answer"` // as LatencyResult's
	CPU              CPUUse    `json:"cpu_cores_during_measurement"`
	// CPUPerMsgMs is CPU time of every server process (both nodes and Redis) per delivered message.
	CPUPerMsgMs float64         `json:"cpu_ms_per_delivered_message"`
	Timeline    []TimelinePoint `json:"timeline,omitempty"`
	Error       string          `json:"error,omitempty"`
}

// centrifugoServerGroups are the CPU groups (cpu.go) of Centrifugo's server processes, and
// novaServerGroups Nova's: DESIGN.md compares CPU per delivered message summed over them.
var (
	centrifugoServerGroups = []string{"centrifugo", "redis"}
	novaServerGroups       = []string{"nova", pgBenchDB, "redis"}
)

// cpuPerMessageMs is the CPU time (ms) the groups spent per delivered message.
func cpuPerMessageMs(u CPUUse, groups []string, deliveredPerS float64) float64 {
	return 1000 * perMessage(u, "", groups, deliveredPerS)
}

// perMessage sums the groups' entries of one kind (prefix: "" for cores, slicesPrefix for
// times put on a core a second) and divides by the delivered rate; 0 without a rate.
func perMessage(u CPUUse, prefix string, groups []string, deliveredPerS float64) float64 {
	if deliveredPerS <= 0 {
		return 0
	}
	sum := 0.0
	for _, g := range groups {
		sum += u[prefix+g]
	}
	return sum / deliveredPerS
}

// measureFor is the measurement window of a shape, the same for Nova and Centrifugo: the
// main shape's is the latency run's, the others' ShapeMeasure.
func (b *Bench) measureFor(sh loadShape) time.Duration {
	if sh == novaLatencyShape || b.cfg.ShapeMeasure <= 0 {
		return b.cfg.LatencyMeasure
	}
	return b.cfg.ShapeMeasure
}

// prepareCentrifugo installs the pinned Centrifugo if needed (during setup, before anything
// is measured, since the build keeps both cores busy for minutes).
func (b *Bench) prepareCentrifugo(ctx context.Context) *CentrifugoResult {
	res := &CentrifugoResult{Version: centrifugoVersion}
	bin, err := centrifugoBin()
	if err != nil {
		res.NotRun = "locate .data/bin: " + err.Error()
		return res
	}
	res.Binary = bin
	how, err := b.installCentrifugo(ctx, bin)
	if err != nil {
		res.NotRun = "installation failed: " + err.Error()
		b.log.Printf("centrifugo: NOT INSTALLED, the comparison is skipped: %v", err)
		return res
	}
	res.Install = how
	b.log.Printf("centrifugo v%s: %s (%s)", centrifugoVersion, bin, how)
	return res
}

// runCentrifugo starts two nodes, runs every shape, and stops the nodes again.
func (b *Bench) runCentrifugo(ctx context.Context, res *CentrifugoResult) {
	cf := b.startCentrifugoShapes(ctx, res)
	defer cf.stop()
	for _, sh := range b.latencyShapes() {
		if ctx.Err() != nil {
			return
		}
		cf.run(ctx, sh)
	}
}

// cfShapes are Centrifugo's nodes kept up for the load shapes, so that each shape can run on
// Centrifugo right after it ran on Nova. Its methods do nothing when the nodes did not start.
type cfShapes struct {
	b   *Bench
	res *CentrifugoResult
	cl  *cfCluster
}

// startCentrifugoShapes starts two nodes for res (nil: Centrifugo is not measured in this run,
// or is not installed).
func (b *Bench) startCentrifugoShapes(ctx context.Context, res *CentrifugoResult) *cfShapes {
	if res == nil || res.NotRun != "" {
		return nil
	}
	t := time.Now()
	cl, err := b.startCentrifugo(ctx, res.Binary, 2)
	for _, n := range cl.Nodes {
		res.Nodes = append(res.Nodes, fmt.Sprintf("%s=%s (pid %d)", n.Name, strings.TrimPrefix(n.URL, "http://"), n.PID()))
		res.Configs = append(res.Configs, n.Config)
	}
	res.Warnings = cl.Warnings
	res.Setup = fmt.Sprintf("2 nodes, engine redis (the bench's redis-server, DB %d, prefix %q), namespace %q: history_size %d, history_ttl %s, force_recovery, force_positioning, allow_subscribe_for_client; HTTP API with key, client JWT HS256",
		centrifugoRedisDB, centrifugoPrefix, centrifugoNamespace, centrifugoHistory, centrifugoHistoryTTL)
	cf := &cfShapes{b: b, res: res, cl: cl}
	if err != nil {
		res.Error = "start nodes: " + err.Error()
		b.log.Printf("centrifugo: %s", res.Error)
		cf.stop()
		return nil
	}
	b.log.Printf("centrifugo: 2 nodes ready in %s: %s", time.Since(t).Round(time.Millisecond), strings.Join(res.Nodes, ", "))
	for _, w := range cl.Warnings {
		b.log.Printf("centrifugo log: %s", w)
	}
	return cf
}

// run measures shape sh on Centrifugo.
func (cf *cfShapes) run(ctx context.Context, sh loadShape) {
	if cf == nil || ctx.Err() != nil {
		return
	}
	b := cf.b
	cf.res.Runs = append(cf.res.Runs, b.runCentrifugoShape(ctx, cf.cl, sh, b.cfg.Rate, b.cfg.LatencyWarmup, b.measureFor(sh)))
}

// stop stops the nodes.
func (cf *cfShapes) stop() {
	if cf == nil || cf.cl == nil {
		return
	}
	cf.cl.Stop()
	cf.cl = nil
	cf.b.cf = nil
}

func (b *Bench) runCentrifugoShape(ctx context.Context, cl *cfCluster, sh loadShape, rate int, warmup, measure time.Duration) *CentrifugoRun {
	run := &CentrifugoRun{Name: fmt.Sprintf("centrifugo-%s@%d", sh, rate), Shape: sh.String(), ShapeSpec: sh, ShapeDescription: sh.Describe(),
		OfferedRate: rate, Conversations: b.cfg.Conversations, WarmupS: warmup.Seconds(), MeasureS: measure.Seconds()}
	if err := b.centrifugoLatency(ctx, cl, run, sh, rate, warmup, measure); err != nil {
		run.Error = err.Error()
		b.log.Printf("%s: ERROR %v", run.Name, err)
	}
	return run
}

func (b *Bench) centrifugoLatency(ctx context.Context, cl *cfCluster, res *CentrifugoRun, sh loadShape, rate int, warmup, measure time.Duration) error {
	if len(cl.Nodes) < 2 {
		return errors.New("needs two centrifugo nodes")
	}
	pub, subNode := cl.Nodes[0], cl.Nodes[len(cl.Nodes)-1]
	res.PublishNode, res.SubscriberNode = pub.Name, subNode.Name
	n := b.cfg.Conversations
	runID, channels, index := freshChannels(n)

	lr := newLatencyRun(rate, warmup, measure)
	total := len(lr.arrivedAt)
	res.Scheduled = total

	subs, err := b.openCentrifugoSubscribers(ctx, cl, subNode, res, sh, channels, runID)
	defer func() {
		for _, s := range subs {
			if s != nil {
				_ = s.conn.CloseNow()
			}
		}
	}()
	if err != nil {
		return err
	}
	res.SubscriberConns = len(subs)
	rctx, stopReaders := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReaders()
	var readers sync.WaitGroup
	var subErr atomic.Value
	for _, s := range subs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := lr.readCentrifugo(rctx, s, index); err != nil && rctx.Err() == nil {
				subErr.CompareAndSwap(nil, err.Error())
			}
		}()
	}

	start := time.Now().Add(20 * time.Millisecond)
	lr.winStart, lr.winEnd = start.Add(warmup), start.Add(warmup+measure)
	cpuWait := b.cpuDuring(ctx, lr.winStart, lr.winEnd)
	stopProgress := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("%s: %4.1fs/%.0fs  sent=%d recv=%d errors=%d skipped=%d", res.Name, time.Since(start).Seconds(),
			(warmup + measure).Seconds(), lr.nSentOK.Load(), lr.nRecv.Load(), lr.nErr.Load(), lr.nSkipped.Load())
	})
	defer stopProgress()

	hc := b.api.http
	lr.pace(ctx, sh.Senders, total, rate, start, func(k int, intended time.Time) {
		err := cl.apiCall(ctx, hc, pub, "publish", publishBody(channels[k%n], intended, k), nil)
		lr.sent(ctx, k, intended, time.Now(), err)
	})
	res.CPU = cpuWait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	lr.awaitArrivals()
	stopProgress()
	stopReaders()
	for _, s := range subs {
		_ = s.conn.CloseNow()
	}
	readers.Wait()

	lr.fillCentrifugoRun(res, &subErr, measure)
	b.log.Printf("%s: p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms sent=%d received=%d lost=%d errors=%d skipped=%d order_violations=%d cpu/msg=%.3fms",
		res.Name, res.Delivery.P50, res.Delivery.P90, res.Delivery.P99, res.Delivery.Max,
		res.SentOK, res.Received, res.Lost, res.SendErrors, res.Skipped, res.OrderViolations, res.CPUPerMsgMs)
	b.log.Printf("%s: cpu %s", res.Name, res.CPU)
	if res.SubscriberError != "" {
		b.log.Printf("%s: a subscriber connection ended early: %s", res.Name, res.SubscriberError)
	}
	return nil
}

// freshChannels names n channels for one run (their history streams start empty, offsets at
// 0) and indexes them.
func freshChannels(n int) (runID string, channels []string, index map[string]int) {
	runID = randomHex(4)
	channels = make([]string, n)
	index = make(map[string]int, n)
	for i := range channels {
		channels[i] = cfChannel(i) + "-" + runID
		index[channels[i]] = i
	}
	return runID, channels, index
}

// openCentrifugoSubscribers opens the shape's subscriber connections on subNode (the node that
// does not receive the publishes): one per channel or one for all, plus the idle ones. The
// connections opened so far are returned also on an error, for the caller to close.
func (b *Bench) openCentrifugoSubscribers(ctx context.Context, cl *cfCluster, subNode *cfNode, res *CentrifugoRun, sh loadShape,
	channels []string, runID string) ([]*cfSubscriber, error) {
	// Subscribers on the node that does not receive the publishes.
	var groups [][]string
	if sh.ConnPerConversation {
		for _, ch := range channels {
			groups = append(groups, []string{ch})
		}
	} else {
		groups = append(groups, channels)
	}
	// Idle connections spread over quiet channels as Nova's over quiet conversations.
	for j := range sh.IdleConns {
		groups = append(groups, []string{fmt.Sprintf("%s:idle%d-%s", centrifugoNamespace, j%idleConversations(sh.IdleConns), runID)})
	}
	subs := make([]*cfSubscriber, len(groups))
	var opened atomic.Int64
	stopOpen := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("%s: %d/%d subscriber connections open on %s", res.Name, opened.Load(), len(groups), subNode.Name)
	})
	if err := parallel(ctx, len(groups), 16, func(i int) error {
		tok, err := centrifugoToken(cl.HMACSecret, fmt.Sprintf("bench-%s-%d", runID, i), 6*time.Hour)
		if err != nil {
			return err
		}
		subs[i], err = cfDialSubscribe(ctx, subNode.URL, tok, groups[i])
		if err == nil {
			opened.Add(1)
		}
		return err
	}); err != nil {
		stopOpen()
		return subs, fmt.Errorf("subscribers: %w", err)
	}
	stopOpen()
	return subs, nil
}

// fillCentrifugoRun copies a finished run's counts and summaries into res.
func (lr *latencyRun) fillCentrifugoRun(res *CentrifugoRun, subErr *atomic.Value, measure time.Duration) {
	res.SentOK, res.SendErrors, res.Received, res.OrderViolations = lr.nSentOK.Load(), lr.nErr.Load(), lr.nRecv.Load(), lr.nOrder.Load()
	res.Skipped = lr.nSkipped.Load()
	res.Lost = lr.lost()
	if v, ok := lr.firstErr.Load().(string); ok {
		res.FirstSendError = v
	}
	if v, ok := subErr.Load().(string); ok {
		res.SubscriberError = v
	}
	res.SendRate = float64(lr.winSends.Load()) / measure.Seconds()
	res.DeliveredRate = float64(lr.winRecv.Load()) / measure.Seconds()
	res.Delivery = lr.delivery.Summary(true)
	res.HTTP = lr.http.Summary(false)
	res.StartLag = lr.startLag.Summary(false)
	after, before := lr.afterAnswer()
	res.AfterAnswer, res.BeforeAnswer = after.Summary(false), before
	res.Timeline = lr.timeline()
	res.CPUPerMsgMs = cpuPerMessageMs(res.CPU, centrifugoServerGroups, res.DeliveredRate)
}

// paceSends calls send(k, intended) for k = 0..total-1, the k-th due at start + k/rate,
// whatever happened to the ones before (open loop: latency counts from the intended time).
// One pacer releases every send at its time (sleepUntil). senders 0 runs each released send in
// a goroutine of its own, as Nova's latency run does; senders N > 0 has N goroutines, the k-th
// send belonging to goroutine k%N, each sending its own in order (late when the one before was
// slow). It returns when every send has returned or ctx has ended.
func paceSends(ctx context.Context, senders, total, rate int, start time.Time, send func(k int, intended time.Time)) {
	interval := time.Second / time.Duration(rate)
	intended := func(k int) time.Time { return start.Add(time.Duration(k) * interval) }
	var wg sync.WaitGroup
	defer wg.Wait()
	var queues []chan int
	for range senders {
		q := make(chan int, total/senders+1)
		queues = append(queues, q)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range q {
				if ctx.Err() == nil { // once ctx has ended, what is queued is dropped
					send(k, intended(k))
				}
			}
		}()
	}
	inflight := make(chan struct{}, 8192)
	paced := make(chan struct{})
	go func() {
		defer close(paced)
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		// The pacer keeps its OS thread while it runs (sleepUntil sleeps the thread itself). It
		// unlocks it at the end rather than letting the thread end with it: the nodes are
		// started with Pdeathsig, which the kernel sends when the thread that started a child
		// exits, and this may be that thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		setTimerSlack(10 * time.Microsecond)
		for k := range total {
			if !sleepUntil(ctx, intended(k)) {
				return
			}
			if queues != nil {
				queues[k%senders] <- k
				continue
			}
			inflight <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-inflight; wg.Done() }()
				send(k, intended(k))
			}()
		}
	}()
	<-paced
}

// sleepUntil blocks the calling goroutine's OS thread until t, or returns false when ctx ends
// first. A Go timer (time.Sleep, a Ticker) can wake a program up to a millisecond late when
// nothing else wakes it, because the runtime's network poller waits in whole milliseconds;
// how late then depended on the traffic of the system measured (Centrifugo's runs started
// sends 0.5 ms late at the median, Nova's 0.2 ms, with a Ticker). A nanosleep of the thread
// itself wakes within the kernel's timer slack (setTimerSlack).
func sleepUntil(ctx context.Context, t time.Time) bool {
	for ctx.Err() == nil {
		d := time.Until(t)
		if d <= 0 {
			return true
		}
		ts := syscall.NsecToTimespec(int64(min(d, 50*time.Millisecond))) // and look at ctx again
		_ = syscall.Nanosleep(&ts, nil)                                  // EINTR: the loop sleeps the rest
	}
	return false
}

// setTimerSlack sets how late the kernel may wake the calling OS thread from a sleep (50 µs by
// default). It stays so when the thread runs other goroutines later: their timers only get
// more precise.
func setTimerSlack(d time.Duration) {
	const prSetTimerSlack = 29 // PR_SET_TIMERSLACK, in ns, for the calling thread only
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(d.Nanoseconds()), 0)
}

// pace runs send for k = 0..total-1 at its intended time (paceSends), skipping (and counting)
// a send that would start more than maxSendLag late, and records how late each measured send
// started: the load generator's own share of the latency.
func (r *latencyRun) pace(ctx context.Context, senders, total, rate int, start time.Time, send func(k int, intended time.Time)) {
	paceSends(ctx, senders, total, rate, start, func(k int, intended time.Time) {
		lag := time.Since(intended)
		if lag > maxSendLag {
			r.nSkipped.Add(1)
			return
		}
		if k >= r.warmK {
			r.startLag.Record(lag)
		}
		send(k, intended)
	})
}

// awaitArrivals waits up to 5 s after the last send for what is still on its way.
func (r *latencyRun) awaitArrivals() {
	deadline := time.Now().Add(5 * time.Second)
	for r.nRecv.Load() < r.nSentOK.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// lost counts the sends that were acknowledged and never delivered.
func (r *latencyRun) lost() int64 {
	var n int64
	for i := range r.answeredAt {
		if r.answeredAt[i].Load() != 0 && r.arrivedAt[i].Load() == 0 {
			n++
		}
	}
	return n
}

// sent accounts one finished send (the bookkeeping of latencyRun.send, for any transport).
func (r *latencyRun) sent(ctx context.Context, k int, intended, done time.Time, err error) {
	if err != nil {
		if ctx.Err() == nil {
			r.nErr.Add(1)
			r.firstErr.CompareAndSwap(nil, err.Error())
		}
		return
	}
	r.answeredAt[k].Store(done.UnixNano())
	r.nSentOK.Add(1)
	if k >= r.warmK {
		r.http.Record(done.Sub(intended))
	}
	if r.inWindow(done) {
		r.winSends.Add(1)
	}
}

// delivered accounts one received probe (the bookkeeping of latencyRun.read).
func (r *latencyRun) delivered(body latencyBody, now time.Time) {
	k := body.K
	if k < 0 || k >= len(r.arrivedAt) || !r.arrivedAt[k].CompareAndSwap(0, now.UnixNano()) {
		return // unknown, or a repeat
	}
	r.nRecv.Add(1)
	if r.inWindow(now) {
		r.winRecv.Add(1)
	}
	lat := now.Sub(time.Unix(0, body.T))
	r.recordSecond(k, lat)
	if k >= r.warmK {
		r.delivery.Record(lat)
	}
}

// afterAnswer is, over the measured messages both answered and delivered, how long each
// arrived after its send's answer, and how many arrived before it.
func (r *latencyRun) afterAnswer() (after *Hist, before int64) {
	after = newHist()
	for k := r.warmK; k < len(r.answeredAt); k++ {
		answered, arrived := r.answeredAt[k].Load(), r.arrivedAt[k].Load()
		switch {
		case answered == 0 || arrived == 0:
		case arrived < answered:
			before++
		default:
			after.Record(time.Duration(arrived - answered))
		}
	}
	return after, before
}

// readCentrifugo takes publications off one subscriber connection until ctx ends, answering
// pings; offsets must follow each other per channel (history on: offset = position in the stream).
func (r *latencyRun) readCentrifugo(ctx context.Context, s *cfSubscriber, index map[string]int) error {
	last := maps.Clone(s.offsets)
	for {
		_, data, err := s.conn.Read(ctx)
		now := time.Now()
		if err != nil {
			return err
		}
		replies, err := cfDecode(data)
		if err != nil {
			return err
		}
		for _, rp := range replies {
			if rp.isPing() {
				if s.pong {
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					err := s.conn.Write(wctx, websocket.MessageText, cfPong)
					cancel()
					if err != nil {
						return err
					}
				}
				continue
			}
			p := rp.Push
			if p == nil {
				continue
			}
			switch {
			case p.Disconnect != nil:
				return fmt.Errorf("%w: disconnect %d %s", errCfUnsubscribed, p.Disconnect.Code, p.Disconnect.Reason)
			case p.Unsubscribe != nil:
				return fmt.Errorf("%w: unsubscribe %s %d %s", errCfUnsubscribed, p.Channel, p.Unsubscribe.Code, p.Unsubscribe.Reason)
			case p.Pub == nil:
				continue
			}
			if _, ok := index[p.Channel]; !ok {
				continue // an idle channel
			}
			if p.Pub.Offset != last[p.Channel]+1 {
				r.nOrder.Add(1)
			}
			last[p.Channel] = max(last[p.Channel], p.Pub.Offset)
			var body latencyBody
			if json.Unmarshal(p.Pub.Data, &body) != nil {
				continue
			}
			r.delivered(body, now)
		}
	}
}
