-- A trip's payment (one per trip: its card authorization, then what was captured) and the
-- double-entry ledger (domain::ledger): every movement a transaction of entries summing to zero.
CREATE TABLE payments (
    trip_id TEXT PRIMARY KEY,
    rider_id TEXT NOT NULL,
    driver_id TEXT,
    intent_id TEXT,
    payment_method TEXT NOT NULL,
    status TEXT NOT NULL,
    held BIGINT NOT NULL,
    captured BIGINT NOT NULL,
    refunded BIGINT NOT NULL,
    charge_kind TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX payments_rider ON payments (rider_id, created_at);
CREATE INDEX payments_intent ON payments (intent_id);

CREATE TABLE ledger_entries (
    seq BIGSERIAL PRIMARY KEY,
    txn_id TEXT NOT NULL,
    trip_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account, at);
CREATE INDEX ledger_entries_trip ON ledger_entries (trip_id);

-- Provider events already handled (webhooks arrive at least once).
CREATE TABLE webhook_events (
    event_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
