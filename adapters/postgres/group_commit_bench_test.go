package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/domain/conversation"
)

// BenchmarkLockedSendsFromTwoInstances: two repositories (two instances) on one database send
// into the same 100 conversations, as the durable-sends benchmark's senders do, so nearly every
// send goes the locked way. Each run compares the group commit, with 1, 2 (the product's
// groupCommitters), 4 and 8 group transactions at once per instance, against every locked
// write on its own (the baseline), at 16 and 64 writers: `make bench-sends`.
func BenchmarkLockedSendsFromTwoInstances(b *testing.B) {
	for _, writers := range []int{16, 64} {
		for _, committers := range []int{0, 1, 2, 4, 8} {
			name := fmt.Sprintf("writers=%d/grouped-%d", writers, committers)
			if committers == 0 {
				name = fmt.Sprintf("writers=%d/alone", writers)
			}
			b.Run(name, func(b *testing.B) { sendFromTwoInstances(b, writers, committers) })
		}
	}
}

func sendFromTwoInstances(b *testing.B, writers, committers int) {
	onA, pool, _ := newRepo(b)
	onB := postgres.NewConversationRepository(pool, &countingSignal{})
	for _, r := range []*postgres.ConversationRepository{onA, onB} {
		postgres.SetGroupCommitters(r, committers)
	}
	alice := conversation.UserID(uuid.NewString())
	convs := make([]conversation.ID, 100)
	for i := range convs {
		convs[i] = startConversation(b, onA, alice).ID()
	}
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		repo := []*postgres.ConversationRepository{onA, onB}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				id, key := convs[(int(i)*7+w)%len(convs)], fmt.Sprintf("w%d-%d", w, i)
				if err := repo.Update(ctx, id, func(c *conversation.Conversation) error { _, err := c.PostMessage(post(key, alice)); return err }); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sends/s")
	st := onA.GroupCommitStats()
	if st.Groups > 0 {
		b.ReportMetric(float64(st.Writes)/float64(st.Groups), "writes/group")
	}
}
