-- The identity service's tables, in its own schema (the connection's search_path).
-- One account per email (stored trimmed and lower-cased); the password only as an Argon2id PHC string.
CREATE TABLE accounts (
    id              UUID PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('rider', 'driver')),
    password_hash   TEXT NOT NULL,
    vehicle_package TEXT,
    vehicle_plate   TEXT,
    vehicle_model   TEXT,
    created_at_ms   BIGINT NOT NULL
);

-- Refresh tokens by their SHA-256 (hex): the token itself is only ever in the client's hands.
CREATE TABLE refresh_tokens (
    token_hash    TEXT PRIMARY KEY,
    account_id    UUID NOT NULL REFERENCES accounts (id),
    issued_at_ms  BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_tokens_by_account ON refresh_tokens (account_id);

-- Login attempts not (yet) known to have succeeded, for the per-email rate limit.
CREATE TABLE login_attempts (
    id    UUID PRIMARY KEY,
    email TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_email ON login_attempts (email, at_ms);
CREATE INDEX login_attempts_by_time ON login_attempts (at_ms);
