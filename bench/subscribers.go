package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/client"
)

// subscribers are a latency run's active subscribers, each a Go client (client/), as an app
// would connect: one per conversation, or one subscribed to all of them. ManualAck with no Ack
// calls, so they send no ack frames the run would pay for. A message is timed when the client
// read its frame off the socket (Message.ReceivedAt), before decoding and the hand-over to this
// reader: the point at which the Centrifugo reader times a publication. The client drops a
// re-sent message (seq at or below the last one it delivered), so order_violations counts gaps
// and reorders only.
type subscribers struct {
	run     *latencyRun
	probes  chan string // conversations whose probe arrived
	stop    context.CancelFunc
	readers sync.WaitGroup
	once    sync.Once
}

// openSubscribers starts the clients on nodes (client i on nodes[i % len]), subscribed from the
// start of their conversations, and their readers. Close them with close, also after an error.
func (b *Bench) openSubscribers(ctx context.Context, res *LatencyResult, run *latencyRun, nodes []*Node,
	receivers []User, convs []string, perConv bool) (*subscribers, error) {
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &subscribers{run: run, probes: make(chan string, len(convs)), stop: stop}
	count := 1
	if perConv {
		count = len(convs)
	}
	for i := range count {
		u := receivers[i]
		c, err := client.New(client.Config{URLs: []string{nodes[i%len(nodes)].URL}, ClientID: uuid.NewString(),
			Token: func(context.Context) (string, error) { return u.Token, nil }, ManualAck: true})
		if err != nil {
			return s, err
		}
		if perConv {
			c.SubscribeFrom(convs[i], 0)
		} else {
			for _, conv := range convs {
				c.SubscribeFrom(conv, 0)
			}
		}
		s.readers.Add(2)
		go func() { defer s.readers.Done(); _ = c.Run(rctx) }()
		go func() { defer s.readers.Done(); s.read(c.Messages()) }()
	}
	res.SubscriberConns = count
	return s, nil
}

// awaitProbes sends one unmeasured message into each conversation and waits until each has
// arrived: then every subscription is live (the client does not say when it has subscribed).
func (s *subscribers) awaitProbes(ctx context.Context, api *API, base string, senders []User, convs []string) error {
	if err := parallel(ctx, len(convs), 16, func(i int) error {
		_, err := api.Send(ctx, base, senders[i], convs[i], "probe-"+strconv.Itoa(i), []byte(`{"probe":true}`))
		return err
	}); err != nil {
		return fmt.Errorf("probe sends: %w", err)
	}
	timeout := time.After(30 * time.Second)
	for got := 0; got < len(convs); got++ {
		select {
		case <-s.probes:
		case <-timeout:
			return fmt.Errorf("%d of %d subscribers live after 30s (the probe sent into each conversation did not arrive)", got, len(convs))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// read takes one client's messages until it is closed.
func (s *subscribers) read(msgs <-chan client.Message) {
	last := map[string]int64{} // by conversation: one client may carry all of them
	for m := range msgs {
		var body latencyBody
		if json.Unmarshal(m.Body, &body) != nil {
			continue
		}
		if m.Seq != last[m.ConversationID]+1 {
			s.run.nOrder.Add(1)
		}
		last[m.ConversationID] = max(last[m.ConversationID], m.Seq)
		if body.Probe {
			s.probes <- m.ConversationID
			continue
		}
		s.run.delivered(body, m.ReceivedAt)
	}
}

// close ends the clients and waits for their readers. Safe to call twice.
func (s *subscribers) close() {
	s.once.Do(func() { s.stop(); s.readers.Wait() })
}
