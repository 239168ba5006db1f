package websocket

import (
	"testing"

	"github.com/nova-chat/nova/domain/conversation"
)

// AfterMembershipCheck makes every subscribe run hook between its membership check and its
// subscription, until the test ends.
func AfterMembershipCheck(t *testing.T, hook func(conv conversation.ID, user conversation.UserID)) {
	testHookChecked.Store(&hook)
	t.Cleanup(func() { testHookChecked.Store(nil) })
}
