package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// BigConvResult compares sequential send latency into a conversation with BigSize messages
// with a fresh one, sends interleaved so both see the same machine.
type BigConvResult struct {
	Messages   int     `json:"messages"`
	SeedS      float64 `json:"seed_s"`
	Sends      int     `json:"sends_each"`
	Node       string  `json:"node"`
	Big        Summary `json:"big"`
	Fresh      Summary `json:"fresh"`
	RatioP50   float64 `json:"ratio_p50"`
	RatioP99   float64 `json:"ratio_p99"`
	SendErrors int64   `json:"send_errors"`
	Error      string  `json:"error,omitempty"`
}

func (b *Bench) runBigConversation(ctx context.Context) *BigConvResult {
	res := &BigConvResult{Messages: b.cfg.BigSize, Sends: b.cfg.BigSends}
	if err := b.bigConversation(ctx, res); err != nil {
		res.Error = err.Error()
		b.log.Printf("big conversation: ERROR %v", err)
	}
	return res
}

func (b *Bench) bigConversation(ctx context.Context, res *BigConvResult) error {
	node := b.env.Nodes[0]
	res.Node = node.Name
	owner, other := b.api.NewUser(), b.api.NewUser()
	big, err := b.api.CreateConversation(ctx, node.URL, owner, []string{other.ID})
	if err != nil {
		return err
	}
	fresh, err := b.api.CreateConversation(ctx, node.URL, owner, []string{other.ID})
	if err != nil {
		return err
	}
	// Real rows first, through the API, then extend the same shape with SQL.
	for i := 1; i <= 10; i++ {
		if _, err := b.api.Send(ctx, node.URL, owner, big, "api-"+strconv.Itoa(i), []byte(`{"text":"real message"}`)); err != nil {
			return err
		}
	}
	t := time.Now()
	b.log.Printf("big conversation: seeding %d messages with SQL", res.Messages)
	if err := b.seedConversation(ctx, big, owner.ID, int64(res.Messages)); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	b.analyze(ctx)
	res.SeedS = time.Since(t).Seconds()
	b.log.Printf("big conversation: seeded in %.1fs; %d sends into it and %d into a fresh one, interleaved", res.SeedS, res.Sends, res.Sends)

	hb, hf := newHist(), newHist()
	var errs int64
	done := 0
	stop := b.log.Every(2*time.Second, func() string {
		return fmt.Sprintf("big conversation: %d/%d send pairs", done, res.Sends)
	})
	defer stop()
	send := func(conv string, h *Hist, i int) {
		t0 := time.Now()
		if _, err := b.api.Send(ctx, node.URL, owner, conv, "seq-"+strconv.Itoa(i), []byte(`{"text":"novabench big conversation probe"}`)); err != nil {
			errs++
			return
		}
		h.Record(time.Since(t0))
	}
	for i := 0; i < res.Sends && ctx.Err() == nil; i++ {
		if i%2 == 0 {
			send(big, hb, i)
			send(fresh, hf, i)
		} else {
			send(fresh, hf, i)
			send(big, hb, i)
		}
		done = i + 1
	}
	stop()
	res.SendErrors = errs
	res.Big, res.Fresh = hb.Summary(false), hf.Summary(false)
	if res.Fresh.P50 > 0 {
		res.RatioP50 = res.Big.P50 / res.Fresh.P50
		res.RatioP99 = res.Big.P99 / res.Fresh.P99
	}
	b.log.Printf("big conversation: p50 %.2fms (%d msgs) vs %.2fms (fresh): %.2fx; p99 %.2f vs %.2f ms",
		res.Big.P50, res.Messages, res.Fresh.P50, res.RatioP50, res.Big.P99, res.Fresh.P99)
	return ctx.Err()
}

// seedConversation extends conv, as it stands, to upTo messages: message rows, their
// message_posted events (version = previous version + 1 each, after the started event's 1) and
// the state row, in one transaction, exactly as the event store would have written them.
func (b *Bench) seedConversation(ctx context.Context, conv, sender string, upTo int64) error {
	return pgx.BeginFunc(ctx, b.env.DB, func(tx pgx.Tx) error {
		var lastSeq, version, maxEvent int64
		if err := tx.QueryRow(ctx, `SELECT last_seq, version FROM conversations WHERE id = $1 FOR UPDATE`, conv).Scan(&lastSeq, &version); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT max(version) FROM events WHERE aggregate_id = $1`, conv).Scan(&maxEvent); err != nil {
			return err
		}
		if maxEvent != version {
			return fmt.Errorf("state row version %d but events end at %d", version, maxEvent)
		}
		_, err := tx.Exec(ctx, `
WITH m AS (
    INSERT INTO messages (conversation_id, seq, id, sender_id, client_msg_id, body, created_at)
    SELECT $1::uuid, s, gen_random_uuid(), $2::uuid, 'seed-' || s,
           json_build_object('text', 'seeded message ' || s), now() - interval '1 day' + s * interval '1 millisecond'
    FROM generate_series($3::bigint + 1, $4::bigint) AS s
    RETURNING conversation_id, seq, id, sender_id, client_msg_id, body, created_at
)
INSERT INTO events (aggregate_id, version, aggregate_type, event_id, event_type, data, occurred_at)
SELECT conversation_id, $5::bigint + (seq - $3::bigint), 'conversation', gen_random_uuid(), 'conversation.message_posted.v1',
       json_build_object('message', json_build_object(
           'id', id, 'conversation_id', conversation_id, 'seq', seq, 'stream_id', seq || '-0',
           'sender_id', sender_id, 'client_msg_id', client_msg_id, 'body', body,
           'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
       created_at
FROM m`, conv, sender, lastSeq, upTo, version)
		if err != nil {
			return err
		}
		ct, err := tx.Exec(ctx, `UPDATE conversations SET last_seq = $2, version = $3 WHERE id = $1 AND last_seq = $4 AND version = $5`,
			conv, upTo, version+(upTo-lastSeq), lastSeq, version)
		if err != nil {
			return err
		}
		if ct.RowsAffected() != 1 {
			return fmt.Errorf("conversation changed while seeding")
		}
		return nil
	})
}

// analyze refreshes planner statistics, as autovacuum would after a bulk load.
func (b *Bench) analyze(ctx context.Context) {
	_, _ = b.env.DB.Exec(ctx, `ANALYZE messages; ANALYZE events; ANALYZE conversations`)
}
