package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// LatencyResult is one open-loop send-to-deliver run: HTTP sends to one node at a fixed
// offered rate, WebSocket subscribers on the other nodes, in one load shape.
type LatencyResult struct {
	Name             string    `json:"name"`
	Feed             string    `json:"live_feed"`
	Shape            string    `json:"shape"`
	ShapeSpec        loadShape `json:"shape_spec"`
	ShapeDescription string    `json:"shape_description"`
	OfferedRate      int       `json:"offered_rate_per_s"`
	WarmupS          float64   `json:"warmup_s"`
	MeasureS         float64   `json:"measure_s"`
	Conversations    int       `json:"conversations"`
	Nodes            int       `json:"nodes"`
	SenderNode       string    `json:"sender_node"`
	RelayLeader      string    `json:"relay_leader"`
	SubscriberNodes  []string  `json:"subscriber_nodes"`
	SubscriberConns  int       `json:"subscriber_connections"`
	IdleConns        int       `json:"idle_connections,omitempty"`
	IdleNode         string    `json:"idle_connections_node,omitempty"`
	IdleOpenS        float64   `json:"idle_connections_open_s,omitempty"`
	IdleFrames       int64     `json:"idle_connections_frames_received,omitempty"`
	Scheduled        int       `json:"scheduled_sends"`
	SentOK           int64     `json:"sent_ok"`
	SendErrors       int64     `json:"send_errors"`
	// Skipped are sends not made because they were already more than maxSendLag late (a
	// sequential sender that fell behind): the run stays bounded, the shape fails its targets.
	Skipped         int64  `json:"skipped_late_sends,omitempty"`
	FirstSendError  string `json:"first_send_error,omitempty"`
	Received        int64  `json:"received"`
	Lost            int64  `json:"lost"`
	OrderViolations int64  `json:"order_violations"`
	// Rates inside the measurement window, by completion time: what the system kept up with.
	SendRate      float64 `json:"sends_completed_per_s"`
	DeliveredRate float64 `json:"delivered_per_s"`
	// Delivery is send-to-deliver latency from the intended send time (no coordinated omission).
	Delivery Summary `json:"delivery_latency"`
	// HTTP is the send's response time, also from the intended send time.
	HTTP Summary `json:"http_send_latency"`
	CPU  CPUUse  `json:"cpu_cores_during_measurement"`
	// NodeCPU is each node's share of CPU (cores) during the measurement window.
	NodeCPU map[string]float64 `json:"cpu_cores_by_node,omitempty"`
	// NodeCPUNoLoad is each node's CPU (cores) just before the run, with nothing sent (the
	// instances scenario measures it, to tell a node's own upkeep from what the load costs it).
	NodeCPUNoLoad map[string]float64 `json:"cpu_cores_by_node_without_load,omitempty"`
	// CPUPerMsgMs is CPU time of every server process (the nodes, the bench database's
	// Postgres backends, Redis) per delivered message.
	CPUPerMsgMs float64 `json:"cpu_ms_per_delivered_message"`
	// Consumer groups' unhandled fan-out entries at the end, and the seconds to drain them.
	GroupBacklog int64    `json:"group_backlog_after"`
	GroupDrainS  float64  `json:"group_drain_s"`
	Profiles     []string `json:"cpu_profiles,omitempty"`
	// Timeline is one point per second of intended send time (warm-up included): how many were
	// delivered, their mean and their worst latency; stalls show up here.
	Timeline []TimelinePoint `json:"timeline,omitempty"`
	// Rounds is how many runs were merged into this result (A/B rounds alternate the feeds).
	Rounds int    `json:"rounds,omitempty"`
	Error  string `json:"error,omitempty"`

	delivery, http *Hist // kept for merging rounds
}

type TimelinePoint struct {
	Second    int     `json:"s"`
	Delivered int64   `json:"delivered"`
	MeanMs    float64 `json:"mean_ms"`
	MaxMs     float64 `json:"max_ms"`
}

// latencyBody is what each message carries: the intended send time and the send index.
type latencyBody struct {
	T int64 `json:"t"`
	K int   `json:"k"`
}

