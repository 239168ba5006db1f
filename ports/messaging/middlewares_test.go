package messaging

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// The chain around every handler: a panic is retried like any failure; a handler that panics on
// every attempt has its message dead-lettered (and acked) instead of handed over again forever;
// a transient failure that outlasts the retries is not dead-lettered.
func TestTheHandlerChainDeadLettersOnlyWhatCanNeverSucceed(t *testing.T) {
	for _, tc := range []struct {
		name        string
		handle      func(attempt int) error
		wantErr     bool // nacked: handed over again
		deadLetters int
		attempts    int
	}{
		{name: "panics on every attempt", handle: func(int) error { panic("a bug") },
			deadLetters: 1, attempts: 3},
		{name: "panics once, then succeeds", handle: func(attempt int) error {
			if attempt == 1 {
				panic("once")
			}
			return nil
		}, attempts: 2},
		{name: "fails on every attempt (Postgres away)", handle: func(int) error { return errors.New("connection refused") },
			wantErr: true, attempts: 3},
		{name: "fails permanently", handle: func(int) error { return errPermanent },
			deadLetters: 1, attempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dead := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
			t.Cleanup(func() { _ = dead.Close() })
			poison, err := middleware.PoisonQueueWithFilter(dead, "dead-letters", func(err error) bool { return errors.Is(err, errPermanent) })
			if err != nil {
				t.Fatal(err)
			}
			attempts := 0
			var h message.HandlerFunc = func(*message.Message) ([]*message.Message, error) {
				attempts++
				return nil, tc.handle(attempts)
			}
			chain := middlewares(poison, &routerCounts{}, middleware.Retry{MaxRetries: 2, InitialInterval: time.Millisecond})
			for i := len(chain) - 1; i >= 0; i-- {
				h = chain[i](h)
			}

			_, err = h(message.NewMessage("m-1", []byte("{}")))

			if (err != nil) != tc.wantErr {
				t.Errorf("the chain returned %v, want an error: %v", err, tc.wantErr)
			}
			if attempts != tc.attempts {
				t.Errorf("%d attempts, want %d", attempts, tc.attempts)
			}
			if got := deadLettered(t, dead); got != tc.deadLetters {
				t.Errorf("%d dead letters, want %d", got, tc.deadLetters)
			}
		})
	}
}

func deadLettered(t *testing.T, dead *gochannel.GoChannel) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := dead.Subscribe(ctx, "dead-letters")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		select {
		case m := <-msgs:
			n++
			m.Ack()
		case <-time.After(100 * time.Millisecond):
			return n
		}
	}
}
