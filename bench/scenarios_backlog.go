package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/internal/ctxsleep"
)

// BacklogResult is the time a reconnecting client takes to receive N missed messages, from
// the subscribe frame to the N-th message frame, served from the Redis window and from Postgres.
type BacklogResult struct {
	Messages   int       `json:"messages"`
	FillS      float64   `json:"fill_s"`
	FillPerS   float64   `json:"fill_sends_per_s"`
	Node       string    `json:"node"`
	RedisMs    []float64 `json:"redis_ms"`
	PostgresMs []float64 `json:"postgres_ms"`
	RedisMed   float64   `json:"redis_median_ms"`
	PGMed      float64   `json:"postgres_median_ms"`
	// Baselines: the bench reading the same messages itself, in one call each.
	RawXRangeMs float64 `json:"raw_xrange_ms"`
	RawSelectMs float64 `json:"raw_select_ms"`
	Error       string  `json:"error,omitempty"`
}

func (b *Bench) runBacklog(ctx context.Context) *BacklogResult {
	res := &BacklogResult{Messages: b.cfg.BacklogN}
	if err := b.backlog(ctx, res); err != nil {
		res.Error = err.Error()
		b.log.Printf("backlog: ERROR %v", err)
	}
	return res
}

func (b *Bench) backlog(ctx context.Context, res *BacklogResult) error {
	nodes := b.env.Nodes
	node := nodes[len(nodes)-1]
	res.Node = node.Name
	owner, reader := b.api.NewUser(), b.api.NewUser()
	conv, err := b.api.CreateConversation(ctx, nodes[0].URL, owner, []string{reader.ID})
	if err != nil {
		return err
	}
	n := res.Messages
	var sent atomic.Int64
	t := time.Now()
	stop := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("backlog: sending %d/%d messages into one conversation", sent.Load(), n)
	})
	err = parallel(ctx, n, 32, func(i int) error {
		body := `{"text":"missed message ` + strconv.Itoa(i) + `","k":` + strconv.Itoa(i) + `}`
		_, err := b.api.Send(ctx, nodes[i%len(nodes)].URL, owner, conv, "backlog-"+strconv.Itoa(i), []byte(body))
		sent.Add(1)
		return err
	})
	stop()
	if err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	res.FillS = time.Since(t).Seconds()
	res.FillPerS = float64(n) / res.FillS
	key := "stream:conversation:" + conv
	if err := waitStreamLen(ctx, b.env.RDB, key, int64(n), 30*time.Second); err != nil {
		return err
	}
	b.log.Printf("backlog: %d messages sent in %.1fs (%.0f/s, one conversation); the stream holds them all", n, res.FillS, res.FillPerS)

	if err := b.rawReads(ctx, res, key, conv, n); err != nil {
		return err
	}

	var fromRedis, fromPG []time.Duration
	for i := range b.cfg.BacklogReps {
		d, err := b.catchUp(ctx, node, reader, conv, n)
		if err != nil {
			return fmt.Errorf("from Redis, try %d: %w", i+1, err)
		}
		fromRedis = append(fromRedis, d)
		b.log.Printf("backlog: %d messages from the Redis window in %s", n, d.Round(time.Millisecond))
	}
	// Without the stream the backlog must come from Postgres.
	for i := range b.cfg.BacklogReps {
		if err := b.env.RDB.Del(ctx, key).Err(); err != nil {
			return err
		}
		d, err := b.catchUp(ctx, node, reader, conv, n)
		if err != nil {
			return fmt.Errorf("from Postgres, try %d: %w", i+1, err)
		}
		fromPG = append(fromPG, d)
		b.log.Printf("backlog: %d messages from Postgres in %s", n, d.Round(time.Millisecond))
	}
	for _, d := range fromRedis {
		res.RedisMs = append(res.RedisMs, msOf(d))
	}
	for _, d := range fromPG {
		res.PostgresMs = append(res.PostgresMs, msOf(d))
	}
	res.RedisMed, res.PGMed = medianMs(fromRedis), medianMs(fromPG)
	b.log.Printf("backlog: median %.0f ms from Redis (raw XRANGE %.0f ms), %.0f ms from Postgres (raw SELECT %.0f ms)",
		res.RedisMed, res.RawXRangeMs, res.PGMed, res.RawSelectMs)
	return nil
}

// rawReads are the baselines: one XRANGE and one SELECT of the same n messages, by the bench
// itself.
func (b *Bench) rawReads(ctx context.Context, res *BacklogResult, key, conv string, n int) error {
	t := time.Now()
	entries, err := b.env.RDB.XRange(ctx, key, "-", "+").Result()
	if err != nil || len(entries) != n {
		return fmt.Errorf("raw XRANGE: %d entries, %v", len(entries), err)
	}
	res.RawXRangeMs = msOf(time.Since(t))
	t = time.Now()
	rows, err := b.env.DB.Query(ctx, `SELECT id, conversation_id, seq, sender_id, client_msg_id, body, created_at
		FROM messages WHERE conversation_id = $1 ORDER BY seq`, conv)
	if err != nil {
		return err
	}
	count := 0
	for rows.Next() {
		var id, cid, sender, cmid, body string
		var seq int64
		var at time.Time
		if err := rows.Scan(&id, &cid, &seq, &sender, &cmid, &body, &at); err != nil {
			rows.Close()
			return err
		}
		count++
	}
	rows.Close()
	res.RawSelectMs = msOf(time.Since(t))
	if count != n {
		return fmt.Errorf("raw SELECT: %d rows", count)
	}
	return nil
}

func waitStreamLen(ctx context.Context, rdb *redis.Client, key string, n int64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		l, err := rdb.XLen(ctx, key).Result()
		if err == nil && l >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s holds %d entries, want %d, after %s (err %v)", key, l, n, within, err)
		}
		if err := ctxsleep.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// catchUp connects, then times subscribe(since_seq 0) until message seq n has arrived, and
// checks that 1..n came once each, in order. A bare connection, not the Go client: the timing
// starts at the subscribe frame (the client subscribes inside its own dial), a repeated frame
// must fail the check (the client drops it), and frames are not decoded whole (messageSeq).
func (b *Bench) catchUp(ctx context.Context, node *Node, u User, conv string, n int) (time.Duration, error) {
	c, err := DialWS(ctx, node.URL, u)
	if err != nil {
		return 0, err
	}
	defer c.CloseNow()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := Subscribe(rctx, c, conv, 0); err != nil {
		return 0, err
	}
	next := int64(1)
	for next <= int64(n) {
		typ, data, err := c.Read(rctx)
		if err != nil {
			return 0, fmt.Errorf("after %d messages: %w", next-1, err)
		}
		if typ != websocket.MessageText {
			continue
		}
		seq, ok := messageSeq(data)
		if !ok {
			if bytes.Contains(data, []byte(`"type":"error"`)) {
				return 0, fmt.Errorf("error frame: %s", data)
			}
			continue // the subscribed frame
		}
		if seq != next {
			return 0, fmt.Errorf("got seq %d, want %d", seq, next)
		}
		next++
	}
	return time.Since(t0), nil
}

var (
	messagePrefix = []byte(`{"type":"message"`)
	seqField      = []byte(`"seq":`)
)

// messageSeq reads the seq of a message frame without decoding all of it (the client's own
// parsing should not dominate a measurement of the server).
func messageSeq(data []byte) (int64, bool) {
	if !bytes.HasPrefix(data, messagePrefix) {
		return 0, false
	}
	i := bytes.Index(data, seqField)
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(seqField):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	seq, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return seq, err == nil
}
