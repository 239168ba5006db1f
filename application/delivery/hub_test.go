package delivery_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/domain/conversation"
)

// memorySource is a conversation history in memory: the stream and Postgres in one.
type memorySource struct {
	mu   sync.Mutex
	msgs map[conversation.ID][]delivery.Item // index i holds seq i+1
}

func (s *memorySource) append(conv conversation.ID, n int) []delivery.Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var added []delivery.Item
	for range n {
		seq := int64(len(s.msgs[conv]) + 1)
		it := delivery.Item{Seq: seq, JSON: []byte(fmt.Sprintf(`{"seq":%d}`, seq))}
		s.msgs[conv] = append(s.msgs[conv], it)
		added = append(added, it)
	}
	return added
}

func (s *memorySource) After(_ context.Context, conv conversation.ID, after int64, limit int) ([]delivery.Item, delivery.Origin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.msgs[conv]
	if after >= int64(len(all)) {
		return nil, delivery.FromRedis, nil
	}
	page := all[after:min(int(after)+limit, len(all))]
	return append([]delivery.Item(nil), page...), delivery.FromRedis, nil
}

// recordingSink keeps what it was given and can be told to refuse (a client cut off).
type recordingSink struct {
	mu   sync.Mutex
	seqs []int64
	got  chan struct{}
}

func newSink() *recordingSink { return &recordingSink{got: make(chan struct{}, 100000)} }

func (k *recordingSink) Deliver(_ conversation.ID, it delivery.Item) error {
	k.mu.Lock()
	k.seqs = append(k.seqs, it.Seq)
	k.mu.Unlock()
	k.got <- struct{}{}
	return nil
}

func (k *recordingSink) WaitRoom(context.Context) error { return nil }

// waitFor returns the seqs once n arrived, failing the test after a while.
func (k *recordingSink) waitFor(t *testing.T, n int) []int64 {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		k.mu.Lock()
		if len(k.seqs) >= n {
			out := append([]int64(nil), k.seqs...)
			k.mu.Unlock()
			return out
		}
		k.mu.Unlock()
		select {
		case <-k.got:
		case <-deadline:
			k.mu.Lock()
			defer k.mu.Unlock()
			t.Fatalf("got %d messages %v, want %d", len(k.seqs), k.seqs, n)
		}
	}
}

// interest records Follow and Unfollow calls.
type interest struct {
	mu    sync.Mutex
	calls []string
}

func (i *interest) Follow(conv conversation.ID) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.calls = append(i.calls, "follow "+string(conv))
}

func (i *interest) Unfollow(conv conversation.ID) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.calls = append(i.calls, "unfollow "+string(conv))
}

func newHub() (*delivery.Hub, *memorySource, *interest) {
	src := &memorySource{msgs: map[conversation.ID][]delivery.Item{}}
	in := &interest{}
	return delivery.NewHub(src, in, slog.New(slog.NewTextHandler(io.Discard, nil))), src, in
}

func expectInOrder(t *testing.T, seqs []int64, from int64) {
	t.Helper()
	for i, s := range seqs {
		if s != from+int64(i) {
			t.Fatalf("seqs %v: position %d is %d, want %d", seqs, i, s, from+int64(i))
		}
	}
}

func TestFirstSubscriberFollowsAndLastUnfollows(t *testing.T) {
	hub, _, in := newHub()
	ctx := t.Context()

	// given two subscriptions of one conversation
	a := hub.Subscribe(ctx, "c1", 0, newSink())
	b := hub.Subscribe(ctx, "c1", 0, newSink())
	// when both close
	a.Close()
	b.Close()
	b.Close() // twice is harmless

	// then the conversation was followed once and given up once, after the last
	in.mu.Lock()
	defer in.mu.Unlock()
	if fmt.Sprint(in.calls) != "[follow c1 unfollow c1]" {
		t.Fatalf("interest calls %v", in.calls)
	}
	if got := hub.Following(); len(got) != 0 {
		t.Fatalf("still following %v", got)
	}
}

func TestBacklogThenLiveWithoutGapOrDuplicate(t *testing.T) {
	hub, src, _ := newHub()
	src.append("c1", 1200) // more than two pages
	sink := newSink()

	// given a subscription from 0 while live messages keep coming, each also offered live
	hub.Subscribe(t.Context(), "c1", 0, sink)
	for range 300 {
		for _, it := range src.append("c1", 1) {
			hub.Publish("c1", it)
		}
	}

	// then it sees 1..1500 once each, in order
	expectInOrder(t, sink.waitFor(t, 1500), 1)
}

