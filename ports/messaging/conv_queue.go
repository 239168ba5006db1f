package messaging

import (
	"sync"

	"github.com/nova-chat/nova/domain/conversation"
)

// convQueue is a set of conversations waiting for a loop, with the loop's wake-up: a
// conversation queued twice before the loop takes it is handled once, and any number of
// wake-ups before the loop looks are one.
type convQueue struct {
	mu    sync.Mutex
	convs map[conversation.ID]struct{}
	kick  chan struct{}
}

func newConvQueue() *convQueue {
	return &convQueue{convs: map[conversation.ID]struct{}{}, kick: make(chan struct{}, 1)}
}

// add queues convs without waking the loop.
func (q *convQueue) add(convs ...conversation.ID) {
	q.mu.Lock()
	for _, conv := range convs {
		q.convs[conv] = struct{}{}
	}
	q.mu.Unlock()
}

// wake makes the loop take what is queued.
func (q *convQueue) wake() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// woken is ready once wake was called since the loop last received from it.
func (q *convQueue) woken() <-chan struct{} { return q.kick }

// take empties the queue and returns what it held, in no order.
func (q *convQueue) take() []conversation.ID {
	q.mu.Lock()
	defer q.mu.Unlock()
	convs := make([]conversation.ID, 0, len(q.convs))
	for conv := range q.convs {
		convs = append(convs, conv)
	}
	clear(q.convs)
	return convs
}
