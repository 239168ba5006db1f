package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

func TestCentrifugoConfig(t *testing.T) {
	data, err := centrifugoConfig(centrifugoParams{Name: "c1", Port: 18000, RedisAddr: "127.0.0.1:6390", APIKey: "k3y", HMACSecret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTPServer struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		} `json:"http_server"`
		HTTPAPI struct {
			Key string `json:"key"`
		} `json:"http_api"`
		Client struct {
			Token struct {
				HMACSecretKey string `json:"hmac_secret_key"`
			} `json:"token"`
		} `json:"client"`
		Engine struct {
			Type  string `json:"type"`
			Redis struct {
				Address []string `json:"address"`
				DB      int      `json:"db"`
				Prefix  string   `json:"prefix"`
			} `json:"redis"`
		} `json:"engine"`
		Health struct {
			Enabled bool `json:"enabled"`
		} `json:"health"`
		Channel struct {
			Namespaces []struct {
				Name                    string `json:"name"`
				HistorySize             int    `json:"history_size"`
				HistoryTTL              string `json:"history_ttl"`
				ForceRecovery           bool   `json:"force_recovery"`
				ForcePositioning        bool   `json:"force_positioning"`
				AllowSubscribeForClient bool   `json:"allow_subscribe_for_client"`
			} `json:"namespaces"`
		} `json:"channel"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPServer.Address != "127.0.0.1" || cfg.HTTPServer.Port != 18000 || cfg.HTTPAPI.Key != "k3y" ||
		cfg.Client.Token.HMACSecretKey != "s3cret" || !cfg.Health.Enabled {
		t.Errorf("server/api/token settings: %s", data)
	}
	if cfg.Engine.Type != "redis" || len(cfg.Engine.Redis.Address) != 1 || cfg.Engine.Redis.Address[0] != "redis://127.0.0.1:6390" ||
		cfg.Engine.Redis.DB != centrifugoRedisDB || cfg.Engine.Redis.Prefix != centrifugoPrefix {
		t.Errorf("engine: %+v", cfg.Engine)
	}
	if len(cfg.Channel.Namespaces) != 1 {
		t.Fatalf("namespaces: %s", data)
	}
	ns := cfg.Channel.Namespaces[0]
	if ns.Name != centrifugoNamespace || ns.HistorySize != 1000 || ns.HistoryTTL != "300s" || !ns.ForceRecovery ||
		!ns.ForcePositioning || !ns.AllowSubscribeForClient {
		t.Errorf("namespace: %+v", ns)
	}
	if !strings.HasPrefix(cfChannel(7), centrifugoNamespace+":") {
		t.Errorf("channel %q is not in the namespace", cfChannel(7))
	}

	// With the pinned binary at hand, Centrifugo itself checks the key names (no network).
	bin, err := centrifugoBin()
	if err != nil || !centrifugoInstalled(context.Background(), bin) {
		t.Log("centrifugo v" + centrifugoVersion + " not installed in .data/bin: skipping checkconfig --strict")
		return
	}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "checkconfig", "--strict", "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("checkconfig --strict: %v: %s", err, out)
	}
}

func TestCentrifugoProtocolFrames(t *testing.T) {
	var connect struct {
		ID      uint32 `json:"id"`
		Connect struct {
			Token string `json:"token"`
			Name  string `json:"name"`
		} `json:"connect"`
	}
	if err := json.Unmarshal(cfCommandConnect(1, `tok"en`, "novabench"), &connect); err != nil {
		t.Fatal(err)
	}
	if connect.ID != 1 || connect.Connect.Token != `tok"en` || connect.Connect.Name != "novabench" {
		t.Errorf("connect %+v", connect)
	}
	var sub struct {
		ID        uint32 `json:"id"`
		Subscribe struct {
			Channel string `json:"channel"`
		} `json:"subscribe"`
	}
	if err := json.Unmarshal(cfCommandSubscribe(42, "novabench:c3"), &sub); err != nil {
		t.Fatal(err)
	}
	if sub.ID != 42 || sub.Subscribe.Channel != "novabench:c3" {
		t.Errorf("subscribe %+v", sub)
	}

	frame := []byte(`{"id":1,"connect":{"client":"abc","version":"6.9.1","ping":25,"pong":true}}
{"id":2,"subscribe":{"recoverable":true,"epoch":"xyz","offset":17,"positioned":true}}
{}
{"push":{"channel":"novabench:c3","pub":{"data":{"t":1700000000000000000,"k":5,"text":"x"},"offset":18}}}
{"id":3,"error":{"code":103,"message":"permission denied"}}
{"push":{"channel":"novabench:c3","unsubscribe":{"code":2500,"reason":"insufficient state"}}}
`)
	rs, err := cfDecode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 6 {
		t.Fatalf("%d replies", len(rs))
	}
	if rs[0].Connect == nil || !rs[0].Connect.Pong || rs[0].Connect.Ping != 25 {
		t.Errorf("connect reply %+v", rs[0])
	}
	if rs[1].ID != 2 || rs[1].Subscribe == nil || rs[1].Subscribe.Offset != 17 || !rs[1].Subscribe.Positioned {
		t.Errorf("subscribe reply %+v", rs[1])
	}
	if !rs[2].isPing() || rs[0].isPing() || rs[3].isPing() {
		t.Error("ping detection")
	}
	p := rs[3].Push
	var body latencyBody
	if p == nil || p.Pub == nil || p.Channel != "novabench:c3" || p.Pub.Offset != 18 || json.Unmarshal(p.Pub.Data, &body) != nil ||
		body.K != 5 || body.T != 1700000000000000000 {
		t.Errorf("push %+v body %+v", p, body)
	}
	if rs[4].Error == nil || rs[4].Error.Code != 103 {
		t.Errorf("error reply %+v", rs[4])
	}
	if rs[5].Push == nil || rs[5].Push.Unsubscribe == nil || rs[5].Push.Unsubscribe.Code != 2500 {
		t.Errorf("unsubscribe push %+v", rs[5])
	}
	if _, err := cfDecode([]byte("{\"id\":1}\nnot json")); err == nil {
		t.Error("garbage decoded")
	}

	// The publish command carries the probe exactly like Nova's sends.
	at := time.Unix(0, 1234567890)
	var pub struct {
		Channel string      `json:"channel"`
		Data    latencyBody `json:"data"`
	}
	if err := json.Unmarshal(publishBody("novabench:c1", at, 99), &pub); err != nil || pub.Channel != "novabench:c1" || pub.Data.K != 99 || pub.Data.T != 1234567890 {
		t.Errorf("publish body %+v %v", pub, err)
	}
}

