#!/bin/bash
# Creates the scratch database nova_exp: the migrations' schema, a second outbox keyed by
# (conversation, seq), the bench's one-row table, and 100 conversations.
set -e
cd "$(dirname "$0")/../../.."
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS nova_exp" -c "CREATE DATABASE nova_exp"
sed -n '/+goose Up/,/+goose Down/p' migrations/00001_event_store.sql | psql -h 127.0.0.1 -U postgres -q nova_exp
psql -h 127.0.0.1 -U postgres -q nova_exp <<'SQL'
CREATE TABLE bench_messages (conversation_id uuid NOT NULL, seq bigint NOT NULL, id uuid NOT NULL, sender_id uuid NOT NULL, client_msg_id text NOT NULL, body json NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (conversation_id, seq), UNIQUE (conversation_id, sender_id, client_msg_id));
CREATE TABLE outbox2 (conversation_id uuid NOT NULL, seq bigint NOT NULL, message_id uuid NOT NULL, sender_id uuid NOT NULL, created_at timestamptz NOT NULL, payload bytea NOT NULL, PRIMARY KEY (conversation_id, seq));
CREATE TABLE convs_idx (n int PRIMARY KEY, id uuid NOT NULL);
INSERT INTO conversations SELECT gen_random_uuid(), 'c', ARRAY[gen_random_uuid(), gen_random_uuid()], now(), 0, 1 FROM generate_series(1,100);
INSERT INTO convs_idx SELECT row_number() over (), id FROM conversations;
SQL
