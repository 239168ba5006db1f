package websocket_test

import (
	"fmt"
	"net/http"
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

	// then, by the next keep-alive round (20 s), his subscription ends with not_found ...
	f := ws.Next(30 * time.Second)
	if f.Type != "error" || f.Code != "not_found" {
		t.Fatalf("after removal got %s, want an error frame not_found", f.Raw)
	}
	// ... and later messages do not reach him
	alice.Send(conv, "after", 2)
	if f, ok := ws.TryNext(time.Second); ok {
		t.Fatalf("a removed participant still received %s", f.Raw)
	}
}
