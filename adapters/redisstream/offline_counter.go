package redisstream

import (
	"context"
	_ "embed"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/domain/conversation"
)

const (
	OfflineTTL = 24 * time.Hour
	// handledTTL is how long a conversation's handled marks are kept after its last message.
	handledTTL = 7 * 24 * time.Hour
	// maxMarkedSeq bounds the bitmap of handled marks (512 MiB is Redis' limit for one string;
	// a conversation never gets near 2^32 messages)
	maxMarkedSeq = 1<<32 - 1
)

//go:embed count_offline.lua
var countOfflineLua string

var countOffline = redis.NewScript(countOfflineLua)

//go:embed count_recipient.lua
var countRecipientLua string

var countRecipient = redis.NewScript(countRecipientLua)

// countedSeqs is how many recent seqs a recipient's counter remembers on Redis Cluster (see
// runAcrossSlots).
const countedSeqs = 256

// OfflineCounter keeps offline:{user_id}:{conversation_id}: messages that arrived while the user
// had no connection anywhere.
//
// Calls that overlap are sent together: the first caller runs the script for every call queued
// meanwhile in one pipeline (one round trip), the others wait for their result; what queued
// during that round trip goes in the next pipeline, sent by a goroutine (flush). The consumer
// group hands a batch of messages to the router at once, so under load one round trip counts
// many messages. (go-redis has no automatic pipelining; this is the few lines it takes.)
type OfflineCounter struct {
	client redis.UniversalClient

	mu       sync.Mutex
	queued   []*offlineCall
	flushing bool
}

type offlineCall struct {
	keys []string
	seq  int64
	now  int64
	n    int
	err  error
	done chan struct{}
}

func NewOfflineCounter(client redis.UniversalClient) *OfflineCounter {
	if client == nil {
		panic("redisstream.NewOfflineCounter: nil client")
	}
	return &OfflineCounter{client: client}
}

func OfflineKey(u conversation.UserID, c conversation.ID) string {
	return "offline:" + string(u) + ":" + string(c)
}

// HandledKey holds which of a conversation's messages a consumer group has applied: a bitmap
// indexed by seq.
func HandledKey(group string, c conversation.ID) string {
	return "nova:handled:" + group + ":" + string(c)
}

// CountOffline adds one to the counter of each recipient who has no live connection anywhere
// (their presence hash, see Presence), once per (group, conversation, seq): the mark, the
// presence check and the increments are one script on one Redis (on Redis Cluster, three round
// trips with a per-counter record of counted seqs, see runAcrossSlots), so a redelivered event
// (claimed after a crash, or read twice, or redriven with a new entry) changes nothing. It
// reports whether the message was new.
func (o *OfflineCounter) CountOffline(ctx context.Context, group string, conv conversation.ID, seq int64, recipients []conversation.UserID) (bool, error) {
	if seq < 1 || seq > maxMarkedSeq {
		return false, fmt.Errorf("count offline messages: seq %d out of range", seq)
	}
	keys := make([]string, 0, 1+2*len(recipients))
	keys = append(keys, HandledKey(group, conv))
	for _, u := range recipients {
		keys = append(keys, OfflineKey(u, conv), presenceKey(u))
	}
	call := &offlineCall{keys: keys, seq: seq, now: time.Now().UnixMilli(), done: make(chan struct{})}
	o.mu.Lock()
	o.queued = append(o.queued, call)
	lead := !o.flushing
	o.flushing = true
	o.mu.Unlock()
	if lead {
		o.flush(ctx)
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if call.err != nil {
		return false, fmt.Errorf("count offline messages: %w", call.err)
	}
	return call.n >= 1, nil
}

// flush sends every queued call in one pipeline (run). The calls queued meanwhile go in the
// next pipeline, sent from a goroutine of its own: the caller that flushed returns after the
// round that held its own call, however long other callers keep the queue full (it is a
// consumer-group handler, whose message and whose whole batch wait for it).
func (o *OfflineCounter) flush(ctx context.Context) {
	o.mu.Lock()
	batch := o.queued
	o.queued = nil
	o.mu.Unlock()
	o.runSafely(ctx, batch)
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queued) == 0 {
		o.flushing = false
		return
	}
	go o.flush(context.WithoutCancel(ctx))
}

// runSafely is run, with a panic in it (a bug) turned into the error of every call it had not
// answered: the other handlers' calls wait on this round, which may run on a goroutine of its
// own, where a panic would end the process.
func (o *OfflineCounter) runSafely(ctx context.Context, calls []*offlineCall) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("panic while counting offline messages: %v\n%s", r, debug.Stack())
			for _, c := range calls {
				select {
				case <-c.done: // answered before the panic
				default:
					c.n, c.err = 0, err
					close(c.done)
				}
			}
		}
	}()
	o.run(ctx, calls)
}

