package websocket_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/testinfra"
	"github.com/nova-chat/nova/ports/websocket"
)

// aliceAndBobOnTwoInstances starts two instances on a private Redis and a fresh database, and
// returns alice, a client of the first, bob, one of the second, and a conversation of theirs.
func aliceAndBobOnTwoInstances(t *testing.T) (alice, bob *testinfra.Client, conv conversation.ID) {
	t.Helper()
	rds := testinfra.StartRedis(t)
	env := testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()}
	a, b := testinfra.StartInstance(t, env), testinfra.StartInstance(t, env)
	alice = testinfra.NewUser(t, a.URL)
	bob = testinfra.NewUser(t, b.URL)
	return alice, bob, alice.CreateConversation(bob.User)
}

func TestRemovedParticipantsLiveSubscriptionEnds(t *testing.T) {
	// given bob subscribed to a conversation on one instance
	alice, bob, conv := aliceAndBobOnTwoInstances(t)
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, nil)
	alice.Send(conv, "before", 1)
	if m := ws.Messages(1, 5*time.Second); m[0].Seq != 1 {
		t.Fatalf("got seq %d", m[0].Seq)
	}

	// when alice removes him through the other instance
	if status, body := alice.Do("DELETE", fmt.Sprintf("/v1/conversations/%s/participants/%s", conv, bob.User), nil); status != http.StatusNoContent {
		t.Fatalf("remove: %d %s", status, body)
	}

	// then his subscription ends at once (a membership notice on the live channel), with the
	// protocol's "unsubscribed" frame ...
	start := time.Now()
	f := ws.Next(5 * time.Second)
	if f.Type != "unsubscribed" || f.ConversationID != string(conv) || !strings.Contains(string(f.Raw), `"reason":"not_found"`) {
		t.Fatalf("after removal got %s, want {\"type\":\"unsubscribed\",...,\"reason\":\"not_found\"}", f.Raw)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the subscription ended %s after the removal, want at once", d)
	}
	// ... and later messages do not reach him
	alice.Send(conv, "after", 2)
	if f, ok := ws.TryNext(time.Second); ok {
		t.Fatalf("a removed participant still received %s", f.Raw)
	}
}

// removeDuringSubscribe makes the first subscribe of user to conv, between its membership check
// and its subscription, have remover remove user (through its own instance), and then run
// after (which may wait for the removal to be heard). Failures are reported with t.Errorf: the
// hook runs on the server's goroutine.
func removeDuringSubscribe(t *testing.T, remover *testinfra.Client, conv conversation.ID, user conversation.UserID, after func()) {
	var once sync.Once
	websocket.AfterMembershipCheck(t, func(c conversation.ID, u conversation.UserID) {
		if c != conv || u != user {
			return
		}
		once.Do(func() {
			status, body, err := remover.TryDo("DELETE", fmt.Sprintf("/v1/conversations/%s/participants/%s", conv, user), nil)
			if err != nil || status != http.StatusNoContent {
				t.Errorf("remove: %d %s %v", status, body, err)
				return
			}
			after()
		})
	})
}

// requireEnded expects conv's "unsubscribed" frame on ws within 5 s (the keep-alive re-check
// would take 20 s), and then nothing more after a new message.
func requireEnded(t *testing.T, ws *testinfra.WS, sender *testinfra.Client, conv conversation.ID) {
	t.Helper()
	f, ok := ws.TryNext(5 * time.Second)
	if !ok || f.Type != "unsubscribed" || f.ConversationID != string(conv) {
		t.Fatalf("a subscription of a removed user: got %s (frame: %v), want \"unsubscribed\" within 5 s", f.Raw, ok)
	}
	sender.Send(conv, "after", 2)
	if f, ok := ws.TryNext(time.Second); ok {
		t.Fatalf("a removed participant still received %s", f.Raw)
	}
}

func TestARemovalHeardWhileASubscribeIsUnderWayEndsIt(t *testing.T) {
	// given alice and bob subscribed to a conversation on instance b, which follows its channel
	alice, bob, conv := aliceAndBobOnTwoInstances(t)
	watcher := alice.As(bob.Base).DialWS("", "")
	watcher.Subscribe(conv, nil)
	first := bob.DialWS("", "")
	first.Subscribe(conv, nil)
	alice.Send(conv, "before", 1)
	first.Messages(1, 5*time.Second)

	// when a second connection of bob's subscribes, and after its membership check alice removes
	// him and b hears the notice (his first connection's subscription ends) before the new
	// subscription is stored
	removeDuringSubscribe(t, alice, conv, bob.User, func() {
		if f, ok := first.TryNext(5 * time.Second); !ok || f.Type != "unsubscribed" {
			t.Errorf("the removal notice was not heard: got %s", f.Raw)
		}
	})
	second := bob.DialWS("", "")
	second.Subscribe(conv, nil)

	// then the new subscription ends too, at once
	requireEnded(t, second, alice, conv)
	if m := watcher.Messages(2, 5*time.Second); m[1].Seq != 2 {
		t.Fatalf("the remaining participant got seq %d, want 2", m[1].Seq)
	}
}

func TestARemovalPublishedBeforeTheInstanceFollowedTheConversationEndsTheSubscription(t *testing.T) {
	// given bob in a conversation that no one follows on instance b
	alice, bob, conv := aliceAndBobOnTwoInstances(t)

	// when he subscribes on b, and after its membership check alice removes him: the notice goes
	// out on a channel b does not follow yet
	removeDuringSubscribe(t, alice, conv, bob.User, func() {})
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, nil)

	// then the subscription ends at once all the same
	requireEnded(t, ws, alice, conv)
}
