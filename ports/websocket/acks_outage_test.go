package websocket_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/websocket"
)

// syncBuffer is a log destination the test reads while the instance writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestConnectionsThatLeaveTheirAcksToTheHotCursorsAreLoggedOnceAnOutage(t *testing.T) {
	// given bob with two connections that were handed three messages, on an instance that
	// reaches Postgres through a proxy the test can cut, and gives an ended connection's unstored
	// acks up after 2 s instead of a minute
	websocket.FinalFlushFor(t, 2*time.Second)
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	rds := testinfra.StartRedis(t)
	viaProxy, proxy := testinfra.ProxiedDatabaseURL(t, testinfra.NewDatabase(t))
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: viaProxy, RedisURL: rds.URL(), Log: logs})
	bob, conv, first := followedByBob(t, inst, 3)
	second := bob.DialWS("", "")
	second.Subscribe(conv, ptr(0))
	requireSeqs(t, second.Messages(3, 5*time.Second), 1)

	// when both acknowledge 3, Postgres goes away, and both connections end
	for i, ws := range []*testinfra.WS{first, second} {
		ws.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 3})
		expectPong(t, ws, fmt.Sprintf("after-ack-%d", i))
	}
	proxy.Cut()
	for _, ws := range []*testinfra.WS{first, second} {
		if err := ws.Conn.Close(cws.StatusNormalClosure, "bye"); err != nil {
			t.Fatal(err)
		}
	}

	// then both give their acks up to the hot cursors, and the warning is written once
	const warning = `level=WARN msg="acknowledged cursors not stored durably; left to the hot cursors"`
	testinfra.Eventually(t, 20*time.Second, "the acks are left to the hot cursors", func() bool {
		return strings.Contains(logs.String(), warning)
	})
	time.Sleep(3 * time.Second) // the other connection's give-up, a moment later at most

	// and when Postgres is back, the first durable flush ends the outage with both counted
	proxy.Restore()
	third := bob.DialWS("", "")
	third.Subscribe(conv, ptr(0))
	requireSeqs(t, third.Messages(3, 5*time.Second), 1)
	third.Write(map[string]any{"type": "ack", "conversation_id": conv, "seq": 3})
	ended := regexp.MustCompile(`(?m)msg="connections that ended during the outage left their last acks to the hot cursors" .*failures=2$`)
	testinfra.Eventually(t, 15*time.Second, "the outage's end is logged with both connections", func() bool {
		return ended.MatchString(logs.String())
	})
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Fatalf("the warning was written %d times for two connections in one outage, want once:\n%s", n, logs.String())
	}
}
