package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
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
	// Topology is the Redis the nodes ran on in the instances scenario ("single", "cluster"),
	// with its redis-server processes (all in the "redis" CPU group) and the nodes'
	// NOVA_FANOUT_PARTITIONS; empty in the other scenarios (the single server, 1 partition).
	Topology         string   `json:"redis_topology,omitempty"`
	RedisServers     int      `json:"redis_servers,omitempty"`
	FanoutPartitions int      `json:"fanout_partitions,omitempty"`
	SenderNode       string   `json:"sender_node"`
	RelayLeader      string   `json:"relay_leader"`
	SubscriberNodes  []string `json:"subscriber_nodes"`
	SubscriberConns  int      `json:"subscriber_connections"`
	IdleConns        int      `json:"idle_connections,omitempty"`
	IdleNode         string   `json:"idle_connections_node,omitempty"`
	IdleOpenS        float64  `json:"idle_connections_open_s,omitempty"`
	IdleFrames       int64    `json:"idle_connections_frames_received,omitempty"`
	Scheduled        int      `json:"scheduled_sends"`
	SentOK           int64    `json:"sent_ok"`
	SendErrors       int64    `json:"send_errors"`
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
	// StartLag is how late the load generator started each measured send after its intended
	// time: part of every latency above, and the same for any system it measures.
	StartLag Summary `json:"send_start_lag"`
	// AfterAnswer is, per measured message, how long after its send's answer (the 201) it
	// reached its subscriber; BeforeAnswer counts those that arrived first. Beside HTTP it tells
	// a tail made before the answer (the commit) from one made after it (publish, delivery).
	AfterAnswer  Summary `json:"delivered_after_answer"`
	BeforeAnswer int64   `json:"delivered_before_answer"`
	CPU          CPUUse  `json:"cpu_cores_during_measurement"`
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
	// One-statement sends committed in batches of more than one, and those batches, over the
	// whole run, warm-up included, over the nodes (their nova_send_batch* counters; 0 when a
	// scrape failed or the build has none).
	BatchedPosts int64 `json:"batched_posts"`
	SendBatches  int64 `json:"send_batches"`
	// LockedWrites are the sends (and other writes) that went the locked way, in group
	// transactions (nova_send_group_writes_total, same window): a conversation another instance
	// wrote within the last second. In the latency runs nearly none should. Nil when a scrape
	// failed or the build has no such counter.
	LockedWrites *int64 `json:"locked_writes,omitempty"`
	// ServerSendMeanMs is the mean time the sender node spent on an HTTP send, from its handler's
	// start to its answer (nova_send_duration_seconds, same window); beside the client's mean
	// it splits a send's time between the node and the network and client around it.
	ServerSendMeanMs float64 `json:"server_send_mean_ms"`
	// SendTxMeanMs is the sender node's mean round trip of a send transaction (a send alone or a
	// batch, commit included; nova_send_transaction_seconds_total), 0 if not scraped.
	SendTxMeanMs float64 `json:"send_transaction_mean_ms,omitempty"`
	// Timeline is one point per second of intended send time (warm-up included): how many were
	// delivered, their mean and their worst latency; stalls show up here.
	Timeline []TimelinePoint `json:"timeline,omitempty"`
	// Rounds is how many runs were merged into this result (A/B rounds alternate the feeds).
	Rounds int    `json:"rounds,omitempty"`
	Error  string `json:"error,omitempty"`

	delivery, http, startLag, afterAnswer *Hist // kept for merging rounds
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
	// Probe marks the message sent into each conversation before the run, to know its
	// subscriber is live (subscribers.awaitProbes); it is not measured.
	Probe bool `json:"probe,omitempty"`
}

