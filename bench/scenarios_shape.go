package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The "shape" baselines run pgbench with Nova's own send transaction (same tables, keys and
// statements, in a copy of the schema) so the gap between pgbench's one-row insert and Nova's
// sends splits into what Postgres must do for Nova's schema and what the rest of the path adds.

const shapeSchemaSQL = `
CREATE SCHEMA shape;
CREATE TABLE shape.events (LIKE public.events INCLUDING ALL);
CREATE TABLE shape.conversations (LIKE public.conversations INCLUDING ALL);
CREATE TABLE shape.messages (LIKE public.messages INCLUDING ALL);
CREATE TABLE shape.outbox (LIKE public.outbox INCLUDING ALL);
INSERT INTO shape.conversations (id, title, participants, created_at, last_seq, version)
SELECT md5(i::text)::uuid, 'pgbench', ARRAY[md5('s' || i)::uuid, md5('r' || i)::uuid], now(), 0, 1
FROM generate_series(1, 100) AS i;`

// shapeTxScript is what one HTTP send does in Postgres (as of a5fc3ce, which dropped the
// idempotency pre-read): BEGIN, the locked state row, one pipelined batch (event, message,
// outbox row, state row), COMMIT: 4 round trips.
const shapeTxScript = `\set c random(1, 100)
\set k random(1, 2000000000)
BEGIN;
SELECT id, title, participants, created_at, last_seq + 1 AS seq, version + 1 AS ver FROM shape.conversations WHERE id = md5(:c::text)::uuid FOR UPDATE \gset
\startpipeline
INSERT INTO shape.events (aggregate_id, version, aggregate_type, event_id, event_type, data, occurred_at)
 VALUES (md5(:c::text)::uuid, :ver::bigint, 'conversation', gen_random_uuid(), 'conversation.message_posted.v1',
 '{"message":{"id":"0192d6a2-0000-7000-8000-000000000000","conversation_id":"x","seq":1,"stream_id":"1-0","sender_id":"x","client_msg_id":"pgb","body":{"t":1700000000000000000,"k":123456,"text":"novabench throughput probe"},"created_at":"2026-11-29T12:00:00.123456Z"}}', now());
INSERT INTO shape.messages (conversation_id, seq, id, sender_id, client_msg_id, body, created_at)
 VALUES (md5(:c::text)::uuid, :seq::bigint, gen_random_uuid(), md5('s' || :c::text)::uuid, 'pgb-' || :k::text || '-' || :client_id::text,
 '{"t":1700000000000000000,"k":123456,"text":"novabench throughput probe"}', now())
 ON CONFLICT (conversation_id, sender_id, client_msg_id) DO NOTHING RETURNING seq;
INSERT INTO shape.outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
 VALUES (md5(:c::text)::uuid, :seq::bigint, gen_random_uuid(), md5('s' || :c::text)::uuid, now(),
 convert_to('{"id":"0192d6a2-0000-7000-8000-000000000000","conversation_id":"x","seq":1,"stream_id":"1-0","sender_id":"x","client_msg_id":"pgb","body":{"t":1700000000000000000,"k":123456,"text":"novabench throughput probe"},"created_at":"2026-11-29T12:00:00.123456Z"}', 'UTF8'));
UPDATE shape.conversations SET last_seq = :seq::bigint, version = :ver::bigint WHERE id = md5(:c::text)::uuid AND version = :ver::bigint - 1;
\endpipeline
COMMIT;
`

// shapeOneStatementScript writes the same rows in one statement (one round trip, no explicit
// transaction): the lower bound for Nova's schema.
const shapeOneStatementScript = `\set c random(1, 100)
\set k random(1, 2000000000)
WITH c AS (
  UPDATE shape.conversations SET last_seq = last_seq + 1, version = version + 1
   WHERE id = md5(:c::text)::uuid RETURNING id, last_seq, version
), e AS (
  INSERT INTO shape.events (aggregate_id, version, aggregate_type, event_id, event_type, data, occurred_at)
  SELECT id, version, 'conversation', gen_random_uuid(), 'conversation.message_posted.v1',
   '{"message":{"id":"0192d6a2-0000-7000-8000-000000000000","conversation_id":"x","seq":1,"stream_id":"1-0","sender_id":"x","client_msg_id":"pgb","body":{"t":1700000000000000000,"k":123456,"text":"novabench throughput probe"},"created_at":"2026-11-29T12:00:00.123456Z"}}', now() FROM c
), m AS (
  INSERT INTO shape.messages (conversation_id, seq, id, sender_id, client_msg_id, body, created_at)
  SELECT id, last_seq, gen_random_uuid(), md5('s' || :c::text)::uuid, 'pgb-' || :k::text || '-' || :client_id::text,
   '{"t":1700000000000000000,"k":123456,"text":"novabench throughput probe"}', now() FROM c
  ON CONFLICT (conversation_id, sender_id, client_msg_id) DO NOTHING RETURNING seq
)
INSERT INTO shape.outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
SELECT id, last_seq, gen_random_uuid(), md5('s' || :c::text)::uuid, now(),
 convert_to('{"id":"0192d6a2-0000-7000-8000-000000000000","conversation_id":"x","seq":1,"stream_id":"1-0","sender_id":"x","client_msg_id":"pgb","body":{"t":1700000000000000000,"k":123456,"text":"novabench throughput probe"},"created_at":"2026-11-29T12:00:00.123456Z"}', 'UTF8') FROM c;
`

// ShapeResult are pgbench runs of Nova's send transaction.
type ShapeResult struct {
	// Serial is one client: the Postgres part of one send's latency, with a C client.
	Serial       *PGBenchResult `json:"nova_send_transaction_one_client"`
	Tx           *PGBenchResult `json:"nova_send_transaction"`
	OneStatement *PGBenchResult `json:"one_statement_send,omitempty"`
	Error        string         `json:"error,omitempty"`
}

func (b *Bench) runShape(ctx context.Context, clients int, withOneStatement bool) *ShapeResult {
	res := &ShapeResult{}
	if _, err := b.env.DB.Exec(ctx, shapeSchemaSQL); err != nil {
		res.Error = "create shape schema: " + err.Error()
		return res
	}
	defer func() {
		_, _ = b.env.DB.Exec(context.WithoutCancel(ctx), `DROP SCHEMA shape CASCADE`)
	}()
	secs := int(b.cfg.ThroughputDur / time.Second)
	run := func(name, script string, clients, secs int) *PGBenchResult {
		path := filepath.Join(b.env.Dir, name+".sql")
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			return &PGBenchResult{Error: err.Error()}
		}
		b.log.Printf("baseline: pgbench -M prepared -c %d -T %d, %s", clients, secs, name)
		r := b.pgbenchArgs(ctx, path, clients, secs, "-M", "prepared")
		b.log.Printf("baseline: %s: %.0f tps, latency avg %.2f ms %s; cpu %s", name, r.TPS, r.LatencyAvgMs, r.Error, r.CPU)
		return r
	}
	res.Serial = run("nova-send-transaction", shapeTxScript, 1, min(3, secs))
	if ctx.Err() == nil {
		res.Tx = run("nova-send-transaction", shapeTxScript, clients, secs)
	}
	if withOneStatement && ctx.Err() == nil {
		res.OneStatement = run("one-statement-send", shapeOneStatementScript, clients, secs)
	}
	return res
}

func (s *ShapeResult) String() string {
	if s == nil || s.Tx == nil {
		return ""
	}
	return fmt.Sprintf("%.0f tps", s.Tx.TPS)
}
