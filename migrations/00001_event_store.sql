-- +goose Up
-- Every change of every aggregate, in order. (aggregate_id, version) is the optimistic-concurrency check.
CREATE TABLE events (
    aggregate_id   uuid        NOT NULL,
    version        bigint      NOT NULL,
    aggregate_type text        NOT NULL,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    data           json        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    PRIMARY KEY (aggregate_id, version)
);

-- The compact state row of each conversation (a snapshot kept current in the append transaction),
-- so loading a conversation never replays its history.
CREATE TABLE conversations (
    id           uuid        PRIMARY KEY,
    title        text        NOT NULL,
    participants uuid[]      NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seq     bigint      NOT NULL,
    version      bigint      NOT NULL
);

-- Read model: which conversations a user is in.
CREATE TABLE conversation_members (
    user_id         uuid NOT NULL,
    conversation_id uuid NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);

-- Read model: history by conversation and seq. The unique key makes a send idempotent forever.
CREATE TABLE messages (
    conversation_id uuid        NOT NULL,
    seq             bigint      NOT NULL,
    id              uuid        NOT NULL,
    sender_id       uuid        NOT NULL,
    client_msg_id   text        NOT NULL,
    body            json        NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_msg_id)
);

-- Transactional outbox: written with the events, deleted by the relay once Redis holds the entry.
CREATE TABLE outbox (
    id              bigserial   PRIMARY KEY,
    conversation_id uuid        NOT NULL,
    seq             bigint      NOT NULL,
    message_id      uuid        NOT NULL,
    sender_id       uuid        NOT NULL,
    created_at      timestamptz NOT NULL,
    payload         bytea       NOT NULL
);

-- Outbox rows the relay could not decode, set aside so the rows behind them flow.
CREATE TABLE outbox_dead (
    id              bigint      PRIMARY KEY,
    conversation_id uuid        NOT NULL,
    seq             bigint      NOT NULL,
    payload         bytea       NOT NULL,
    reason          text        NOT NULL,
    moved_at        timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE outbox_dead;
DROP TABLE outbox;
DROP TABLE messages;
DROP TABLE conversation_members;
DROP TABLE conversations;
DROP TABLE events;
