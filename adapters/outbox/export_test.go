package outbox

import "context"

// FastPathLanes is how many publishes the fast path may have on their way to Redis at once.
const FastPathLanes = fastPathLanes

// FastPathQueue is how many commits may wait for the fast path, over all its lanes.
const FastPathQueue = fastPathQueue

// RelayIfLeaderStalls relays those of shards whose oldest row has waited past the bound.
func (r *Relay) RelayIfLeaderStalls(ctx context.Context, shards []int) {
	r.relayIfLeaderStalls(ctx, shards)
}
