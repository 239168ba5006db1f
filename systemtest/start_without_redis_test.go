package systemtest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/internal/testinfra"
)

func TestAnInstanceStartedWhileRedisIsDownWorksOnceRedisIsUp(t *testing.T) {
	// given Redis is down when the instance starts, and comes up 6 s later
	rds := testinfra.StartRedis(t)
	rds.Stop()
	started := rds.StartAfter(6 * time.Second)
	redisUp := make(chan time.Time, 1)
	go func() {
		if err := <-started; err != nil {
			t.Error(err)
		}
		redisUp <- time.Now()
	}()
	nova := testinfra.StartProcess(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()})
	// (the instance is ready, consumer groups included, within 5 s of Redis: the router's
	// attempts are not stuck in a failed start's close timeout)
	if after := time.Since(<-redisUp); after > 5*time.Second {
		t.Errorf("ready %v after Redis came up, want within 5 s", after.Round(100*time.Millisecond))
	}

	// when a message is sent to a subscribed conversation
	alice, bob := testinfra.NewUser(t, nova.URL), testinfra.NewUser(t, nova.URL)
	conv := alice.CreateConversation(bob.User)
	ws := bob.DialWS("", "")
	ws.Subscribe(conv, nil)
	msg, _ := alice.Send(conv, "after-start", "hello")

	// then it reaches its stream and the subscriber, as if Redis had been there from the start
	waitForStream(t, rds.Client(), redisstream.ConversationStream(string(conv)), 1)
	expectSeqs(t, ws.Messages(1, 10*time.Second), msg.Seq)
	// and no background part gave up meanwhile
	if logs := nova.Logs(); strings.Contains(logs, "background work stopped") {
		t.Fatalf("a background part stopped:\n%s", logs)
	}
}