func TestCentrifugoAPIReplyAndToken(t *testing.T) {
	var res struct {
		Offset uint64 `json:"offset"`
	}
	if err := decodeAPIReply(200, []byte(`{"result":{"offset":3,"epoch":"e"}}`), &res); err != nil || res.Offset != 3 {
		t.Errorf("result: %v %+v", err, res)
	}
	if err := decodeAPIReply(200, []byte(`{"error":{"code":102,"message":"unknown channel"}}`), nil); err == nil || !strings.Contains(err.Error(), "unknown channel") {
		t.Errorf("error reply: %v", err)
	}
	if err := decodeAPIReply(401, []byte(`Unauthorized`), nil); err == nil {
		t.Error("401 accepted")
	}
	tok, err := centrifugoToken("secret", "u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("secret"), nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatal(err)
	}
	if sub, _ := parsed.Claims.GetSubject(); sub != "u1" {
		t.Errorf("sub %q", sub)
	}
	out := "/x/centrifugo: go1.26.8\n\tpath\tgithub.com/centrifugal/centrifugo/v6\n\tmod\tgithub.com/centrifugal/centrifugo/v6\tv6.9.1\th1:abc=\n\tdep\tx\tv1\n"
	if !moduleVersionIs(out, centrifugoModule, "v6.9.1") || moduleVersionIs(out, centrifugoModule, "v6.9.0") {
		t.Error("moduleVersionIs")
	}
}