type latencyRun struct {
	rate     int
	warmK    int // sends with k < warmK are warm-up
	received []atomic.Bool
	sentOK   []atomic.Bool
	delivery *Hist
	http     *Hist

	nSentOK, nErr, nRecv, nOrder atomic.Int64
	nSkipped, nIdleFrames        atomic.Int64
	winStart, winEnd             time.Time
	winSends, winRecv            atomic.Int64
	firstErr                     atomic.Value
	secCount, secSumUs, secMaxUs []atomic.Int64 // per second of intended send time
}

func (r *latencyRun) recordSecond(k int, d time.Duration) {
	i := k / r.rate
	if i >= len(r.secCount) {
		return
	}
	us := d.Microseconds()
	r.secCount[i].Add(1)
	r.secSumUs[i].Add(us)
	for {
		old := r.secMaxUs[i].Load()
		if us <= old || r.secMaxUs[i].CompareAndSwap(old, us) {
			return
		}
	}
}

func (r *latencyRun) timeline() []TimelinePoint {
	out := make([]TimelinePoint, len(r.secCount))
	for i := range out {
		n := r.secCount[i].Load()
		out[i] = TimelinePoint{Second: i, Delivered: n, MaxMs: float64(r.secMaxUs[i].Load()) / 1000}
		if n > 0 {
			out[i].MeanMs = float64(r.secSumUs[i].Load()) / float64(n) / 1000
		}
	}
	return out
}

func (r *latencyRun) inWindow(t time.Time) bool { return !t.Before(r.winStart) && t.Before(r.winEnd) }

// maxSendLag bounds a run whose senders fell behind: a send that would start more than this
// after its intended time is skipped (and counted), so a sequential sender slower than the
// offered rate cannot stretch the run without end.
const maxSendLag = 10 * time.Second

// latencyPlan says how a latency run is laid out; its zero value (apart from the shape) is
// the default: sends to a node that does not lead the outbox relay (to the leader with
// -send-to-leader), subscribers spread over all the other nodes.
type latencyPlan struct {
	shape  loadShape
	sender *Node   // nil: the default
	subs   []*Node // nil: every node but the sender (all nodes if there is only one)
}

// runLatency runs one latency measurement of the main shape on the current nodes.
func (b *Bench) runLatency(ctx context.Context, name, feed string, rate int, warmup, measure time.Duration, profile bool) *LatencyResult {
	return b.runLatencyPlan(ctx, name, feed, latencyPlan{shape: novaLatencyShape}, rate, warmup, measure, profile)
}

// runLatencyPlan runs one latency measurement laid out by plan on the current nodes.
func (b *Bench) runLatencyPlan(ctx context.Context, name, feed string, plan latencyPlan, rate int, warmup, measure time.Duration, profile bool) (res *LatencyResult) {
	res = &LatencyResult{Name: name, Feed: feed, Shape: plan.shape.String(), ShapeSpec: plan.shape, ShapeDescription: plan.shape.Describe(),
		OfferedRate: rate, WarmupS: warmup.Seconds(), MeasureS: measure.Seconds(), Conversations: b.cfg.Conversations, Nodes: len(b.env.Nodes)}
	if err := b.latency(ctx, res, plan, rate, warmup, measure, profile); err != nil {
		res.Error = err.Error()
		b.log.Printf("%s: ERROR %v", name, err)
	}
	return res
}

