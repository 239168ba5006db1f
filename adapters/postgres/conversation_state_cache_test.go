package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/nova-chat/nova/domain/conversation"
)

// A conversation's writer lock holds up only that conversation's writers: with 5,000
// conversations' locks held at once, none waits for another's (a fixed set of shared locks,
// as the writers once had, 1,024 stripes, would make some wait), and a second writer of one of
// them waits until the first lets go.
func TestEachConversationHasAWriterLockOfItsOwn(t *testing.T) {
	s := newStateCache()
	ids := make([]conversation.ID, 5000)
	held := make(chan struct{})
	go func() {
		defer close(held)
		for i := range ids {
			ids[i] = conversation.ID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
			s.lockWriter(ids[i])
		}
	}()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("taking the writer locks of 5,000 different conversations waited for one already held")
	}

	second := make(chan struct{})
	go func() { s.lockWriter(ids[7]); close(second) }()
	select {
	case <-second:
		t.Fatal("a second writer of a conversation got its lock while the first still held it")
	case <-time.After(50 * time.Millisecond):
	}
	s.unlockWriter(ids[7])
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("the second writer did not get the lock after the first let go")
	}
	s.unlockWriter(ids[7])
	for _, id := range ids {
		if id != ids[7] {
			s.unlockWriter(id)
		}
	}
}
