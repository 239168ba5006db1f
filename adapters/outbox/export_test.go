package outbox

// FastPathLanes is how many publishes the fast path may have on their way to Redis at once.
const FastPathLanes = fastPathLanes

// FastPathQueue is how many commits may wait for the fast path, over all its lanes.
const FastPathQueue = fastPathQueue
