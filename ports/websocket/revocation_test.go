package websocket_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nova-chat/nova/internal/testinfra"
)

func TestRemovedParticipantsLiveSubscriptionEnds(t *testing.T) {
	// given bob subscribed to a conversation on one instance
	rds := testinfra.StartRedis(t)
	env := testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()}
	a, b := testinfra.StartInstance(t, env), testinfra.StartInstance(t, env)
	alice := testinfra.NewUser(t, a.URL)
	bob := testinfra.NewUser(t, b.URL)
	conv := alice.CreateConversation(bob.User)
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