func (b *Bench) latency(ctx context.Context, res *LatencyResult, plan latencyPlan, rate int, warmup, measure time.Duration, profile bool) error {
	// The sender is a node whose relay does not lead: with N nodes that is where (N-1)/N of the
	// sends land, and their commits reach the relay through a NOTIFY. Subscribers are on the others.
	all := b.env.Nodes
	if len(all) == 0 {
		return fmt.Errorf("no nodes running")
	}
	sh := plan.shape
	sender := all[0]
	leader := b.env.Leader(2 * time.Second)
	if leader != nil {
		res.RelayLeader = leader.Name
		for _, n := range all {
			if (n == leader) == b.cfg.SendToLeader {
				sender = n
				break
			}
		}
	}
	if plan.sender != nil {
		sender = plan.sender
	}
	res.SenderNode = sender.Name
	others := plan.subs
	if len(others) == 0 {
		for _, n := range all {
			if n != sender {
				others = append(others, n)
			}
		}
	}
	if len(others) == 0 {
		others = all
	}
	subNode := func(i int) *Node { return others[i%len(others)] }
	for _, n := range others {
		res.SubscriberNodes = append(res.SubscriberNodes, n.Name)
	}

	// 100 conversations, each between a sender user and a receiver user; with one connection
	// for all of them, the receiver is the same user in every conversation.
	n := b.cfg.Conversations
	senders, receivers := b.api.NewUsers(n), b.api.NewUsers(n)
	if !sh.ConnPerConversation {
		for i := range receivers {
			receivers[i] = receivers[0]
		}
	}
	convs := make([]string, n)
	if err := parallel(ctx, n, 16, func(i int) error {
		var err error
		convs[i], err = b.api.CreateConversation(ctx, sender.URL, senders[i], []string{receivers[i].ID})
		return err
	}); err != nil {
		return fmt.Errorf("create conversations: %w", err)
	}

	total := rate * int((warmup+measure)/time.Second)
	run := &latencyRun{rate: rate, warmK: rate * int(warmup/time.Second), received: make([]atomic.Bool, total),
		sentOK: make([]atomic.Bool, total), delivery: newHist(), http: newHist()}
	secs := total/rate + 1
	run.secCount, run.secSumUs, run.secMaxUs = make([]atomic.Int64, secs), make([]atomic.Int64, secs), make([]atomic.Int64, secs)
	res.Scheduled = total

	rctx, stopReaders := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReaders()
	var conns []*websocket.Conn
	var readers sync.WaitGroup
	closeAll := func() {
		stopReaders()
		for _, c := range conns {
			if c != nil {
				_ = c.CloseNow()
			}
		}
		readers.Wait()
	}
	defer closeAll()

	// Idle subscribed connections first (they take the longest to open), each on a quiet
	// conversation, all on the first subscriber node.
	if sh.IdleConns > 0 {
		idle, err := b.openIdle(ctx, res, sender, others[0], sh.IdleConns, rctx, &readers, &run.nIdleFrames)
		conns = append(conns, idle...)
		if err != nil {
			return fmt.Errorf("idle connections: %w", err)
		}
	}

	// The active subscribers, on nodes other than the sender's: one per conversation, or one
	// for all of them.
	active := make([]*websocket.Conn, n)
	if !sh.ConnPerConversation {
		active = active[:1]
	}
	err := parallel(ctx, len(active), 16, func(i int) error {
		c, err := DialWS(ctx, subNode(i).URL, receivers[i])
		if err != nil {
			return err
		}
		active[i] = c
		if sh.ConnPerConversation {
			_, err = SubscribeAndWait(ctx, c, convs[i], 0)
			return err
		}
		for _, conv := range convs {
			if _, err := SubscribeAndWait(ctx, c, conv, 0); err != nil {
				return err
			}
		}
		return nil
	})
	conns = append(conns, active...)
	if err != nil {
		return fmt.Errorf("subscribers: %w", err)
	}
	res.SubscriberConns = len(active)
	if !sh.ConnPerConversation {
		res.SubscriberNodes = res.SubscriberNodes[:1]
	}
	for _, c := range active {
		readers.Add(1)
		go func() { defer readers.Done(); run.read(rctx, c) }()
	}

	start := time.Now().Add(20 * time.Millisecond)
	run.winStart, run.winEnd = start.Add(warmup), start.Add(warmup+measure)
	if profile && b.cfg.Profile {
		secs := int(min(measure, 20*time.Second) / time.Second)
		for _, node := range all {
			res.Profiles = append(res.Profiles, b.captureProfile(ctx, node, secs, warmup, res.Name))
		}
	}
	cpuWait := b.cpuDuringByNode(ctx, run.winStart, run.winEnd)
	stopProgress := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("%s: %4.1fs/%.0fs  sent=%d recv=%d errors=%d skipped=%d", res.Name, time.Since(start).Seconds(),
			(warmup + measure).Seconds(), run.nSentOK.Load(), run.nRecv.Load(), run.nErr.Load(), run.nSkipped.Load())
	})
	defer stopProgress()

	// Open loop: the k-th send is due at start + k/rate whatever happened to the ones before,
	// stamped with its intended time; the shape says how many goroutines send (paceSends).
	runID := randomHex(4)
	run.pace(ctx, sh.Senders, total, rate, start, func(k int, intended time.Time) {
		run.send(ctx, b.api, sender.URL, senders[k%n], convs[k%n], runID, k, intended)
	})
	res.CPU, res.NodeCPU = cpuWait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	run.awaitArrivals()
	stopProgress()
	closeAll()

	res.SentOK, res.SendErrors, res.Received, res.OrderViolations = run.nSentOK.Load(), run.nErr.Load(), run.nRecv.Load(), run.nOrder.Load()
	res.Skipped = run.nSkipped.Load()
	res.IdleFrames = run.nIdleFrames.Load()
	res.Lost = run.lost()
	if v, ok := run.firstErr.Load().(string); ok {
		res.FirstSendError = v
	}
	res.SendRate = float64(run.winSends.Load()) / measure.Seconds()
	res.DeliveredRate = float64(run.winRecv.Load()) / measure.Seconds()
	res.delivery, res.http = run.delivery, run.http
	res.Delivery = run.delivery.Summary(true)
	res.HTTP = run.http.Summary(false)
	res.Timeline = run.timeline()
	res.CPUPerMsgMs = cpuPerMessageMs(res.CPU, novaServerGroups, res.DeliveredRate)
	b.log.Printf("%s: p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms sent=%d received=%d lost=%d errors=%d skipped=%d order_violations=%d cpu/msg=%.3fms",
		res.Name, res.Delivery.P50, res.Delivery.P90, res.Delivery.P99, res.Delivery.Max,
		res.SentOK, res.Received, res.Lost, res.SendErrors, res.Skipped, res.OrderViolations, res.CPUPerMsgMs)
	b.log.Printf("%s: cpu %s; by node: %s", res.Name, res.CPU, formatNodeCPU(res.NodeCPU))
	res.GroupBacklog, res.GroupDrainS = b.drainGroups(ctx, 60*time.Second)
	if res.GroupBacklog > 0 {
		b.log.Printf("%s: consumer groups were %d entries behind at the end; drained in %.1fs", res.Name, res.GroupBacklog, res.GroupDrainS)
	}
	return nil
}

