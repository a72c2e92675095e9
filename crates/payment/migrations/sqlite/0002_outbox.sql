-- The transactional outbox (platform::outbox): payment events announced with the payment change they
-- record, published after the commit and relayed again if that publish is lost.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    subject TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    headers TEXT NOT NULL,
    payload BLOB NOT NULL
);
