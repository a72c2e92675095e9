-- The audit log: one row per domain event, never changed or removed (the trigger refuses it).
-- `seq` orders events recorded in the same millisecond; `accounts` lists every account the event
-- concerns (JSON), and `audit_event_accounts` indexes them for the per-account query.
CREATE TABLE audit_events (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    kind TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    trip_id TEXT,
    accounts TEXT NOT NULL,
    data TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (occurred_at, seq);
CREATE INDEX audit_events_by_trip ON audit_events (trip_id, occurred_at, seq);
CREATE INDEX audit_events_by_kind ON audit_events (kind, occurred_at, seq);
CREATE TABLE audit_event_accounts (
    account_id TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (account_id, occurred_at, seq)
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