// run sends the calls' scripts in one pipeline and completes each call. It runs for other
// callers too, so it does not stop when ctx (one caller's) ends, only after a bound.
func (o *OfflineCounter) run(ctx context.Context, calls []*offlineCall) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, ok := o.client.(*redis.ClusterClient); ok {
		o.runAcrossSlots(ctx, calls)
		return
	}
	args := func(c *offlineCall) []any {
		return []any{int64(handledTTL / time.Second), int64(OfflineTTL / time.Second), c.now, c.seq}
	}
	cmds := make([]*redis.Cmd, len(calls))
	_, _ = o.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = countOffline.EvalSha(ctx, p, c.keys, args(c)...)
		}
		return nil
	})
	for i, c := range calls {
		if redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") { // Redis restarted: load it again
			cmds[i] = countOffline.Run(ctx, o.client, c.keys, args(c)...)
		}
		c.n, c.err = cmds[i].Int()
		close(c.done)
	}
}

// runAcrossSlots is run for Redis Cluster, where a recipient's counter and presence hash, and
// the conversation's handled marks, live in different hash slots and no script may touch them
// together. Three pipelined round trips instead: the handled mark (read) with every
// recipient's presence; then, for a message not handled yet, count_recipient.lua for each
// offline recipient, which counts a seq into a counter once (it remembers the counter's recent
// seqs in the counter's own slot); then the handled mark is set. A failure anywhere (a master
// failing over) leaves the mark unset, and the retry counts only what was not counted, so each
// count stays exact. The limit: a redelivery older than the recipient's countedSeqs newest
// counted seqs of that conversation would count again.
func (o *OfflineCounter) runAcrossSlots(ctx context.Context, calls []*offlineCall) {
	for attempt := 0; ; attempt++ {
		noScript := o.countAcrossSlots(ctx, calls)
		if !noScript || attempt == 1 {
			break
		}
		// a node without the script (new, restarted or failed over): load it on every master
		// and count again, which counts only what was not counted
		if err := countRecipient.Load(ctx, o.client).Err(); err != nil {
			break
		}
		for _, c := range calls {
			c.err, c.n = nil, 0
		}
	}
	for _, c := range calls {
		close(c.done)
	}
}

// countAcrossSlots is one attempt of runAcrossSlots; it reports whether some node lacked the
// script.
func (o *OfflineCounter) countAcrossSlots(ctx context.Context, calls []*offlineCall) (noScript bool) {
	marks := make([]*redis.IntCmd, len(calls))
	presence := make([][]*redis.StringSliceCmd, len(calls))
	_, _ = o.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			marks[i] = p.GetBit(ctx, c.keys[0], c.seq)
			for j := 2; j < len(c.keys); j += 2 {
				presence[i] = append(presence[i], p.HVals(ctx, c.keys[j]))
			}
		}
		return nil
	})
	counts := make([][]*redis.Cmd, len(calls))
	_, _ = o.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			handled, err := marks[i].Result()
			if c.err = err; err != nil || handled == 1 {
				continue // an error, or handled before: n stays 0
			}
			for j, vouched := range presence[i] {
				online, err := vouchedPast(vouched, c.now)
				if err != nil {
					c.err = err
					break
				}
				if !online {
					counter := c.keys[1+2*j]
					counts[i] = append(counts[i], countRecipient.EvalSha(ctx, p, []string{counter, "{" + counter + "}:counted"},
						c.seq, int64(OfflineTTL/time.Second), countedSeqs))
				}
			}
		}
		return nil
	})
	setMarks := make([]*redis.IntCmd, len(calls))
	_, _ = o.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			if c.err != nil || marks[i].Val() == 1 {
				continue
			}
			for _, cmd := range counts[i] {
				if err := cmd.Err(); err != nil {
					c.err = err // the retry counts only what was not counted
				}
			}
			if c.err == nil {
				c.n = 1 + len(counts[i])
				setMarks[i] = p.SetBit(ctx, c.keys[0], c.seq, 1)
				p.Expire(ctx, c.keys[0], handledTTL) // a lost TTL renewal is renewed by the next message
			}
		}
		return nil
	})
	for i, c := range calls {
		if setMarks[i] != nil && setMarks[i].Err() != nil {
			// counted but not marked: a redelivery reads no mark, and count_recipient.lua still
			// refuses to count it twice
			c.err = setMarks[i].Err()
		}
	}
	for i := range calls {
		for _, cmd := range counts[i] {
			noScript = noScript || redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT")
		}
	}
	return noScript
}

// vouchedPast reports whether some instance's field of a presence hash vouches past now (ms).
func vouchedPast(cmd *redis.StringSliceCmd, now int64) (bool, error) {
	vals, err := cmd.Result()
	if err != nil {
		return false, err
	}
	for _, v := range vals {
		if t, err := strconv.ParseInt(v, 10, 64); err == nil && t > now {
			return true, nil
		}
	}
	return false, nil
}

// Clear resets a user's counter for a conversation (they subscribed or acknowledged it).
func (o *OfflineCounter) Clear(ctx context.Context, u conversation.UserID, c conversation.ID) error {
	return o.client.Del(ctx, OfflineKey(u, c)).Err()
}
