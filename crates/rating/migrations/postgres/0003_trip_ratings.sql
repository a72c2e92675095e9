-- Product ratings: after a completed trip its rider rates the driver and its driver the rider,
-- once each; each account's count and total kept by atomic increments (no lost updates).
CREATE TABLE trip_ratings (
    trip_id TEXT NOT NULL,
    rater_role TEXT NOT NULL,
    rater_id TEXT NOT NULL,
    ratee_id TEXT NOT NULL,
    stars INTEGER NOT NULL,
    comment TEXT,
    tags TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (trip_id, rater_role)
);
CREATE INDEX trip_ratings_ratee ON trip_ratings (ratee_id, created_at);

CREATE TABLE account_ratings (
    account_id TEXT PRIMARY KEY,
    count BIGINT NOT NULL,
    total BIGINT NOT NULL
);
