-- Every refund of the provider's recorded once, by its id: whether the payment service asked for
-- it (an admin's refund) or the provider reported it (`charge.refunded`, a refund made there), and
-- whichever of the two comes first.
CREATE TABLE payment_refunds (
    refund_id TEXT PRIMARY KEY,
    trip_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX payment_refunds_trip ON payment_refunds (trip_id);