// openIdle opens count idle WebSockets on node, spread over idleConversations(count) quiet
// conversations (created on via) whose participants are as many users: connection j is user
// (j / conversations) mod users in conversation j mod conversations, each pair once for up to
// 10,000 connections. Their readers (which answer the server's pings and count any frame but
// the subscribe answer into frames) run until rctx ends; the returned connections are closed by the caller.
func (b *Bench) openIdle(ctx context.Context, res *LatencyResult, via, node *Node, count int, rctx context.Context, readers *sync.WaitGroup, frames *atomic.Int64) ([]*websocket.Conn, error) {
	res.IdleConns, res.IdleNode = count, node.Name
	nconv := idleConversations(count)
	users := b.api.NewUsers(nconv)
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	convs := make([]string, nconv)
	if err := parallel(ctx, nconv, 8, func(i int) error {
		var err error
		convs[i], err = b.api.CreateConversation(ctx, via.URL, users[i], ids)
		return err
	}); err != nil {
		return nil, fmt.Errorf("create quiet conversations: %w", err)
	}
	conns := make([]*websocket.Conn, count)
	var opened atomic.Int64
	t := time.Now()
	stop := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("%s: %d/%d idle connections open and subscribed on %s", res.Name, opened.Load(), count, node.Name)
	})
	defer stop()
	err := parallel(ctx, count, 64, func(j int) error {
		u, conv := users[(j/nconv)%len(users)], convs[j%nconv]
		c, err := DialWS(ctx, node.URL, u)
		if err != nil {
			return fmt.Errorf("connection %d: %w", j, err)
		}
		conns[j] = c
		if _, err := SubscribeAndWait(ctx, c, conv, 0); err != nil {
			return fmt.Errorf("connection %d: %w", j, err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				if _, _, err := c.Read(rctx); err != nil {
					return
				}
				frames.Add(1)
			}
		}()
		opened.Add(1)
		return nil
	})
	stop()
	res.IdleOpenS = time.Since(t).Seconds()
	if err == nil {
		b.log.Printf("%s: %d idle connections open and subscribed on %s (%d quiet conversations) in %.1fs", res.Name, count, node.Name, nconv, res.IdleOpenS)
	}
	return conns, err
}

