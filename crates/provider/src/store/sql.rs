//! The SQL both stores run (`$n` parameters work in SQLite and PostgreSQL alike), as one macro
//! implementing `ProviderStore` for a type with a `pool` field. Every number is bound and read as
//! `i64` (SQLite INTEGER, PostgreSQL BIGINT); objects are stored as their API JSON, with the
//! columns the queries select on beside it.
//!
//! Every transaction writes first: in SQLite that takes the write lock at once (waiting, not
//! failing, on a busy database) instead of upgrading a read lock mid-transaction.

use super::StoreError;
use crate::model::{Event, PaymentIntent, Refund};

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

pub(super) fn decode_intent(body: &str) -> Result<PaymentIntent, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Backend(format!("stored payment intent: {e}")))
}

pub(super) fn decode_refund(body: &str) -> Result<Refund, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Backend(format!("stored refund: {e}")))
}

pub(super) fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("version {v} out of range")))
}

pub(super) fn stored_version(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Backend(format!("stored version {v}")))
}

pub(super) fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// An event as its delivery row: `(event_id, type, body)`.
pub(super) fn event_row(event: &Event) -> Result<(String, &'static str, String), StoreError> {
    Ok((event.id.clone(), event.kind.as_str(), encode(event)?))
}

macro_rules! impl_provider_store {
    ($store:ty) => {
        impl $store {
            /// Each event as a pending delivery, due at once (same transaction as the change).
            async fn insert_events(
                tx: &mut super::Connection<Self>,
                events: &[crate::model::Event],
            ) -> Result<(), super::StoreError> {
                let now = platform::clock::now().as_millis();
                for event in events {
                    let (id, kind, body) = sql::event_row(event)?;
                    sqlx::query(
                        "INSERT INTO webhook_deliveries \
                         (event_id, event_type, body, state, attempts, created_ms, next_attempt_ms) \
                         VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
                    )
                    .bind(id)
                    .bind(kind)
                    .bind(body)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                Ok(())
            }

            /// Replaces the intent if it is still at `expected_version`; the new version.
            async fn compare_and_set(
                tx: &mut super::Connection<Self>,
                next: &crate::model::PaymentIntent,
                expected_version: u64,
            ) -> Result<u64, super::StoreError> {
                let version = expected_version.saturating_add(1);
                let changed = sqlx::query(
                    "UPDATE payment_intents SET status = $1, version = $2, body = $3 \
                     WHERE id = $4 AND version = $5",
                )
                .bind(next.status.as_str())
                .bind(sql::version(version)?)
                .bind(sql::encode(next)?)
                .bind(&next.id)
                .bind(sql::version(expected_version)?)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed != 1 {
                    return Err(super::StoreError::Stale);
                }
                Ok(version)
            }

            // The writes: transaction bodies, run where the store's writes run (`Writes`: a
            // group commit of SQLite's on its lane, where a body may run twice; a transaction of
            // PostgreSQL's pool here), which commits or rolls back each. `ProviderStore`'s methods send them there.

            async fn insert_intent_in(
                conn: &mut super::Connection<Self>,
                intent: &crate::model::PaymentIntent,
                events: &[crate::model::Event],
            ) -> Result<(), super::StoreError> {
                sqlx::query(
                    "INSERT INTO payment_intents (id, status, version, created, expires_at, body) \
                     VALUES ($1, $2, 1, $3, $4, $5)",
                )
                .bind(&intent.id)
                .bind(intent.status.as_str())
                .bind(intent.created)
                .bind(intent.authorization_expires_at)
                .bind(sql::encode(intent)?)
                .execute(&mut *conn)
                .await?;
                Self::insert_events(conn, events).await?;
                Ok(())
            }

            async fn update_intent_in(
                conn: &mut super::Connection<Self>,
                next: &crate::model::PaymentIntent,
                expected_version: u64,
                events: &[crate::model::Event],
            ) -> Result<u64, super::StoreError> {
                let version = Self::compare_and_set(conn, next, expected_version).await?;
                Self::insert_events(conn, events).await?;
                Ok(version)
            }

            async fn insert_refund_in(
                conn: &mut super::Connection<Self>,
                refund: &crate::model::Refund,
                intent: &crate::model::PaymentIntent,
                expected_version: u64,
                events: &[crate::model::Event],
            ) -> Result<(), super::StoreError> {
                Self::compare_and_set(conn, intent, expected_version).await?;
                sqlx::query(
                    "INSERT INTO refunds (id, payment_intent, created, body) VALUES ($1, $2, $3, $4)",
                )
                .bind(&refund.id)
                .bind(&refund.payment_intent)
                .bind(refund.created)
                .bind(sql::encode(refund)?)
                .execute(&mut *conn)
                .await?;
                Self::insert_events(conn, events).await?;
                Ok(())
            }

            async fn begin_request_in(
                conn: &mut super::Connection<Self>,
                request: &super::KeyedRequest,
                times: super::KeyTimes,
            ) -> Result<super::Begun, super::StoreError> {
                // A few rounds: a row deleted or taken over between our statements is looked at
                // again.
                for _ in 0..4 {
                    let owner = uuid::Uuid::now_v7().simple().to_string();
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency_keys \
                         (scope, idem_key, fingerprint, owner, created_ms, locked_until_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, idem_key) DO NOTHING",
                    )
                    .bind(&request.scope)
                    .bind(&request.key)
                    .bind(&request.fingerprint)
                    .bind(&owner)
                    .bind(times.now_ms)
                    .bind(times.lease_until_ms)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        return Ok(super::Begun::Started { owner });
                    }
                    let row: Option<(String, String, i64, i64, Option<i64>, Option<String>)> =
                        sqlx::query_as(
                            "SELECT fingerprint, owner, created_ms, locked_until_ms, status, body \
                             FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
                        )
                        .bind(&request.scope)
                        .bind(&request.key)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let Some((fingerprint, held_by, created_ms, locked_until_ms, status, body)) =
                        row
                    else {
                        continue;
                    };
                    let expired = created_ms < times.expired_before_ms;
                    let abandoned = status.is_none() && locked_until_ms <= times.now_ms;
                    if expired || abandoned {
                        let taken = sqlx::query(
                            "UPDATE idempotency_keys SET fingerprint = $1, owner = $2, \
                             created_ms = $3, locked_until_ms = $4, status = NULL, body = NULL \
                             WHERE scope = $5 AND idem_key = $6 AND owner = $7",
                        )
                        .bind(&request.fingerprint)
                        .bind(&owner)
                        .bind(times.now_ms)
                        .bind(times.lease_until_ms)
                        .bind(&request.scope)
                        .bind(&request.key)
                        .bind(&held_by)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                        if taken == 1 {
                            return Ok(super::Begun::Started { owner });
                        }
                        continue;
                    }
                    if fingerprint != request.fingerprint {
                        return Ok(super::Begun::Mismatch);
                    }
                    return Ok(match (status, body) {
                        (Some(status), Some(body)) => super::Begun::Replay {
                            status: u16::try_from(status).map_err(|_| {
                                super::StoreError::Backend(format!("stored status {status}"))
                            })?,
                            body,
                        },
                        _ => super::Begun::InFlight,
                    });
                }
                // Changing under us every time: as if the first request were still running.
                Ok(super::Begun::InFlight)
            }

            async fn finish_request_in(
                conn: &mut super::Connection<Self>,
                request: &super::KeyedRequest,
                owner: &str,
                status: u16,
                body: &str,
            ) -> Result<(), super::StoreError> {
                sqlx::query(
                    "UPDATE idempotency_keys SET status = $1, body = $2 \
                     WHERE scope = $3 AND idem_key = $4 AND owner = $5",
                )
                .bind(i64::from(status))
                .bind(body)
                .bind(&request.scope)
                .bind(&request.key)
                .bind(owner)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn release_request_in(
                conn: &mut super::Connection<Self>,
                request: &super::KeyedRequest,
                owner: &str,
            ) -> Result<(), super::StoreError> {
                sqlx::query(
                    "DELETE FROM idempotency_keys \
                     WHERE scope = $1 AND idem_key = $2 AND owner = $3 AND status IS NULL",
                )
                .bind(&request.scope)
                .bind(&request.key)
                .bind(owner)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn forget_requests_in(
                conn: &mut super::Connection<Self>,
                before_ms: i64,
            ) -> Result<u64, super::StoreError> {
                Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_ms < $1")
                    .bind(before_ms)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected())
            }

            async fn claim_deliveries_in(
                conn: &mut super::Connection<Self>,
                now_ms: i64,
                limit: u32,
                claim_until_ms: i64,
            ) -> Result<Vec<super::Delivery>, super::StoreError> {
                let due: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT id, next_attempt_ms FROM webhook_deliveries \
                     WHERE state = 'pending' AND next_attempt_ms <= $1 \
                     ORDER BY next_attempt_ms, id LIMIT $2",
                )
                .bind(now_ms)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
                let mut claimed = Vec::with_capacity(due.len());
                for (id, seen_next_attempt) in due {
                    // A compare-and-set on the due time: of two instances that saw the row due,
                    // one moves it to `claim_until_ms` and the other then matches nothing.
                    let row: Option<(String, String, i64)> = sqlx::query_as(
                        "UPDATE webhook_deliveries \
                         SET attempts = attempts + 1, next_attempt_ms = $1 \
                         WHERE id = $2 AND state = 'pending' AND next_attempt_ms = $3 \
                         RETURNING event_id, body, attempts",
                    )
                    .bind(claim_until_ms)
                    .bind(id)
                    .bind(seen_next_attempt)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some((event_id, body, attempts)) = row {
                        claimed.push(super::Delivery {
                            id,
                            event_id,
                            body,
                            attempts: sql::count(attempts),
                        });
                    }
                }
                Ok(claimed)
            }

            async fn delivery_succeeded_in(
                conn: &mut super::Connection<Self>,
                id: i64,
                at_ms: i64,
            ) -> Result<(), super::StoreError> {
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = $1, finished_ms = $2, last_error = NULL \
                     WHERE id = $3",
                )
                .bind(super::DeliveryState::Delivered.as_str())
                .bind(at_ms)
                .bind(id)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn delivery_failed_in(
                conn: &mut super::Connection<Self>,
                id: i64,
                error: &str,
                retry_at_ms: Option<i64>,
                at_ms: i64,
            ) -> Result<(), super::StoreError> {
                match retry_at_ms {
                    Some(retry_at) => {
                        sqlx::query(
                            "UPDATE webhook_deliveries SET next_attempt_ms = $1, last_error = $2 \
                             WHERE id = $3 AND state = 'pending'",
                        )
                        .bind(retry_at)
                        .bind(error)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?
                    }
                    None => {
                        sqlx::query(
                            "UPDATE webhook_deliveries SET state = $1, finished_ms = $2, \
                             last_error = $3 WHERE id = $4 AND state = 'pending'",
                        )
                        .bind(super::DeliveryState::Failed.as_str())
                        .bind(at_ms)
                        .bind(error)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?
                    }
                };
                Ok(())
            }

            async fn forget_deliveries_in(
                conn: &mut super::Connection<Self>,
                before_ms: i64,
            ) -> Result<u64, super::StoreError> {
                Ok(sqlx::query(
                    "DELETE FROM webhook_deliveries \
                     WHERE state IN ('delivered', 'failed') AND finished_ms < $1",
                )
                .bind(before_ms)
                .execute(&mut *conn)
                .await?
                .rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl super::ProviderStore for $store {
            async fn insert_intent(
                &self,
                intent: &crate::model::PaymentIntent,
                events: &[crate::model::Event],
            ) -> Result<(), super::StoreError> {
                self.writes
                    .transaction((intent.clone(), events.to_vec()), |conn, (intent, events)| {
                        Box::pin(Self::insert_intent_in(conn, intent, events))
                    })
                    .await
            }

            async fn intent(
                &self,
                id: &str,
            ) -> Result<Option<super::StoredIntent>, super::StoreError> {
                let row: Option<(String, i64)> =
                    sqlx::query_as("SELECT body, version FROM payment_intents WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(|(body, version)| {
                    Ok(super::StoredIntent {
                        intent: sql::decode_intent(&body)?,
                        version: sql::stored_version(version)?,
                    })
                })
                .transpose()
            }

            async fn update_intent(
                &self,
                next: &crate::model::PaymentIntent,
                expected_version: u64,
                events: &[crate::model::Event],
            ) -> Result<u64, super::StoreError> {
                self.writes
                    .transaction(
                        (next.clone(), expected_version, events.to_vec()),
                        |conn, (next, expected_version, events)| {
                            Box::pin(Self::update_intent_in(conn, next, *expected_version, events))
                        },
                    )
                    .await
            }

            async fn insert_refund(
                &self,
                refund: &crate::model::Refund,
                intent: &crate::model::PaymentIntent,
                expected_version: u64,
                events: &[crate::model::Event],
            ) -> Result<(), super::StoreError> {
                self.writes
                    .transaction(
                        (refund.clone(), intent.clone(), expected_version, events.to_vec()),
                        |conn, (refund, intent, expected_version, events)| {
                            Box::pin(Self::insert_refund_in(conn, refund, intent, *expected_version, events))
                        },
                    )
                    .await
            }

            async fn refund(
                &self,
                id: &str,
            ) -> Result<Option<crate::model::Refund>, super::StoreError> {
                let body: Option<String> =
                    sqlx::query_scalar("SELECT body FROM refunds WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                body.map(|b| sql::decode_refund(&b)).transpose()
            }

            async fn expired_intents(
                &self,
                now_s: i64,
                limit: u32,
            ) -> Result<Vec<super::StoredIntent>, super::StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT body, version FROM payment_intents \
                     WHERE status IN ('requires_capture', 'requires_action') AND expires_at <= $1 \
                     ORDER BY expires_at, id LIMIT $2",
                )
                .bind(now_s)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(body, version)| {
                        Ok(super::StoredIntent {
                            intent: sql::decode_intent(&body)?,
                            version: sql::stored_version(version)?,
                        })
                    })
                    .collect()
            }

            async fn begin_request(
                &self,
                request: &super::KeyedRequest,
                times: super::KeyTimes,
            ) -> Result<super::Begun, super::StoreError> {
                self.writes
                    .transaction((request.clone(), times), |conn, (request, times)| {
                        Box::pin(Self::begin_request_in(conn, request, *times))
                    })
                    .await
            }

            async fn finish_request(
                &self,
                request: &super::KeyedRequest,
                owner: &str,
                status: u16,
                body: &str,
            ) -> Result<(), super::StoreError> {
                self.writes
                    .transaction(
                        (request.clone(), owner.to_owned(), status, body.to_owned()),
                        |conn, (request, owner, status, body)| {
                            Box::pin(Self::finish_request_in(conn, request, owner, *status, body))
                        },
                    )
                    .await
            }

            async fn release_request(
                &self,
                request: &super::KeyedRequest,
                owner: &str,
            ) -> Result<(), super::StoreError> {
                self.writes
                    .transaction((request.clone(), owner.to_owned()), |conn, (request, owner)| {
                        Box::pin(Self::release_request_in(conn, request, owner))
                    })
                    .await
            }

            async fn forget_requests(&self, before_ms: i64) -> Result<u64, super::StoreError> {
                self.writes
                    .transaction(before_ms, |conn, before_ms| {
                        Box::pin(Self::forget_requests_in(conn, *before_ms))
                    })
                    .await
            }

            async fn claim_deliveries(
                &self,
                now_ms: i64,
                limit: u32,
                claim_until_ms: i64,
            ) -> Result<Vec<super::Delivery>, super::StoreError> {
                self.writes
                    .transaction(
                        (now_ms, limit, claim_until_ms),
                        |conn, (now_ms, limit, claim_until_ms)| {
                            Box::pin(Self::claim_deliveries_in(conn, *now_ms, *limit, *claim_until_ms))
                        },
                    )
                    .await
            }

            async fn delivery_succeeded(
                &self,
                id: i64,
                at_ms: i64,
            ) -> Result<(), super::StoreError> {
                self.writes
                    .transaction((id, at_ms), |conn, (id, at_ms)| {
                        Box::pin(Self::delivery_succeeded_in(conn, *id, *at_ms))
                    })
                    .await
            }

            async fn delivery_failed(
                &self,
                id: i64,
                error: &str,
                retry_at_ms: Option<i64>,
                at_ms: i64,
            ) -> Result<(), super::StoreError> {
                self.writes
                    .transaction(
                        (id, error.to_owned(), retry_at_ms, at_ms),
                        |conn, (id, error, retry_at_ms, at_ms)| {
                            Box::pin(Self::delivery_failed_in(conn, *id, error, *retry_at_ms, *at_ms))
                        },
                    )
                    .await
            }

            async fn delivery(
                &self,
                event_id: &str,
            ) -> Result<Option<super::DeliveryStatus>, super::StoreError> {
                let row: Option<(String, String, i64, i64, Option<String>)> = sqlx::query_as(
                    "SELECT event_id, state, attempts, next_attempt_ms, last_error \
                     FROM webhook_deliveries WHERE event_id = $1",
                )
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|(event_id, state, attempts, next_attempt_ms, last_error)| {
                    Ok(super::DeliveryStatus {
                        event_id,
                        state: super::DeliveryState::parse(&state)?,
                        attempts: sql::count(attempts),
                        next_attempt_ms,
                        last_error,
                    })
                })
                .transpose()
            }

            async fn forget_deliveries(&self, before_ms: i64) -> Result<u64, super::StoreError> {
                self.writes
                    .transaction(before_ms, |conn, before_ms| {
                        Box::pin(Self::forget_deliveries_in(conn, *before_ms))
                    })
                    .await
            }
        }
    };
}

pub(super) use impl_provider_store;