func TestLoadShapes(t *testing.T) {
	for _, s := range []string{"per-conv", "one-conn", "per-conv+senders=16", "one-conn+senders=1+idle=1000"} {
		sh, err := parseShape(s)
		if err != nil || sh.String() != s {
			t.Errorf("parseShape(%q) = %+v (%q), %v", s, sh, sh.String(), err)
		}
	}
	if sh, _ := parseShape("senders=4"); !sh.ConnPerConversation || sh.Senders != 4 {
		t.Errorf("default connection layout: %+v", sh)
	}
	for _, bad := range []string{"", "two-conn", "senders=-1", "senders=x", "idle"} {
		if _, err := parseShape(bad); err == nil {
			t.Errorf("parseShape(%q) accepted", bad)
		}
	}
	shapes, err := parseShapes("per-conv, one-conn,")
	if err != nil || len(shapes) != 2 || shapes[0] != novaLatencyShape || shapes[1].ConnPerConversation {
		t.Errorf("parseShapes: %+v %v", shapes, err)
	}
	if novaLatencyShape.String() != "per-conv" {
		t.Errorf("Nova's shape is %q", novaLatencyShape)
	}
}

func TestPaceSends(t *testing.T) {
	for _, senders := range []int{0, 1, 4} {
		const total, rate = 60, 1000
		var calls [total]atomic.Int32
		var early atomic.Int32
		var busy [4]atomic.Bool  // senders > 0: whether sender k%senders is in a send
		var last [4]atomic.Int32 // and the last k it sent, +1
		start := time.Now().Add(5 * time.Millisecond)
		paceSends(context.Background(), senders, total, rate, start, func(k int, intended time.Time) {
			if want := start.Add(time.Duration(k) * time.Millisecond); !intended.Equal(want) {
				t.Errorf("senders=%d: send %d intended %v, want %v", senders, k, intended, want)
			}
			if time.Now().Before(intended) {
				early.Add(1)
			}
			if senders > 0 {
				g := k % senders
				if busy[g].Swap(true) {
					t.Errorf("senders=%d: sender %d ran two sends at once", senders, g)
				}
				if prev := last[g].Swap(int32(k + 1)); int(prev) > k {
					t.Errorf("senders=%d: sender %d sent %d after %d", senders, g, k, prev-1)
				}
				time.Sleep(100 * time.Microsecond)
				busy[g].Store(false)
			}
			calls[k].Add(1)
		})
		for k := range calls {
			if n := calls[k].Load(); n != 1 {
				t.Errorf("senders=%d: send %d called %d times", senders, k, n)
			}
		}
		if early.Load() > 0 {
			t.Errorf("senders=%d: %d sends before their time", senders, early.Load())
		}
	}
}

