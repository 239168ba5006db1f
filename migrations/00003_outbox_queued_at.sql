-- +goose Up
-- When each outbox row was written, by the database's clock. The relay's check for a leader that
-- stalls, and the outbox's age in the metrics, compare it with the database's clock: created_at
-- is the message's time, set by the sending instance's clock, which may run behind (rows look
-- stalled at once, and every instance relays them) or ahead (a frozen leader's rows are taken
-- over late).
-- The column is added with a stable default, which fills the rows already there without
-- rewriting the table; new rows then take the time of their INSERT (clock_timestamp(), not the
-- transaction's start: a send that waited on a lock is not taken for a stalled leader's).
ALTER TABLE outbox ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE outbox ALTER COLUMN queued_at SET DEFAULT clock_timestamp();

-- +goose Down
ALTER TABLE outbox DROP COLUMN queued_at;
