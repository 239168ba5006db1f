package systemtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
)

// chromium is Debian's chromium package, which `make test` installs (scripts/services.sh
// ensure-test-tools); NOVA_CHROMIUM may name another binary.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("NOVA_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s not found: run `make test`, which installs Debian's chromium package "+
			"(or: apt-get update && apt-get install -y chromium)", path)
	}
	return path
}

// headless starts a private headless Chromium and returns a tab's context.
func headless(t *testing.T) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// consoleErrors records what the page reports as errors: console.error calls, uncaught
// exceptions, and browser log entries at error level (failed loads, CSP violations).
type consoleErrors struct {
	mu   sync.Mutex
	list []string
}

func (c *consoleErrors) listen(t *testing.T, ctx context.Context) {
	t.Helper()
	err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == "error" || e.Type == "assert" {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
			}
		case *runtime.EventExceptionThrown:
			msg = "exception: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				msg = "log (" + string(e.Entry.Source) + "): " + e.Entry.Text + " " + e.Entry.URL
			}
		}
		if msg != "" {
			c.mu.Lock()
			c.list = append(c.list, msg)
			c.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
}

func (c *consoleErrors) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.list...)
}

func TestAdminDashboardInHeadlessChromium(t *testing.T) {
	ctx := context.Background()
	browser := headless(t) // fails at once, with what to do, when Chromium is missing
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()

	// given an instance that died holding 6 fan-out entries of the messaging-service group
	// (kill -9 leaves exactly this: delivered, never acknowledged)
	must(t, rdb.XGroupCreateMkStream(ctx, redisstream.FanoutStream, "messaging-service", "0").Err())
	for i := 1; i <= 6; i++ {
		must(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: redisstream.FanoutStream, Values: map[string]any{
			"_watermill_message_uuid": fmt.Sprintf("lost-%d", i), "conversation_id": "lost",
			"stream_key": redisstream.ConversationStream("lost"), "entry_id": fmt.Sprintf("%d-0", i), "payload": "{}"}}).Err())
	}
	must(t, rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "messaging-service", Consumer: "crashed-instance",
		Streams: []string{redisstream.FanoutStream, ">"}, Count: 6}).Err())

	// and a running instance (which would take them over only after 10 minutes) with traffic
	nova := testinfra.StartProcess(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL(),
		Settings: map[string]string{"NOVA_CLAIM_IDLE": "10m", "NOVA_INSTANCE_ID": "nova-under-test"}})
	alice := testinfra.NewUser(t, nova.URL)
	bob := testinfra.NewUser(t, nova.URL)
	conv := alice.CreateConversation(bob.User)
	bob.DialWS("", "").Subscribe(conv, nil)
	stopTraffic := make(chan struct{})
	trafficDone := make(chan struct{})
	go func() { // a few messages a second while the page is open, so its charts have something to draw
		defer close(trafficDone)
		for i := 1; ; i++ {
			select {
			case <-stopTraffic:
				return
			case <-time.After(150 * time.Millisecond):
			}
			alice.Send(conv, fmt.Sprintf("m%d", i), map[string]any{"text": fmt.Sprintf("hello %d", i)})
		}
	}()
	var stopOnce sync.Once
	endTraffic := func() { stopOnce.Do(func() { close(stopTraffic); <-trafficDone }) }
	defer endTraffic()

	// when an operator opens /admin
	var errs consoleErrors
	errs.listen(t, browser)
	page, cancel := context.WithTimeout(browser, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(page, chromedp.Navigate(nova.AdminURL+"/admin")); err != nil {
		t.Fatalf("open %s/admin: %v", nova.AdminURL, err)
	}

	// then it shows the messaging-service group with the pending count Redis has
	pendingCell := fmt.Sprintf(`tr[data-stream=%q][data-group="messaging-service"] td[data-field="pending"]`, redisstream.FanoutStream)
	if err := chromedp.Do(page, chromedp.WaitVisible(pendingCell)); err != nil {
		t.Fatalf("the page never showed the messaging-service group: %v (console: %v)", err, errs.all())
	}
	// (a few refreshes, so that the rate and latency charts have points)
	if err := chromedp.Do(page, chromedp.Sleep(7*time.Second)); err != nil {
		t.Fatal(err)
	}
	// once the traffic stops, the running instance acknowledges what it holds (it handles entries
	// in batches, so while sends go on some of its own are pending too) and only the crashed
	// instance's 6 stay; the page shows what Redis says at its next refreshes
	endTraffic()
	var shown string
	var want int64
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for {
		if shown, err = chromedp.Run(page, chromedp.Text(pendingCell)); err != nil {
			t.Fatal(err)
		}
		want = pendingOf(t, rdb, "messaging-service")
		if (strings.TrimSpace(shown) == fmt.Sprint(want) && want == 6) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if strings.TrimSpace(shown) != fmt.Sprint(want) || want != 6 {
		t.Errorf("the page shows %q pending for messaging-service; XPENDING says %d (want 6)", shown, want)
	}
	consumers, err := chromedp.Run(page, chromedp.Text(`tr[data-group="messaging-service"] td[data-field="consumers"]`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(consumers) != "2" { // the crashed instance and this one
		t.Errorf("the page shows %q consumers for messaging-service, want 2", consumers)
	}
	instance, err := chromedp.Run(page, chromedp.Text("#instance"))
	if err != nil {
		t.Fatal(err)
	}
	if instance != "nova-under-test" {
		t.Errorf("the page names instance %q, want nova-under-test", instance)
	}
	relayed, err := chromedp.Run(page, chromedp.Evaluate[string](
		`[...document.querySelectorAll("#counters tr")].find(r => r.cells[0].textContent === "relayed").cells[1].textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if relayed == "0" || relayed == "" {
		t.Errorf("the page shows %q messages relayed while messages flow", relayed)
	}

	// and a screenshot is kept for people to look at
	png, err := chromedp.Run(page, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "artifacts", "test") // the repository's artifacts/, as before this folder existed
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "admin-dashboard.png"), png, 0o644))

	// and nothing went wrong inside the page
	if list := errs.all(); len(list) > 0 {
		t.Errorf("console errors on /admin:\n%s", strings.Join(list, "\n"))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
