package outbox

// FastPathLanes is how many publishes the fast path may have on their way to Redis at once.
const FastPathLanes = fastPathLanes
