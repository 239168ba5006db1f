package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/client"
	"github.com/nova-chat/nova/internal/testinfra"
)

func TestAClientWhoseInstanceIsKilledMidStreamSeesEveryMessageOnceInOrder(t *testing.T) {
	// given two instances, and bob's client connected to the first
	rds := testinfra.StartRedis(t)
	env := testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()}
	a, b := testinfra.StartProcess(t, env), testinfra.StartProcess(t, env)
	alice := testinfra.NewUser(t, b.URL)
	bob := testinfra.NewUser(t, a.URL)
	conv := alice.CreateConversation(bob.User)

	c, err := client.New(client.Config{URLs: []string{a.URL, b.URL}, ClientID: uuid.NewString(),
		Token: func(context.Context) (string, error) { return bob.Token, nil }, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.SubscribeFrom(string(conv), 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	sentAt := time.Now()
	first, _ := alice.Send(conv, "warm-up", 0)
	select {
	case m := <-c.Messages():
		if m.Seq != first.Seq {
			t.Fatalf("first message seq %d, want %d", m.Seq, first.Seq)
		}
		if m.ReceivedAt.Before(sentAt) || m.ReceivedAt.After(time.Now()) {
			t.Fatalf("ReceivedAt %v is not between the send (%v) and now", m.ReceivedAt, sentAt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client got nothing")
	}

	// when alice sends 300 messages through the second instance, and the first (bob's) is
	// killed after 100 of them
	const total = 300
	go func() {
		for i := 1; i <= total; i++ {
			alice.Send(conv, fmt.Sprintf("m-%d", i), i)
			if i == 100 {
				a.Kill()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	// then bob's application sees every message once, in order, the client having moved to the
	// second instance by itself
	want := first.Seq + 1
	deadline := time.After(60 * time.Second)
	for want <= first.Seq+total {
		select {
		case m := <-c.Messages():
			if m.Seq != want {
				t.Fatalf("got seq %d, want %d (each once, in order)", m.Seq, want)
			}
			want++
		case <-deadline:
			t.Fatalf("stuck at seq %d of %d", want-1, first.Seq+total)
		}
	}
	select {
	case m := <-c.Messages():
		t.Fatalf("an extra message: seq %d", m.Seq)
	case <-time.After(500 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestSendIsSafeToRetryAndReportsWhatRetryingCannotChange(t *testing.T) {
	rds := testinfra.StartRedis(t)
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()})
	alice := testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation()
	// the first URL answers nothing (a dead instance): the send moves on to the live one
	c, err := client.New(client.Config{URLs: []string{"http://127.0.0.1:1", inst.URL}, ClientID: uuid.NewString(),
		Token: func(context.Context) (string, error) { return alice.Token, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Send(ctx, string(conv), map[string]string{"text": "hi"})
	if err != nil || m.Seq != 1 || m.ClientMsgID == "" {
		t.Fatalf("send: %+v, %v", m, err)
	}
	// and a conversation alice is not in is a typed 404, at once
	_, err = c.Send(ctx, uuid.NewString(), "x")
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Code != "not_found" {
		t.Fatalf("send to a stranger's conversation: %v, want a not_found APIError", err)
	}
}

func TestAutomaticAcksLetTheNextRunResumeAfterWhatWasDelivered(t *testing.T) {
	rds := testinfra.StartRedis(t)
	inst := testinfra.StartInstance(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL()})
	alice, bob := testinfra.NewUser(t, inst.URL), testinfra.NewUser(t, inst.URL)
	conv := alice.CreateConversation(bob.User)
	for i := 1; i <= 8; i++ {
		alice.Send(conv, fmt.Sprintf("m-%d", i), i)
	}
	installation := uuid.NewString()
	newClient := func() *client.Client {
		c, err := client.New(client.Config{URLs: []string{inst.URL}, ClientID: installation, AckEvery: 50 * time.Millisecond,
			Token: func(context.Context) (string, error) { return bob.Token, nil }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	take := func(c *client.Client, n int) []int64 {
		var seqs []int64
		for len(seqs) < n {
			select {
			case m := <-c.Messages():
				seqs = append(seqs, m.Seq)
			case <-time.After(10 * time.Second):
				t.Fatalf("got %v, want %d messages", seqs, n)
			}
		}
		return seqs
	}

	// given a first run of bob's app that took the first 5 messages (acked automatically)
	first := newClient()
	first.SubscribeFrom(string(conv), 0)
	ctx, stop := context.WithCancel(context.Background())
	go func() { _ = first.Run(ctx) }()
	if got := take(first, 5); got[0] != 1 || got[4] != 5 {
		t.Fatalf("first run: %v", got)
	}
	testinfra.Eventually(t, 10*time.Second, "Nova holds bob's ack of seq 5", func() bool {
		status, body := bob.Do("GET", "/v1/unread?client_id="+installation, nil)
		var page struct {
			Conversations []struct {
				ConversationID string `json:"conversation_id"`
				AckedSeq       int64  `json:"acked_seq"`
			} `json:"conversations"`
		}
		if status != 200 || json.Unmarshal(body, &page) != nil {
			return false
		}
		for _, c := range page.Conversations {
			if c.ConversationID == string(conv) {
				return c.AckedSeq == 5
			}
		}
		return false
	})
	stop()

	// when the app starts again and subscribes from the cursor Nova keeps for the installation
	second := newClient()
	second.Subscribe(string(conv))
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	go func() { _ = second.Run(ctx2) }()

	// then it resumes after what was delivered: 6, 7, 8 (what the first run had read ahead but
	// not handed over comes again, and nothing handed over does)
	if got := take(second, 3); got[0] != 6 || got[2] != 8 {
		t.Fatalf("second run: %v, want [6 7 8]", got)
	}
}
