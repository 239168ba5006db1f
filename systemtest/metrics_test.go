package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
)

// scrape is one /metrics answer, parsed.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, adminURL string) scrape {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// get returns the value of the sample of name whose labels include labels (a counter's or
// gauge's value, a histogram's count), and whether there is one.
func (s scrape) get(name string, labels ...string) (float64, bool) {
	f, ok := s[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// expectations collects mismatches, so that a polling check can report the last ones.
type expectations []string

func (e *expectations) eq(s scrape, want float64, name string, labels ...string) {
	got, ok := s.get(name, labels...)
	if !ok {
		*e = append(*e, fmt.Sprintf("%s%v: absent, want %v", name, labels, want))
	} else if got != want {
		*e = append(*e, fmt.Sprintf("%s%v = %v, want %v", name, labels, got, want))
	}
}

func TestMetricsCountSendsRelayDeliveryAndMatchConsumerGroups(t *testing.T) {
	ctx := context.Background()
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	db := testinfra.NewDatabase(t)
	// Pub/Sub off, so that every live delivery comes from the fan-out stream and carries its
	// timestamp; claims off, so that the extra group's pending entries stay where they are.
	nova := testinfra.StartProcess(t, testinfra.Env{DatabaseURL: db, RedisURL: rds.URL(),
		Settings: map[string]string{"NOVA_PUBSUB_COMPAT": "false", "NOVA_CLAIM_IDLE": "10m", "NOVA_LOG_LEVEL": "debug"}})
	alice := testinfra.NewUser(t, nova.URL)
	bob := testinfra.NewUser(t, nova.URL)
	conv := alice.CreateConversation(bob.User)

	// given bob subscribed through a browser-style connection (token in the query string)
	wsURL := strings.Replace(nova.URL, "http", "ws", 1) + "/v1/ws?client_id=" + uuid.NewString() + "&access_token=" + url.QueryEscape(bob.Token)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	bobConn, _, err := websocket.Dial(dctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bobConn.CloseNow()
	writeFrame(t, bobConn, map[string]any{"type": "subscribe", "id": "s1", "conversation_id": conv})
	if f := readFrame(t, bobConn); f["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", f)
	}
	// and the instance listens on the conversation's live channel, so that the sends below are
	// delivered live and timed (sends made before that reach bob from the stream, untimed: on a
	// busy machine all 15 once did)
	live := redisstream.LiveChannel(string(conv))
	testinfra.Eventually(t, 10*time.Second, "the instance to subscribe to "+live, func() bool {
		n, err := rdb.PubSubShardNumSub(ctx, live).Result()
		return err == nil && n[live] == 1
	})

	// when alice sends 12 messages over HTTP (and repeats one), and 3 over her WebSocket
	const viaHTTP, viaWS = 12, 3
	for i := 1; i <= viaHTTP; i++ {
		alice.Send(conv, fmt.Sprintf("h%d", i), map[string]any{"n": i})
	}
	if _, status := alice.Send(conv, "h1", map[string]any{"n": 1}); status != http.StatusOK {
		t.Fatalf("repeat: status %d, want 200", status)
	}
	aliceWS := alice.DialWS("", "")
	for i := 1; i <= viaWS; i++ {
		aliceWS.Write(map[string]any{"type": "send", "id": fmt.Sprint(i), "conversation_id": conv,
			"client_msg_id": fmt.Sprintf("w%d", i), "body": i})
		if f := aliceWS.Next(10 * time.Second); f.Type != "sent" {
			t.Fatalf("ws send: %s", f.Raw)
		}
	}
	const total = viaHTTP + viaWS
	for i := 1; i <= total; i++ {
		if f := readFrame(t, bobConn); f["type"] != "message" {
			t.Fatalf("bob's frame %d: %v", i, f)
		}
	}

	// and another consumer group read 5 fan-out entries and never acknowledged them
	if err := rdb.XGroupCreate(ctx, redisstream.FanoutStream, "audit", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "audit", Consumer: "auditor",
		Streams: []string{redisstream.FanoutStream, ">"}, Count: 5}).Err(); err != nil {
		t.Fatal(err)
	}

	// then /metrics counts exactly that, and its group gauges equal what Redis says
	var last expectations
	var s scrape
	eventuallyExplained(t, 15*time.Second, "metrics match the sends and Redis", func() bool {
		s = scrapeMetrics(t, nova.AdminURL)
		var e expectations
		e.eq(s, viaHTTP, "nova_messages_stored_total", "transport", "http")
		e.eq(s, viaWS, "nova_messages_stored_total", "transport", "ws")
		e.eq(s, 1, "nova_sends_total", "transport", "http", "outcome", "repeat")
		e.eq(s, viaHTTP+1, "nova_send_duration_seconds", "transport", "http")
		e.eq(s, viaWS, "nova_send_duration_seconds", "transport", "ws")
		e.eq(s, total, "nova_messages_relayed_total")
		// one transaction per send, one at a time, and the repeat's two that failed (on remembered
		// state, then on fresh state, before the locked way names the original)
		e.eq(s, total+2, "nova_send_transactions_total")
		if secs, ok := s.get("nova_send_transaction_seconds_total"); !ok || secs <= 0 {
			e = append(e, fmt.Sprintf("nova_send_transaction_seconds_total = %v (present: %v), want above 0", secs, ok))
		}
		e.eq(s, total, "nova_messages_delivered_total")
		e.eq(s, 1, "nova_outbox_relay_leader")
		e.eq(s, 0, "nova_outbox_backlog_rows")
		e.eq(s, 0, "nova_outbox_oldest_age_seconds")
		e.eq(s, 1, "nova_redis_up")
		e.eq(s, 1, "nova_postgres_up")
		e.eq(s, 1, "nova_subscriptions")
		e.eq(s, 2, "nova_websocket_connections")
		e.eq(s, 0, "nova_websocket_slow_cutoffs_total")
		e.eq(s, total, "nova_consumer_handled_total")
		e.eq(s, 0, "nova_dead_lettered_total")
		convStream := redisstream.ConversationStream(string(conv))
		e.eq(s, total, "nova_stream_length", "stream", convStream, "kind", "conversation")
		e.eq(s, 1, "nova_stream_first_entry_id", "stream", convStream)
		e.eq(s, total, "nova_stream_last_entry_id", "stream", convStream)
		e.eq(s, float64(rdb.XLen(ctx, redisstream.FanoutStream).Val()), "nova_stream_length", "stream", redisstream.FanoutStream, "kind", "fanout")

		groups, err := rdb.XInfoGroups(ctx, redisstream.FanoutStream).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(groups) != 2 {
			t.Fatalf("fan-out groups: %+v, want messaging-service and audit", groups)
		}
		for _, g := range groups {
			stream := []string{"stream", redisstream.FanoutStream, "group", g.Name}
			pending := pendingOf(t, rdb, g.Name)
			e.eq(s, float64(pending), "nova_consumer_group_pending", stream...)
			e.eq(s, float64(g.Lag), "nova_consumer_group_lag", stream...)
			e.eq(s, float64(g.Consumers), "nova_consumer_group_consumers", stream...)
			consumers, err := rdb.XInfoConsumers(ctx, redisstream.FanoutStream, g.Name).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range consumers {
				e.eq(s, float64(c.Pending), "nova_consumer_pending", append(stream, "consumer", c.Name)...)
			}
		}
		last = e
		return len(e) == 0
	}, func() string { return strings.Join(last, "\n") })

	// the extra group's numbers are the ones set up, not merely equal to Redis
	if v, _ := s.get("nova_consumer_group_pending", "group", "audit"); v != 5 {
		t.Errorf("audit pending = %v, want 5", v)
	}
	if v, _ := s.get("nova_consumer_group_lag", "group", "audit"); v != total-5 {
		t.Errorf("audit lag = %v, want %d", v, total-5)
	}
	if v, _ := s.get("nova_consumer_group_oldest_pending_idle_seconds", "group", "audit"); v <= 0 || v > 30 {
		t.Errorf("audit oldest pending idle = %vs, want a few seconds", v)
	}
	if v, _ := s.get("nova_consumer_group_pending", "group", "messaging-service"); v != 0 {
		t.Errorf("messaging-service pending = %v, want 0", v)
	}
	if v, _ := s.get("nova_send_to_deliver_seconds"); v < 1 || v > total {
		t.Errorf("send-to-deliver observations = %v, want 1..%d (live fan-out deliveries to bob)", v, total)
	}
	if v, ok := s.get("nova_instance_info", "instance_id", ""); ok {
		t.Errorf("nova_instance_info has an empty instance_id (%v)", v)
	}
	// and every metric the alert rules and the dashboard query is one an instance exports (an
	// alert on a misspelt or removed metric would never fire)
	for _, name := range deployedMetrics(t) {
		if _, ok := s[name]; !ok {
			t.Errorf("deploy/ queries %s, which /metrics does not have", name)
		}
	}

	// /admin/api/streams tells the same story as JSON
	var api struct {
		InstanceID string `json:"instance_id"`
		Counters   struct{ Stored, Relayed, Delivered int64 }
		Streams    []struct {
			Key    string
			Groups []struct {
				Name    string
				Pending int64
				Lag     *int64
			}
		}
		Outbox *struct{ Backlog int64 }
	}
	getJSON(t, nova.AdminURL+"/admin/api/streams", &api)
	if api.InstanceID == "" || api.Counters.Stored != total || api.Counters.Relayed != total || api.Counters.Delivered != total {
		t.Errorf("api counters: %+v (instance %q), want %d each", api.Counters, api.InstanceID, total)
	}
	if api.Outbox == nil || api.Outbox.Backlog != 0 {
		t.Errorf("api outbox: %+v, want an empty backlog", api.Outbox)
	}
	found := false
	for _, st := range api.Streams {
		for _, g := range st.Groups {
			if st.Key == redisstream.FanoutStream && g.Name == "audit" {
				found = g.Pending == 5 && g.Lag != nil && *g.Lag == total-5
			}
		}
	}
	if !found {
		t.Errorf("api streams lack the audit group with 5 pending and lag %d: %+v", total-5, api.Streams)
	}

	// and the logs name what was published, in JSON, without ever showing a token
	logs := nova.Logs()
	for _, tok := range []string{alice.Token, bob.Token} {
		if strings.Contains(logs, tok) {
			t.Fatal("a token appears in the log")
		}
	}
	if !hasLogLine(logs, "published to stream", "conversation_id", "message_id", "seq", "messages", "instance_id") {
		t.Errorf("no JSON \"published to stream\" line with conversation_id, message_id, seq, messages, instance_id in:\n%s", logs)
	}
}

// eventuallyExplained is eventually that says, on a timeout, what was still wrong.
func eventuallyExplained(t *testing.T, within time.Duration, what string, cond func() bool, explain func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s\n%s", within, what, explain())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hasLogLine reports whether some JSON line of logs has msg and all of keys.
func hasLogLine(logs, msg string, keys ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != msg {
			continue
		}
		ok := true
		for _, k := range keys {
			if _, has := m[k]; !has {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func writeFrame(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatal(err)
	}
}

func readFrame(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

var novaMetricName = regexp.MustCompile(`nova_[a-z_]+`)

// deployedMetrics are the nova_* metric families deploy/prometheus/alerts.yml and
// deploy/grafana/nova.json query (a histogram's _bucket, _sum and _count are its family).
func deployedMetrics(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, file := range []string{"../deploy/prometheus/alerts.yml", "../deploy/grafana/nova.json"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range novaMetricName.FindAllString(string(data), -1) {
			if strings.HasSuffix(name, "_") {
				continue // a family of names in a comment, as in nova_stream_*
			}
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				name = strings.TrimSuffix(name, suffix)
			}
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) < 20 {
		t.Fatalf("found only %v in deploy/", names)
	}
	return names
}