type latencyRun struct {
	rate  int
	warmK int // sends with k < warmK are warm-up
	// answeredAt and arrivedAt are when the k-th send's answer came back and when its message
	// reached its subscriber (Unix ns, 0 = not (yet)): sent, received, lost and afterAnswer.
	answeredAt, arrivedAt []atomic.Int64
	delivery              *Hist
	http                  *Hist
	startLag              *Hist // how late each measured send started (the load generator's share)

	nSentOK, nErr, nRecv, nOrder atomic.Int64
	nSkipped                     atomic.Int64
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
	if len(b.env.Nodes) == 0 {
		return fmt.Errorf("no nodes running")
	}
	sender, others := b.latencyNodes(res, plan)
	sh := plan.shape
	senders, receivers, convs, err := b.latencyConversations(ctx, sender, sh.ConnPerConversation)
	if err != nil {
		return err
	}
	run := newLatencyRun(rate, warmup, measure)
	res.Scheduled = len(run.arrivedAt)

	// Idle subscribed connections first (they take the longest to open), each on a quiet
	// conversation, all on the first subscriber node.
	var idle *idleConns
	if sh.IdleConns > 0 {
		idle, err = b.openIdle(ctx, res, sender, others[0], sh.IdleConns)
		defer idle.close()
		if err != nil {
			return fmt.Errorf("idle connections: %w", err)
		}
	}
	subs, err := b.openSubscribers(ctx, res, run, others, receivers, convs, sh.ConnPerConversation)
	defer subs.close()
	if err != nil {
		return fmt.Errorf("subscribers: %w", err)
	}
	if err := subs.awaitProbes(ctx, b.api, sender.URL, senders, convs); err != nil {
		return fmt.Errorf("subscribers: %w", err)
	}
	if err := b.measureLatency(ctx, res, run, sender, senders, convs, warmup, measure, profile); err != nil {
		return err
	}
	run.awaitArrivals()
	subs.close()
	if idle != nil {
		idle.close()
		res.IdleFrames = idle.frames.Load()
	}
	b.summarizeLatency(ctx, res, run, measure)
	return nil
}

