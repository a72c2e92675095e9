-- The transactional outbox (platform::outbox): trip notices written with the change they
-- announce, published after the commit and relayed again if that publish is lost.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    subject TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    headers TEXT NOT NULL,
    payload BLOB NOT NULL
);
