-- +goose Up
-- State row of each ClientSync aggregate (its events are in the events table, aggregate_type
-- 'client_sync'): how far one client of one user has acknowledged one conversation.
CREATE TABLE client_sync (
    user_id         uuid        NOT NULL,
    client_id       uuid        NOT NULL,
    conversation_id uuid        NOT NULL,
    aggregate_id    uuid        NOT NULL UNIQUE,
    acked_seq       bigint      NOT NULL,
    synced_at       timestamptz NOT NULL,
    version         bigint      NOT NULL,
    PRIMARY KEY (user_id, client_id, conversation_id)
);

-- +goose Down
DROP TABLE client_sync;
