-- Trips and the per-user notice log (see src/store/mod.rs for the invariants the indexes hold).
CREATE TABLE trips (
    id TEXT PRIMARY KEY,
    quote_id TEXT NOT NULL,
    rider_id TEXT NOT NULL,
    driver_id TEXT,
    active_driver TEXT,
    open_rider TEXT,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    requested_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX trips_quote_id_key ON trips (quote_id);
CREATE UNIQUE INDEX trips_active_driver_key ON trips (active_driver);
CREATE UNIQUE INDEX trips_open_rider_key ON trips (open_rider);
CREATE INDEX trips_rider ON trips (rider_id, requested_at);
CREATE INDEX trips_driver ON trips (driver_id, requested_at);
CREATE INDEX trips_status ON trips (status, requested_at);

CREATE TABLE trip_notices (
    id BIGSERIAL PRIMARY KEY,
    trip_id TEXT NOT NULL REFERENCES trips (id),
    rider_id TEXT,
    driver_id TEXT,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX trip_notices_rider ON trip_notices (rider_id, id);
CREATE INDEX trip_notices_driver ON trip_notices (driver_id, id);