// A fake Centrifugo on loopback: the client connects and subscribes in one pipelined
// message, answers a ping, counts publications and out-of-order offsets.
func TestCentrifugoClientAgainstFakeServer(t *testing.T) {
	pong := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/connection/websocket" {
			http.NotFound(w, r)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		var replies []string
		for _, l := range lines {
			var cmd struct {
				ID        uint32          `json:"id"`
				Connect   json.RawMessage `json:"connect"`
				Subscribe *struct {
					Channel string `json:"channel"`
				} `json:"subscribe"`
			}
			if json.Unmarshal(l, &cmd) != nil {
				return
			}
			switch {
			case cmd.Connect != nil:
				replies = append(replies, fmt.Sprintf(`{"id":%d,"connect":{"client":"x","ping":25,"pong":true}}`, cmd.ID))
			case cmd.Subscribe != nil:
				replies = append(replies, fmt.Sprintf(`{"id":%d,"subscribe":{"recoverable":true,"epoch":"e","offset":10,"positioned":true}}`, cmd.ID))
			}
		}
		_ = c.Write(ctx, websocket.MessageText, []byte(strings.Join(replies, "\n")))
		_ = c.Write(ctx, websocket.MessageText, []byte(`{}`))
		if _, data, err := c.Read(ctx); err != nil || string(data) != "{}" {
			return
		}
		pong <- struct{}{}
		now := time.Now().UnixNano()
		pubs := []string{ // offsets 11, 12, then 14 (13 lost): one order violation
			fmt.Sprintf(`{"push":{"channel":"novabench:c0","pub":{"data":{"t":%d,"k":0},"offset":11}}}`, now),
			fmt.Sprintf(`{"push":{"channel":"novabench:c1","pub":{"data":{"t":%d,"k":1},"offset":11}}}`, now),
			fmt.Sprintf(`{"push":{"channel":"novabench:c0","pub":{"data":{"t":%d,"k":2},"offset":12}}}`, now),
		}
		_ = c.Write(ctx, websocket.MessageText, []byte(strings.Join(pubs, "\n")))
		_ = c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"push":{"channel":"novabench:c0","pub":{"data":{"t":%d,"k":3},"offset":14}}}`, now))
		<-ctx.Done()
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	channels := []string{"novabench:c0", "novabench:c1"}
	s, err := cfDialSubscribe(ctx, srv.URL, "tok", channels)
	if err != nil {
		t.Fatal(err)
	}
	defer s.conn.CloseNow()
	if !s.pong || s.offsets["novabench:c0"] != 10 || s.offsets["novabench:c1"] != 10 {
		t.Fatalf("subscriber %+v", s)
	}
	lr := &latencyRun{rate: 1000, answeredAt: make([]atomic.Int64, 10), arrivedAt: make([]atomic.Int64, 10), delivery: newHist(), http: newHist(),
		secCount: make([]atomic.Int64, 1), secSumUs: make([]atomic.Int64, 1), secMaxUs: make([]atomic.Int64, 1)}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = lr.readCentrifugo(rctx, s, map[string]int{"novabench:c0": 0, "novabench:c1": 1})
	}()
	select {
	case <-pong:
	case <-ctx.Done():
		t.Fatal("no pong")
	}
	for lr.nRecv.Load() < 4 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	_ = s.conn.CloseNow()
	wg.Wait()
	if lr.nRecv.Load() != 4 || lr.nOrder.Load() != 1 || lr.delivery.Summary(false).Count != 4 {
		t.Errorf("received %d, order violations %d, recorded %d", lr.nRecv.Load(), lr.nOrder.Load(), lr.delivery.Summary(false).Count)
	}
}

func TestCentrifugoReport(t *testing.T) {
	h := func(ms float64) Summary { return Summary{Count: 100, P50: ms, P90: 2 * ms, P99: 4 * ms, Max: 8 * ms} }
	nova := &LatencyResult{Shape: "per-conv", ShapeSpec: novaLatencyShape, OfferedRate: 1000, Conversations: 100, Delivery: h(2), DeliveredRate: 1000,
		CPU: CPUUse{"nova": 0.4, "postgres (bench db)": 0.3, "redis": 0.1}}
	cf := &CentrifugoRun{Shape: "per-conv", ShapeSpec: novaLatencyShape, OfferedRate: 1000, Conversations: 100, Delivery: h(1),
		DeliveredRate: 1000, CPU: CPUUse{"centrifugo": 0.3, "redis": 0.1}}
	cf.CPUPerMsgMs = cpuPerMessageMs(cf.CPU, centrifugoServerGroups, cf.DeliveredRate)
	other := &CentrifugoRun{Shape: "one-conn", ShapeSpec: loadShape{}, OfferedRate: 1000, Conversations: 100, Delivery: h(1), DeliveredRate: 1000}
	b := &Bench{res: &Results{Latency: nova, Centrifugo: &CentrifugoResult{Version: centrifugoVersion, Install: "already installed",
		Runs: []*CentrifugoRun{cf, other}}}}
	if cf.CPUPerMsgMs < 0.399 || cf.CPUPerMsgMs > 0.401 {
		t.Fatalf("cpu per message %v", cf.CPUPerMsgMs)
	}
	rows := b.shapeRows()
	if len(rows) != 3 { // p50, p99, CPU of the shape Nova ran; none for one-conn
		t.Fatalf("comparison rows: %+v", rows)
	}
	if rows[0].Ratio != "2.00x" || rows[0].Verdict != pass || rows[1].Ratio != "2.00x" || rows[2].Ratio != "2.00x" || rows[2].Verdict != miss {
		t.Errorf("comparison rows: %+v", rows)
	}
	sec := b.centrifugoSection()
	if !strings.Contains(sec, "Centrifugo (same run)") || !strings.Contains(sec, "Nova 2.00 ms") || !strings.Contains(sec, "one-conn, 1000/s") {
		t.Errorf("section:\n%s", sec)
	}
	if len(b.res.Centrifugo.Table) == 0 || len(b.res.centrifugoErrors()) != 0 {
		t.Error("section table / errors")
	}

	b.res.Centrifugo = &CentrifugoResult{Version: centrifugoVersion, NotRun: "installation failed: go install: no network"}
	if sec := b.centrifugoSection(); !strings.Contains(sec, "NOT RUN") || !strings.Contains(sec, "no network") {
		t.Errorf("not-run section: %q", sec)
	}
	if rows := b.shapeRows(); len(rows) != 1 || rows[0].Measured != "NOT MEASURED" {
		t.Errorf("not-run rows: %+v", rows)
	}
	if b.res.failed() {
		t.Error("a failed installation fails the run")
	}
	b.res.Centrifugo = &CentrifugoResult{Version: centrifugoVersion, Error: "start nodes: boom"}
	if !b.res.failed() {
		t.Error("nodes that would not start do not fail the run")
	}
}

// The rows read from the nodes' metrics show only when the scrape worked: an unscraped count
// must not read as 0.
func TestLatencyRowsHideWhatTheScrapeMissed(t *testing.T) {
	h := Summary{Count: 100, P50: 1, P90: 2, P99: 4, Max: 8}
	res := &LatencyResult{Shape: "per-conv", ShapeSpec: novaLatencyShape, OfferedRate: 1000, Conversations: 100, Delivery: h,
		HTTP: h, DeliveredRate: 1000, SentOK: 1000}
	b := &Bench{res: &Results{Latency: res}}
	has := func(label string) bool {
		for _, r := range b.latencyRows() {
			if strings.Contains(r.Figure, label) {
				return true
			}
		}
		return false
	}
	if has("writes the locked way") || has("inside the sender node") || has("committed in batches") || has("a send transaction's round trip") {
		t.Error("rows of an unscraped run are shown")
	}
	locked := int64(0)
	res.LockedWrites, res.ServerSendMeanMs, res.SendBatches, res.BatchedPosts, res.SendTxMeanMs = &locked, 0.5, 2, 6, 0.3
	if !has("writes the locked way") || !has("inside the sender node") || !has("committed in batches") || !has("a send transaction's round trip") {
		t.Error("rows of a scraped run are missing")
	}
}

// afterAnswer pairs each measured send's answer with its arrival: warm-up and unpaired sends
// are left out, an arrival before the answer is counted apart.
func TestAfterAnswer(t *testing.T) {
	run := newLatencyRun(4, time.Second, time.Second) // k 0..3 warm-up, 4..7 measured
	base := time.Unix(1000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	ctx := context.Background()
	run.sent(ctx, 0, at(0), at(1), nil) // warm-up
	run.delivered(latencyBody{K: 0, T: at(0).UnixNano()}, at(50))
	run.sent(ctx, 4, at(0), at(1), nil)
	run.delivered(latencyBody{K: 4, T: at(0).UnixNano()}, at(3)) // 2 ms after its answer
	run.sent(ctx, 5, at(0), at(10), nil)
	run.delivered(latencyBody{K: 5, T: at(0).UnixNano()}, at(4)) // before its answer
	run.sent(ctx, 6, at(0), at(1), nil)                          // never delivered
	after, before := run.afterAnswer()
	s := after.Summary(false)
	if s.Count != 1 || s.P50 < 1.99 || s.P50 > 2.01 || before != 1 {
		t.Errorf("after %+v, before %d", s, before)
	}
}

// centrifugoInstalled takes a binary for the pinned build by what `centrifugo version` prints
// ("Centrifugo v6.9.1 (Go version: ...)"), so a wrapper script that execs it (to set its
// environment for an experiment) passes too, and another version does not.
func TestCentrifugoInstalledReadsTheVersionItPrints(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		prints string
		want   bool
	}{
		{"Centrifugo v" + centrifugoVersion + " (Go version: go1.26.8)", true},
		{"Centrifugo v6.9.10 (Go version: go1.26.8)", false},
		{"Centrifugo v6.8.1 (Go version: go1.26.8)", false},
	} {
		bin := filepath.Join(dir, "centrifugo")
		script := "#!/bin/sh\necho '" + c.prints + "'\n"
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := centrifugoInstalled(context.Background(), bin); got != c.want {
			t.Errorf("printing %q: installed = %v, want %v", c.prints, got, c.want)
		}
	}
}
