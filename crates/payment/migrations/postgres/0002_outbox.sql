-- The transactional outbox (platform::outbox): payment events announced with the payment change they
-- record, published after the commit and relayed again (by any instance) if that publish is
-- lost.
CREATE TABLE outbox (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL,
    subject TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    headers TEXT NOT NULL,
    payload BYTEA NOT NULL
);
CREATE INDEX outbox_occurred_at ON outbox (occurred_at);
