-- no-transaction
-- The admin role (operations, made by `rickshaw admin create`, never by sign-up). SQLite cannot
-- change a CHECK constraint, so the table is rebuilt, with foreign keys off meanwhile (they can
-- only be switched outside a transaction) and on again after.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE accounts_new (
    id              TEXT PRIMARY KEY NOT NULL,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('rider', 'driver', 'admin')),
    password_hash   TEXT NOT NULL,
    vehicle_package TEXT,
    vehicle_plate   TEXT,
    vehicle_model   TEXT,
    created_at_ms   INTEGER NOT NULL
);
INSERT INTO accounts_new (id, email, name, role, password_hash, vehicle_package, vehicle_plate,
                          vehicle_model, created_at_ms)
    SELECT id, email, name, role, password_hash, vehicle_package, vehicle_plate, vehicle_model,
           created_at_ms FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;
COMMIT;
PRAGMA foreign_keys = ON;
