package redisstream

import "context"

// FanoutEntry lets the external tests compare the Go encoder with the Lua script.
var FanoutEntry = fanoutEntry

// PublishConversationHalf runs only the first half of a split publish (the conversation stream),
// as a publisher that crashed before the partition half would have left it.
func PublishConversationHalf(ctx context.Context, p *DualStreamPublisher, entries []Entry) error {
	return publishEntries.Run(ctx, p.client, []string{ConversationStream(entries[0].ConversationID)},
		p.conversationArgs(entries, false, "")...).Err()
}

// WarnIfLagUnreported is the group subscribers' verdict on a Redis of this major version (the
// tests' Redis is 7 or later).
func (g *GroupSubscribers) WarnIfLagUnreported(major int) { g.warnIfLagUnreported(major) }

// MajorVersion reads INFO server's redis_version.
var MajorVersion = majorVersion

// RemoveConsumerIfIdle is the idle-consumer cleanup's one step: check and remove.
var RemoveConsumerIfIdle = removeConsumerIfIdle

// RedirectBackoff is how long the n-th redirected live connection in a row waits to be opened again.
var RedirectBackoff = redirectBackoff