// latencyNodes picks the run's sender node and subscriber nodes and notes them in res.
func (b *Bench) latencyNodes(res *LatencyResult, plan latencyPlan) (sender *Node, others []*Node) {
	all := b.env.Nodes
	sender = all[0]
	if leader := b.env.Leader(2 * time.Second); leader != nil {
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
	others = plan.subs
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
	for _, n := range others {
		res.SubscriberNodes = append(res.SubscriberNodes, n.Name)
	}
	if !plan.shape.ConnPerConversation {
		res.SubscriberNodes = res.SubscriberNodes[:1]
	}
	return sender, others
}

// latencyConversations makes the run's conversations (b.cfg.Conversations), each between a
// sender user and a receiver user; with one connection for all of them, the receiver is the
// same user in every conversation.
func (b *Bench) latencyConversations(ctx context.Context, sender *Node, perConv bool) (senders, receivers []User, convs []string, err error) {
	n := b.cfg.Conversations
	senders, receivers = b.api.NewUsers(n), b.api.NewUsers(n)
	if !perConv {
		for i := range receivers {
			receivers[i] = receivers[0]
		}
	}
	convs = make([]string, n)
	err = parallel(ctx, n, 16, func(i int) error {
		var err error
		convs[i], err = b.api.CreateConversation(ctx, sender.URL, senders[i], []string{receivers[i].ID})
		return err
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create conversations: %w", err)
	}
	return senders, receivers, convs, nil
}

func newLatencyRun(rate int, warmup, measure time.Duration) *latencyRun {
	total := rate * int((warmup+measure)/time.Second)
	run := &latencyRun{rate: rate, warmK: rate * int(warmup/time.Second), answeredAt: make([]atomic.Int64, total),
		arrivedAt: make([]atomic.Int64, total), delivery: newHist(), http: newHist(), startLag: newHist()}
	secs := total/rate + 1
	run.secCount, run.secSumUs, run.secMaxUs = make([]atomic.Int64, secs), make([]atomic.Int64, secs), make([]atomic.Int64, secs)
	return run
}

// measureLatency sends open loop for warmup+measure: the k-th send is due at start + k/rate
// whatever happened to the ones before, stamped with its intended time; the shape says how
// many goroutines send (pace).
func (b *Bench) measureLatency(ctx context.Context, res *LatencyResult, run *latencyRun, sender *Node, senders []User, convs []string,
	warmup, measure time.Duration, profile bool) error {
	start := time.Now().Add(20 * time.Millisecond)
	run.winStart, run.winEnd = start.Add(warmup), start.Add(warmup+measure)
	if profile && b.cfg.Profile {
		secs := int(min(measure, 20*time.Second) / time.Second)
		for _, node := range b.env.Nodes {
			res.Profiles = append(res.Profiles, b.captureProfile(ctx, node, secs, warmup, res.Name))
		}
	}
	cpuWait := b.cpuDuringByNode(ctx, run.winStart, run.winEnd)
	posts0, batches0, scraped0 := b.sendBatches()
	locked0, _, lockedScraped0 := b.sendGroups()
	sendSum0, sendCount0, sendScraped0 := serverSends(sender)
	txSum0, txCount0, txScraped0 := sendTransactions(sender)
	stopProgress := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("%s: %4.1fs/%.0fs  sent=%d recv=%d errors=%d skipped=%d", res.Name, time.Since(start).Seconds(),
			(warmup + measure).Seconds(), run.nSentOK.Load(), run.nRecv.Load(), run.nErr.Load(), run.nSkipped.Load())
	})
	defer stopProgress()
	runID := randomHex(4)
	n := len(convs)
	run.pace(ctx, res.ShapeSpec.Senders, len(run.arrivedAt), run.rate, start, func(k int, intended time.Time) {
		run.send(ctx, b.api, sender.URL, senders[k%n], convs[k%n], runID, k, intended)
	})
	res.CPU, res.NodeCPU = cpuWait()
	if posts1, batches1, scraped1 := b.sendBatches(); scraped0 && scraped1 {
		res.BatchedPosts, res.SendBatches = posts1-posts0, batches1-batches0
	}
	if locked1, _, lockedScraped1 := b.sendGroups(); lockedScraped0 && lockedScraped1 {
		locked := locked1 - locked0
		res.LockedWrites = &locked
	}
	if sum1, count1, ok := serverSends(sender); sendScraped0 && ok && count1 > sendCount0 {
		res.ServerSendMeanMs = (sum1 - sendSum0) / (count1 - sendCount0) * 1000
	}
	if sum1, count1, ok := sendTransactions(sender); txScraped0 && ok && count1 > txCount0 {
		res.SendTxMeanMs = (sum1 - txSum0) / (count1 - txCount0) * 1000
	}
	return ctx.Err()
}

// summarizeLatency fills res from the finished run, logs it, and waits for the consumer groups.
func (b *Bench) summarizeLatency(ctx context.Context, res *LatencyResult, run *latencyRun, measure time.Duration) {
	res.SentOK, res.SendErrors, res.Received, res.OrderViolations = run.nSentOK.Load(), run.nErr.Load(), run.nRecv.Load(), run.nOrder.Load()
	res.Skipped = run.nSkipped.Load()
	res.Lost = run.lost()
	if v, ok := run.firstErr.Load().(string); ok {
		res.FirstSendError = v
	}
	res.SendRate = float64(run.winSends.Load()) / measure.Seconds()
	res.DeliveredRate = float64(run.winRecv.Load()) / measure.Seconds()
	res.delivery, res.http, res.startLag = run.delivery, run.http, run.startLag
	res.Delivery = run.delivery.Summary(true)
	res.HTTP = run.http.Summary(false)
	res.StartLag = run.startLag.Summary(false)
	res.afterAnswer, res.BeforeAnswer = run.afterAnswer()
	res.AfterAnswer = res.afterAnswer.Summary(false)
	res.Timeline = run.timeline()
	res.CPUPerMsgMs = cpuPerMessageMs(res.CPU, novaServerGroups, res.DeliveredRate)
	b.log.Printf("%s: p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms sent=%d received=%d lost=%d errors=%d skipped=%d order_violations=%d cpu/msg=%.3fms",
		res.Name, res.Delivery.P50, res.Delivery.P90, res.Delivery.P99, res.Delivery.Max,
		res.SentOK, res.Received, res.Lost, res.SendErrors, res.Skipped, res.OrderViolations, res.CPUPerMsgMs)
	b.log.Printf("%s: cpu %s; by node: %s", res.Name, res.CPU, formatNodeCPU(res.NodeCPU))
	b.log.Printf("%s: %d of %d sends committed in %d batches of more than one", res.Name, res.BatchedPosts, res.SentOK, res.SendBatches)
	res.GroupBacklog, res.GroupDrainS = b.drainGroups(ctx, 60*time.Second)
	if res.GroupBacklog > 0 {
		b.log.Printf("%s: consumer groups were %d entries behind at the end; drained in %.1fs", res.Name, res.GroupBacklog, res.GroupDrainS)
	}
}

