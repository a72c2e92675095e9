-- The identity service's tables (its own SQLite file, identity.db).
-- One account per email (stored trimmed and lower-cased); the password only as an Argon2id PHC string.
CREATE TABLE accounts (
    id              TEXT PRIMARY KEY NOT NULL,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('rider', 'driver')),
    password_hash   TEXT NOT NULL,
    vehicle_package TEXT,
    vehicle_plate   TEXT,
    vehicle_model   TEXT,
    created_at_ms   INTEGER NOT NULL
);

-- Refresh tokens by their SHA-256 (hex): the token itself is only ever in the client's hands.
CREATE TABLE refresh_tokens (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    issued_at_ms  INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE INDEX refresh_tokens_by_account ON refresh_tokens (account_id);

-- Login attempts not (yet) known to have succeeded, for the per-email rate limit.
CREATE TABLE login_attempts (
    id    TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX login_attempts_by_email ON login_attempts (email, at_ms);
CREATE INDEX login_attempts_by_time ON login_attempts (at_ms);
