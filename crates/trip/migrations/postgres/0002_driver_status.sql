-- Product drivers' last announced availability, so a restarted dispatcher knows who is online.
CREATE TABLE driver_status (
    driver_id TEXT PRIMARY KEY,
    package TEXT,
    online BOOLEAN NOT NULL,
    at BIGINT NOT NULL
);
