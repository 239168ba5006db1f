package systemtest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nova-chat/nova/internal/testinfra"
)

// Interest-based delivery (DESIGN.md decision 6): an instance hears only the conversations its
// own clients follow. The timer re-check is switched off here (1 h), so only the hand-over on
// subscribe and the seq checks can make these tests pass.

func TestInstanceWithoutSubscribersHearsNoMessageTraffic(t *testing.T) {
	onEachTopology(t, testInstanceWithoutSubscribersHearsNoMessageTraffic)
}

func testInstanceWithoutSubscribersHearsNoMessageTraffic(t *testing.T, top topology) {
	a, b, rds := twoProcessesOn(t, top, map[string]string{"NOVA_LIVE_RECHECK": "1h"})
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL)
	conv := alice.CreateConversation(bob.User)

	// given bob follows the conversation on B, and nobody follows anything on A
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, nil)

	// when alice sends 50 messages through A
	const n = 50
	for i := 1; i <= n; i++ {
		alice.Send(conv, fmt.Sprint(i), i)
	}

	// then bob gets them all, B heard each once, and A heard none
	expectSeqs(t, ws.Messages(n, 10*time.Second), 1)
	onA, onB := scrapeMetrics(t, a.AdminURL), scrapeMetrics(t, b.AdminURL)
	if v, ok := onA.get("nova_live_messages_received_total"); !ok || v != 0 {
		t.Fatalf("instance A without subscribers heard %v live messages (metric present: %v)", v, ok)
	}
	if v, _ := onA.get("nova_live_channels"); v != 0 {
		t.Fatalf("instance A follows %v conversations", v)
	}
	if v, _ := onB.get("nova_live_messages_received_total"); v != n {
		t.Fatalf("instance B heard %v live messages, want %d", v, n)
	}
	// and Redis itself sends the conversation's live channel to one connection only (on a
	// cluster: one over every node)
	if got := rds.ShardSubscribers(t, rds.LiveChannel(string(conv))); got != 1 {
		t.Fatalf("live channel has %d subscribers, want 1 (instance B)", got)
	}
}

func TestFirstSubscriberOnAnInstanceGetsEverythingWhileSendsRunAtFullSpeed(t *testing.T) {
	onEachTopology(t, testFirstSubscriberOnAnInstanceGetsEverythingWhileSendsRunAtFullSpeed)
}

func testFirstSubscriberOnAnInstanceGetsEverythingWhileSendsRunAtFullSpeed(t *testing.T, top topology) {
	a, b, _ := twoProcessesOn(t, top, map[string]string{"NOVA_LIVE_RECHECK": "1h"})
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL)

	// for several conversations in turn: alice sends 300 messages as fast as she can through A,
	// and bob, the first subscriber of that conversation on B, subscribes from 0 in the middle
	for round := range 3 {
		conv := alice.CreateConversation(bob.User)
		const total = 300
		done := sendAtFullSpeed(alice, conv, total)
		time.Sleep(time.Duration(20*(round+1)) * time.Millisecond)
		ws := bob.DialWS("", "")
		ws.Subscribe(conv, ptr(0))

		// then he gets 1..300 once each, in order, across the hand-over to live
		expectSeqs(t, ws.Messages(total, 30*time.Second), 1)
		<-done
		expectSilence(t, ws, 200*time.Millisecond)
	}
}