func (r *latencyRun) send(ctx context.Context, api *API, base string, u User, conv, runID string, k int, intended time.Time) {
	body := `{"t":` + strconv.FormatInt(intended.UnixNano(), 10) + `,"k":` + strconv.Itoa(k) + `,"text":"novabench latency probe"}`
	_, err := api.Send(ctx, base, u, conv, runID+"-"+strconv.Itoa(k), []byte(body))
	r.sent(ctx, k, intended, time.Now(), err)
}

// read takes message frames off one subscriber connection until ctx ends.
func (r *latencyRun) read(ctx context.Context, c *websocket.Conn) {
	last := map[string]int64{} // by conversation: one connection may carry all of them
	for {
		_, data, err := c.Read(ctx)
		now := time.Now()
		if err != nil {
			return
		}
		var f struct {
			Type    string          `json:"type"`
			Message json.RawMessage `json:"message"`
		}
		if json.Unmarshal(data, &f) != nil || f.Type != "message" {
			continue
		}
		var m struct {
			ConversationID string      `json:"conversation_id"`
			Seq            int64       `json:"seq"`
			Body           latencyBody `json:"body"`
		}
		if json.Unmarshal(f.Message, &m) != nil {
			continue
		}
		if m.Seq != last[m.ConversationID]+1 {
			r.nOrder.Add(1)
		}
		last[m.ConversationID] = max(last[m.ConversationID], m.Seq)
		r.delivered(m.Body, now)
	}
}

// parallel runs f(0..n-1) with at most width at once and returns the first error.
func parallel(ctx context.Context, n, width int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return first != nil }
	sem := make(chan struct{}, width)
	for i := range n {
		if ctx.Err() != nil || failed() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// mergeLatency combines rounds of the same run into one result: histograms merged, counts
// summed, rates and CPU averaged.
func mergeLatency(parts []*LatencyResult) *LatencyResult {
	if len(parts) == 1 {
		return parts[0]
	}
	first := *parts[0]
	m := &first
	m.Rounds, m.Timeline, m.CPU, m.Profiles = len(parts), nil, CPUUse{}, nil
	m.SentOK, m.SendErrors, m.Received, m.Lost, m.OrderViolations, m.Scheduled = 0, 0, 0, 0, 0, 0
	m.MeasureS, m.SendRate, m.DeliveredRate, m.GroupBacklog, m.GroupDrainS = 0, 0, 0, 0, 0
	m.delivery, m.http = newHist(), newHist()
	for _, p := range parts {
		if p.Error != "" && m.Error == "" {
			m.Error = p.Error
		}
		m.SentOK += p.SentOK
		m.SendErrors += p.SendErrors
		m.Received += p.Received
		m.Lost += p.Lost
		m.OrderViolations += p.OrderViolations
		m.Scheduled += p.Scheduled
		m.MeasureS += p.MeasureS
		m.SendRate += p.SendRate / float64(len(parts))
		m.DeliveredRate += p.DeliveredRate / float64(len(parts))
		m.GroupBacklog = max(m.GroupBacklog, p.GroupBacklog)
		m.GroupDrainS = max(m.GroupDrainS, p.GroupDrainS)
		for k, v := range p.CPU {
			if k == checkpointsKey {
				m.CPU[k] += v // a count, not cores
				continue
			}
			m.CPU[k] += v / float64(len(parts))
		}
		if p.delivery != nil {
			m.delivery.merge(p.delivery)
			m.http.merge(p.http)
		}
	}
	m.Delivery, m.HTTP = m.delivery.Summary(true), m.http.Summary(false)
	return m
}
