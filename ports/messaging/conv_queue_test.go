package messaging

import (
	"slices"
	"testing"

	"github.com/nova-chat/nova/domain/conversation"
)

func TestAConversationQueuedTwiceIsTakenOnceAndWakeUpsCoalesce(t *testing.T) {
	q := newConvQueue()
	a, b := conversation.ID("c-a"), conversation.ID("c-b")
	q.add(a, b)
	q.add(a)
	q.wake()
	q.wake() // must not block: the loop has not looked yet

	select {
	case <-q.woken():
	default:
		t.Fatal("not woken after wake")
	}
	select {
	case <-q.woken():
		t.Fatal("woken twice for two wake-ups before the loop looked")
	default:
	}
	got := q.take()
	slices.Sort(got)
	if !slices.Equal(got, []conversation.ID{a, b}) {
		t.Fatalf("took %v, want [%s %s]", got, a, b)
	}
	if again := q.take(); len(again) != 0 {
		t.Fatalf("took %v after the queue was emptied, want nothing", again)
	}
}

func TestAConversationQueuedForBothComparisonsIsComparedWithPostgresOnly(t *testing.T) {
	l := &LiveListener{pending: newConvQueue(), resync: newConvQueue()}
	l.compareQueue(false).add("c-1", "c-2")
	l.compareQueue(true).add("c-2")

	convs, resync := l.queued()
	if !slices.Equal(convs, []conversation.ID{"c-1"}) || !slices.Equal(resync, []conversation.ID{"c-2"}) {
		t.Fatalf("compared with streams %v and with Postgres %v; want [c-1] and [c-2]", convs, resync)
	}
}
