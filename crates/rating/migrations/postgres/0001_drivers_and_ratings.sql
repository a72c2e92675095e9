-- The rating service's tables, in its own schema (the connection's search_path).
-- Drivers the rating service has heard of (from supply's DriverAvailable events): only a known
-- driver can be rated. `name` is the course protocol's identity; the car number can change.
CREATE TABLE drivers (
    name          TEXT PRIMARY KEY,
    car_number    TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    car_since_ms  BIGINT NOT NULL
);
CREATE INDEX drivers_by_car ON drivers (car_number, car_since_ms DESC);

CREATE TABLE ratings (
    id          UUID PRIMARY KEY,
    driver_name TEXT NOT NULL REFERENCES drivers (name),
    stars       SMALLINT NOT NULL CHECK (stars BETWEEN 1 AND 5),
    rated_at_ms BIGINT NOT NULL
);
CREATE INDEX ratings_by_driver ON ratings (driver_name);
