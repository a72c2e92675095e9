-- PaymentIntents: `body` is the API JSON; `status`, `version` (the compare-and-set of every
-- change) and `expires_at` (unix s: when an open authorization is canceled) are what queries
-- select on.
CREATE TABLE payment_intents (
    id         TEXT PRIMARY KEY NOT NULL,
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX payment_intents_open ON payment_intents (expires_at)
    WHERE status IN ('requires_capture', 'requires_action');

CREATE TABLE refunds (
    id             TEXT PRIMARY KEY NOT NULL,
    payment_intent TEXT NOT NULL REFERENCES payment_intents (id),
    created        INTEGER NOT NULL,
    body           TEXT NOT NULL
);
CREATE INDEX refunds_by_intent ON refunds (payment_intent);

-- Idempotency-Keys, per API key (`scope`): the first request's fingerprint, and its response
-- once it finished (`status` NULL while it runs, held by `owner` until `locked_until_ms`).
CREATE TABLE idempotency_keys (
    scope           TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    owner           TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    locked_until_ms INTEGER NOT NULL,
    status          INTEGER,
    body            TEXT,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ms);

-- The webhook outbox: one row per event, written with the change it reports; `pending` rows are
-- sent when `next_attempt_ms` comes (a claim moves it past the attempt).
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    finished_ms     INTEGER,
    last_error      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_ms) WHERE state <> 'pending';
