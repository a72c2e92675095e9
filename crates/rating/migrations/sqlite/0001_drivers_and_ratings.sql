-- Drivers the rating service has heard of (from supply's DriverAvailable events): only a known
-- driver can be rated. `name` is the course protocol's identity; the car number can change.
CREATE TABLE drivers (
    name          TEXT PRIMARY KEY NOT NULL,
    car_number    TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    car_since_ms  INTEGER NOT NULL
);
CREATE INDEX drivers_by_car ON drivers (car_number, car_since_ms);

CREATE TABLE ratings (
    id          TEXT PRIMARY KEY NOT NULL,
    driver_name TEXT NOT NULL REFERENCES drivers (name),
    stars       INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
    rated_at_ms INTEGER NOT NULL
);
CREATE INDEX ratings_by_driver ON ratings (driver_name);
