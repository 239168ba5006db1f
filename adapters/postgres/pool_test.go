package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/domain/conversation"
)

func TestATransactionFrozenBetweenStatementsLetsTheConversationsWritersGoOn(t *testing.T) {
	repo, pool, _ := newRepo(t)
	ctx := context.Background()
	alice := conversation.UserID(uuid.NewString())
	c := startConversation(t, repo, alice)

	// given a process froze inside its transaction, holding the conversation's row lock
	frozen := lockRows(t, pool, c.ID())

	// when another writer sends into the conversation
	start := time.Now()
	short, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var m conversation.Message
	err := repo.Update(short, c.ID(), func(c *conversation.Conversation) (err error) { m, err = c.PostMessage(post("m1", alice)); return err })

	// then Postgres ends the idle transaction within seconds and the send commits; the frozen
	// transaction cannot commit afterwards
	if err != nil || m.Seq != 1 {
		t.Fatalf("the send behind the frozen transaction: seq %d, %v", m.Seq, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the send waited %v for the frozen transaction", took)
	}
	if err := frozen.Commit(ctx); err == nil {
		t.Fatal("the frozen transaction committed after Postgres should have ended it")
	}
	t.Logf("the send waited %v", time.Since(start).Round(100*time.Millisecond))
}
