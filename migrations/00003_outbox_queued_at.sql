-- +goose Up
-- When each outbox row was queued, by the database's clock. The relay's check for a leader that
-- stalls compares it with the database's now(): created_at is the message's time, set by the
-- sending instance's clock, which may run behind (rows look stalled at once, and every
-- instance relays them) or ahead (a frozen leader's rows are taken over late).
-- now() is stable, so the column is added without rewriting the table.
ALTER TABLE outbox ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now();

-- +goose Down
ALTER TABLE outbox DROP COLUMN queued_at;