func TestLiveGapIsFilledFromTheSourceAndDuplicatesDropped(t *testing.T) {
	hub, src, _ := newHub()
	sink := newSink()
	hub.Subscribe(t.Context(), "c1", 0, sink)
	time.Sleep(20 * time.Millisecond) // the empty backlog read ends

	// when 1..5 exist, 1 and 2 arrive live (2 twice), 3 and 4 are lost, and 5 arrives
	msgs := src.append("c1", 5)
	hub.Publish("c1", msgs[0])
	hub.Publish("c1", msgs[1])
	hub.Publish("c1", msgs[1])
	hub.Publish("c1", msgs[4])

	// then the subscription still sees 1..5 once each, in order
	seqs := sink.waitFor(t, 5)
	expectInOrder(t, seqs, 1)
	time.Sleep(50 * time.Millisecond)
	if got := sink.waitFor(t, 5); len(got) != 5 {
		t.Fatalf("duplicates delivered: %v", got)
	}
	if hub.Stats().DuplicatesDropped < 1 {
		t.Fatal("the repeated live message was not counted as a duplicate")
	}
}

func TestCatchUpToDeliversALostLastMessage(t *testing.T) {
	hub, src, _ := newHub()
	sink := newSink()
	hub.Subscribe(t.Context(), "c1", 0, sink)
	other := newSink()
	hub.Subscribe(t.Context(), "c2", 0, other)
	time.Sleep(20 * time.Millisecond)

	// when three messages are stored, only the first two arrive live, and nothing follows
	msgs := src.append("c1", 3)
	hub.Publish("c1", msgs[0])
	hub.Publish("c1", msgs[1])
	expectInOrder(t, sink.waitFor(t, 2), 1)

	// then a comparison with the stream's top brings the third
	hub.CatchUpTo("c1", 3)
	expectInOrder(t, sink.waitFor(t, 3), 1)
	// and a conversation already at its top is left alone
	hub.CatchUpTo("c2", 0)
	if n := len(other.waitFor(t, 0)); n != 0 {
		t.Fatalf("c2 got %d messages", n)
	}
}

func TestClosedSubscriptionGetsNothingMore(t *testing.T) {
	hub, src, _ := newHub()
	sink := newSink()
	sub := hub.Subscribe(t.Context(), "c1", 0, sink)
	time.Sleep(20 * time.Millisecond)
	msgs := src.append("c1", 2)
	hub.Publish("c1", msgs[0])
	sink.waitFor(t, 1)

	// when the subscription closes before the second message
	sub.Close()
	hub.Publish("c1", msgs[1])
	hub.CatchUpTo("c1", 2)
	time.Sleep(50 * time.Millisecond)

	// then the sink saw only the first
	if got := sink.waitFor(t, 1); len(got) != 1 {
		t.Fatalf("closed subscription got %v", got)
	}
}

func TestManySubscribersAndPublishersUnderRace(t *testing.T) {
	hub, src, _ := newHub()
	const convs, subsPer, msgs = 4, 5, 200
	sinks := map[conversation.ID][]*recordingSink{}
	for c := range convs {
		conv := conversation.ID(fmt.Sprintf("c%d", c))
		for range subsPer {
			s := newSink()
			sinks[conv] = append(sinks[conv], s)
			hub.Subscribe(t.Context(), conv, 0, s)
		}
	}
	var wg sync.WaitGroup
	for conv := range sinks {
		wg.Go(func() {
			for range msgs {
				for _, it := range src.append(conv, 1) {
					hub.Publish(conv, it)
				}
			}
			hub.CatchUpTo(conv, msgs)
		})
	}
	wg.Wait()
	for _, ss := range sinks {
		for _, s := range ss {
			expectInOrder(t, s.waitFor(t, msgs), 1)
		}
	}
}

// blockingSink holds its first WaitRoom until released, so a backlog page is mid-way.
type blockingSink struct {
	*recordingSink
	entered, release chan struct{}
	once             sync.Once
}

// WaitRoom answers as a connection with room does: without looking at ctx.
func (b *blockingSink) WaitRoom(context.Context) error {
	b.once.Do(func() {
		close(b.entered)
		<-b.release
	})
	return nil
}

func TestNothingIsDeliveredAfterCloseEvenFromAPageInProgress(t *testing.T) {
	hub, src, _ := newHub()
	src.append("c1", 50)
	sink := &blockingSink{recordingSink: newSink(), entered: make(chan struct{}), release: make(chan struct{})}

	// given a catch-up that is in the middle of a backlog page
	sub := hub.Subscribe(t.Context(), "c1", 0, sink)
	<-sink.entered

	// when the subscription closes (an unsubscribe) and the page goes on
	sub.Close()
	close(sink.release)
	time.Sleep(50 * time.Millisecond)

	// then the sink got nothing from that page
	if got := sink.waitFor(t, 0); len(got) != 0 {
		t.Fatalf("closed subscription delivered %v", got)
	}
}