// openIdle opens count idle WebSockets on node, spread over idleConversations(count) quiet
// conversations (created on via) whose participants are as many users: connection j is user
// (j / conversations) mod users in conversation j mod conversations, each pair once for up to
// 10,000 connections. They count any frame but the subscribe answer; the caller closes them.
func (b *Bench) openIdle(ctx context.Context, res *LatencyResult, via, node *Node, count int) (*idleConns, error) {
	res.IdleConns, res.IdleNode = count, node.Name
	ic := newIdleConns(ctx, count)
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
		return ic, fmt.Errorf("create quiet conversations: %w", err)
	}
	t := time.Now()
	stop := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("%s: %d/%d idle connections open and subscribed on %s", res.Name, ic.opened.Load(), count, node.Name)
	})
	defer stop()
	err := ic.open(ctx, node.URL, func(j int) (User, string) { return users[(j/nconv)%len(users)], convs[j%nconv] })
	stop()
	res.IdleOpenS = time.Since(t).Seconds()
	if err == nil {
		b.log.Printf("%s: %d idle connections open and subscribed on %s (%d quiet conversations) in %.1fs", res.Name, count, node.Name, nconv, res.IdleOpenS)
	}
	return ic, err
}

// send is the k-th send of the run. It goes through the bench's own HTTP call, not the Go
// client's Send: that one retries a failed send (5xx, 429, timeouts) until ctx ends, which would
// turn a send error into latency and hide it from the send_errors count.
func (r *latencyRun) send(ctx context.Context, api *API, base string, u User, conv, runID string, k int, intended time.Time) {
	body := `{"t":` + strconv.FormatInt(intended.UnixNano(), 10) + `,"k":` + strconv.Itoa(k) + `,"text":"novabench latency probe"}`
	_, err := api.Send(ctx, base, u, conv, runID+"-"+strconv.Itoa(k), []byte(body))
	r.sent(ctx, k, intended, time.Now(), err)
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
	m.delivery, m.http, m.startLag, m.afterAnswer = newHist(), newHist(), newHist(), newHist()
	m.BeforeAnswer = 0
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
			m.startLag.merge(p.startLag)
			m.afterAnswer.merge(p.afterAnswer)
		}
		m.BeforeAnswer += p.BeforeAnswer
	}
	m.Delivery, m.HTTP, m.StartLag = m.delivery.Summary(true), m.http.Summary(false), m.startLag.Summary(false)
	m.AfterAnswer = m.afterAnswer.Summary(false)
	return m
}

// sendTransactions reads a node's running total of send-transaction time (s) and its count of
// send transactions.
func sendTransactions(node *Node) (sum, count float64, ok bool) {
	sums, ok := sumMetrics([]*Node{node}, "nova_send_transaction_seconds_total", "nova_send_transactions_total")
	if !ok {
		return 0, 0, false
	}
	return sums[0], sums[1], true
}

// serverSends reads a node's running total of HTTP send time (s) and its count of HTTP sends.
func serverSends(node *Node) (sum, count float64, ok bool) {
	sums, ok := sumMetrics([]*Node{node},
		`nova_send_duration_seconds_sum{transport="http"}`, `nova_send_duration_seconds_count{transport="http"}`)
	if !ok {
		return 0, 0, false
	}
	return sums[0], sums[1], true
}
