package websocket

import (
	"testing"
	"time"

	"github.com/nova-chat/nova/domain/conversation"
)

// AfterMembershipCheck makes every subscribe run hook between its membership check and its
// subscription, until the test ends.
func AfterMembershipCheck(t *testing.T, hook func(conv conversation.ID, user conversation.UserID)) {
	testHookChecked.Store(&hook)
	t.Cleanup(func() { testHookChecked.Store(nil) })
}

// FinalFlushFor makes ended connections give their unstored acks up after d instead of a minute,
// until the test ends.
func FinalFlushFor(t *testing.T, d time.Duration) {
	testFinalFlushFor.Store(int64(d))
	t.Cleanup(func() { testFinalFlushFor.Store(0) })
}
