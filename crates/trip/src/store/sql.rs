//! The SQL both stores run (`$n` parameters work in SQLite and PostgreSQL alike), as one macro
//! implementing `TripStore` for a type with a `pool` field.

use domain::{AccountId, Timestamp};

use super::{NewNotice, StoreError, TripRecord};
use crate::TripNotice;

pub(super) fn encode(record: &TripRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|e| StoreError::Backend(e.to_string()))
}

pub(super) fn decode(body: &str) -> Result<TripRecord, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Backend(format!("stored trip: {e}")))
}

pub(super) fn id_text(id: &impl ToString) -> String {
    id.to_string()
}

pub(super) fn notice_body(notice: &NewNotice) -> Result<String, StoreError> {
    serde_json::to_string(&notice.trip).map_err(|e| StoreError::Backend(e.to_string()))
}

pub(super) fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("version {v} out of range")))
}

/// A stored notice row: `(id, kind, at, rider_id, driver_id, body)`.
pub(super) type NoticeRow = (i64, String, i64, Option<String>, Option<String>, String);

pub(super) fn notice_of(row: NoticeRow) -> Result<TripNotice, StoreError> {
    let (id, kind, at, rider, driver, body) = row;
    let parse = |raw: Option<String>| -> Result<Option<AccountId>, StoreError> {
        raw.map(|r| {
            r.parse()
                .map_err(|e| StoreError::Backend(format!("stored account id {r:?}: {e}")))
        })
        .transpose()
    };
    let recipients = [parse(rider)?, parse(driver)?]
        .into_iter()
        .flatten()
        .collect();
    Ok(TripNotice {
        id,
        kind: crate::NoticeKind::named(&kind)
            .ok_or_else(|| StoreError::Backend(format!("stored notice kind {kind:?}")))?,
        recipients,
        trip: serde_json::from_str(&body)
            .map_err(|e| StoreError::Backend(format!("stored notice: {e}")))?,
        at: Timestamp::from_millis(at),
    })
}

pub(super) fn notice_from_new(id: i64, notice: &NewNotice) -> TripNotice {
    TripNotice {
        id,
        kind: notice.kind,
        recipients: [notice.rider, notice.driver]
            .into_iter()
            .flatten()
            .collect(),
        trip: notice.trip.clone(),
        at: notice.at,
    }
}

macro_rules! impl_trip_store {
    ($store:ty) => {
        impl $store {
            /// Replaces the trip if it is still at `expected_version` (`Stale` otherwise).
            async fn compare_and_set(
                tx: &mut super::Connection<Self>,
                next: &super::TripRecord,
                expected_version: u64,
            ) -> Result<(), super::StoreError> {
                let changed = sqlx::query(
                    "UPDATE trips SET driver_id = $1, active_driver = $2, open_rider = $3, \
                     status = $4, version = $5, updated_at = $6, body = $7 \
                     WHERE id = $8 AND version = $9",
                )
                .bind(next.trip.state.driver().map(|d| sql::id_text(&d)))
                .bind(next.active_driver().map(|d| sql::id_text(&d)))
                .bind(next.open_rider().map(|r| sql::id_text(&r)))
                .bind(next.trip.state.name())
                .bind(sql::version(next.trip.version)?)
                .bind(next.updated_at.as_millis())
                .bind(sql::encode(next)?)
                .bind(sql::id_text(&next.id))
                .bind(sql::version(expected_version)?)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed != 1 {
                    return Err(super::StoreError::Stale);
                }
                Ok(())
            }

            /// One change of `update_many`'s careful path: the trip's compare-and-set, then its
            /// notices.
            async fn apply(
                tx: &mut super::Connection<Self>,
                change: &super::Change,
            ) -> Result<Vec<super::Stored>, super::StoreError> {
                Self::compare_and_set(tx, &change.next, change.expected_version).await?;
                Self::insert_notices(tx, change.next.id, &change.notices).await
            }

            /// All of `changes` in one statement each for the trips, the notices and the outbox
            /// (a dispatch round's chunk costs three round trips to the database, not three an
            /// offer). `Stale` if any trip is no longer at its expected version, the store's
            /// refusal if one meets a unique index: the caller rolls back and takes the careful
            /// path.
            async fn apply_all(
                tx: &mut super::Connection<Self>,
                changes: &[super::Change],
            ) -> Result<Vec<Vec<super::Stored>>, super::StoreError> {
                let mut rows = Vec::with_capacity(changes.len());
                for change in changes {
                    let next = &change.next;
                    rows.push((
                        sql::id_text(&next.id),
                        sql::version(change.expected_version)?,
                        next.trip.state.driver().map(|d| sql::id_text(&d)),
                        next.active_driver().map(|d| sql::id_text(&d)),
                        next.open_rider().map(|r| sql::id_text(&r)),
                        next.trip.state.name(),
                        sql::version(next.trip.version)?,
                        next.updated_at.as_millis(),
                        sql::encode(next)?,
                    ));
                }
                let mut update = sqlx::QueryBuilder::<<Self as super::Backend>::Db>::new(
                    "UPDATE trips SET driver_id = v.column3, active_driver = v.column4, \
                     open_rider = v.column5, status = v.column6, version = v.column7, \
                     updated_at = v.column8, body = v.column9 FROM (",
                );
                update.push_values(rows, |mut values, row| {
                    values
                        .push_bind(row.0)
                        .push_bind(row.1)
                        .push_bind(row.2)
                        .push_bind(row.3)
                        .push_bind(row.4)
                        .push_bind(row.5)
                        .push_bind(row.6)
                        .push_bind(row.7)
                        .push_bind(row.8);
                });
                update.push(
                    ") AS v WHERE trips.id = v.column1 AND trips.version = v.column2 \
                     RETURNING trips.id",
                );
                let changed: Vec<String> =
                    update.build_query_scalar().fetch_all(&mut *tx).await?;
                if changed.len() != changes.len() {
                    return Err(super::StoreError::Stale);
                }
                let notices: Vec<(domain::TripId, &super::NewNotice)> = changes
                    .iter()
                    .flat_map(|c| c.notices.iter().map(move |n| (c.next.id, n)))
                    .collect();
                let mut stored = Self::insert_all_notices(tx, &notices).await?.into_iter();
                Ok(changes
                    .iter()
                    .map(|c| stored.by_ref().take(c.notices.len()).collect())
                    .collect())
            }

            /// The notices of one trip in the log, each with its outbox row (same transaction).
            async fn insert_notices(
                tx: &mut super::Connection<Self>,
                trip: domain::TripId,
                notices: &[super::NewNotice],
            ) -> Result<Vec<super::Stored>, super::StoreError> {
                let notices: Vec<_> = notices.iter().map(|n| (trip, n)).collect();
                Self::insert_all_notices(tx, &notices).await
            }

            /// `notices` (each with its trip) in the log, then their outbox rows: one statement
            /// each, returned in order.
            async fn insert_all_notices(
                tx: &mut super::Connection<Self>,
                notices: &[(domain::TripId, &super::NewNotice)],
            ) -> Result<Vec<super::Stored>, super::StoreError> {
                if notices.is_empty() {
                    return Ok(Vec::new());
                }
                let mut rows = Vec::with_capacity(notices.len());
                for (trip, notice) in notices {
                    rows.push((
                        sql::id_text(trip),
                        notice.rider.map(|r| sql::id_text(&r)),
                        notice.driver.map(|d| sql::id_text(&d)),
                        notice.kind.as_str(),
                        notice.at.as_millis(),
                        sql::notice_body(notice)?,
                    ));
                }
                let mut insert = sqlx::QueryBuilder::<<Self as super::Backend>::Db>::new(
                    "INSERT INTO trip_notices (trip_id, rider_id, driver_id, kind, at, body) ",
                );
                insert.push_values(rows, |mut values, row| {
                    values
                        .push_bind(row.0)
                        .push_bind(row.1)
                        .push_bind(row.2)
                        .push_bind(row.3)
                        .push_bind(row.4)
                        .push_bind(row.5);
                });
                insert.push(" RETURNING id");
                let mut ids: Vec<i64> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
                // One statement numbers its rows in the order of its VALUES; RETURNING need not
                // list them in that order.
                ids.sort_unstable();
                if ids.len() != notices.len() {
                    return Err(super::StoreError::Backend(format!(
                        "the log returned {} ids for {} notices",
                        ids.len(),
                        notices.len()
                    )));
                }
                let notices: Vec<super::TripNotice> = ids
                    .into_iter()
                    .zip(notices)
                    .map(|(id, (_, notice))| sql::notice_from_new(id, notice))
                    .collect();
                // Stamped with the wall clock of the write: the relay's grace counts from it.
                let now = platform::clock::now();
                let envelopes = notices
                    .iter()
                    .map(|notice| {
                        platform::bus::Envelope::from_event(notice, platform::clock::new_id(), now)
                            .map_err(|e| super::StoreError::Backend(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let outbox = platform::outbox::write_many(&mut *tx, &envelopes).await?;
                Ok(notices
                    .into_iter()
                    .zip(outbox)
                    .map(|(notice, outbox)| super::Stored { notice, outbox })
                    .collect())
            }

            // The writes: transaction bodies, run where the store's writes run (`Writes`: a
            // group commit of SQLite's on its lane, where a body may run twice; a transaction of
            // PostgreSQL's pool here), which commits or rolls back each. `TripStore`'s methods send them there.

            async fn create_in(
                tx: &mut super::Connection<Self>,
                record: &super::TripRecord,
                notices: &[super::NewNotice],
            ) -> Result<Vec<super::Stored>, super::StoreError> {
                sqlx::query(
                    "INSERT INTO trips (id, quote_id, rider_id, driver_id, active_driver, \
                     open_rider, status, version, requested_at, updated_at, body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(sql::id_text(&record.id))
                .bind(sql::id_text(&record.quote_id))
                .bind(sql::id_text(&record.trip.rider))
                .bind(record.trip.state.driver().map(|d| sql::id_text(&d)))
                .bind(record.active_driver().map(|d| sql::id_text(&d)))
                .bind(record.open_rider().map(|r| sql::id_text(&r)))
                .bind(record.trip.state.name())
                .bind(sql::version(record.trip.version)?)
                .bind(record.trip.requested_at.as_millis())
                .bind(record.updated_at.as_millis())
                .bind(sql::encode(record)?)
                .execute(&mut *tx)
                .await?;
                Self::insert_notices(tx, record.id, notices).await
            }

            async fn update_in(
                tx: &mut super::Connection<Self>,
                next: &super::TripRecord,
                expected_version: u64,
                notices: &[super::NewNotice],
            ) -> Result<Vec<super::Stored>, super::StoreError> {
                Self::compare_and_set(tx, next, expected_version).await?;
                Self::insert_notices(tx, next.id, notices).await
            }

            async fn update_many_in(
                conn: &mut super::Connection<Self>,
                changes: &[super::Change],
            ) -> Result<Vec<Result<Vec<super::Stored>, super::StoreError>>, super::StoreError> {
                use sqlx::Connection;
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                // Optimistically all at once (a change refused is rare: another instance's
                // claim, an accept racing the round): three statements in all, in a savepoint of
                // their own, none a change.
                {
                    let mut tx = conn.begin().await?;
                    match Self::apply_all(&mut *tx, changes).await {
                        Ok(stored) => {
                            tx.commit().await?;
                            return Ok(stored.into_iter().map(Ok).collect());
                        }
                        Err(
                            super::StoreError::Stale
                            | super::StoreError::DriverBusy
                            | super::StoreError::RiderBusy
                            | super::StoreError::QuoteUsed,
                        ) => tx.rollback().await?,
                        Err(e) => return Err(e),
                    }
                }
                // One was refused: again, each change in a savepoint, so one that loses its
                // compare-and-set or meets a unique index is rolled back alone and the others
                // commit together.
                let mut outcomes = Vec::with_capacity(changes.len());
                for change in changes {
                    let mut savepoint = conn.begin().await?;
                    match Self::apply(&mut *savepoint, change).await {
                        Ok(stored) => {
                            savepoint.commit().await?;
                            outcomes.push(Ok(stored));
                        }
                        Err(e) => {
                            savepoint.rollback().await?;
                            outcomes.push(Err(e));
                        }
                    }
                }
                Ok(outcomes)
            }

            async fn set_driver_statuses_in(
                tx: &mut super::Connection<Self>,
                statuses: &[(domain::AccountId, Option<domain::Package>, domain::Timestamp)],
            ) -> Result<(), super::StoreError> {
                // One row a driver (PostgreSQL refuses a statement that updates a row twice):
                // the newest status of each.
                type Status = (Option<domain::Package>, domain::Timestamp);
                let mut newest: std::collections::HashMap<domain::AccountId, Status> =
                    std::collections::HashMap::with_capacity(statuses.len());
                for &(driver, package, at) in statuses {
                    let entry = newest.entry(driver).or_insert((package, at));
                    if at >= entry.1 {
                        *entry = (package, at);
                    }
                }
                if newest.is_empty() {
                    return Ok(());
                }
                let mut upsert = sqlx::QueryBuilder::<<Self as super::Backend>::Db>::new(
                    "INSERT INTO driver_status (driver_id, package, online, at) ",
                );
                upsert.push_values(newest, |mut values, (driver, (package, at))| {
                    values
                        .push_bind(sql::id_text(&driver))
                        .push_bind(package.map(domain::Package::name))
                        .push_bind(package.is_some())
                        .push_bind(at.as_millis());
                });
                upsert.push(
                    " ON CONFLICT (driver_id) DO UPDATE SET \
                     package = excluded.package, online = excluded.online, at = excluded.at \
                     WHERE driver_status.at <= excluded.at",
                );
                upsert.build().execute(&mut *tx).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl super::TripStore for $store {
            async fn create(
                &self,
                record: &super::TripRecord,
                notices: &[super::NewNotice],
            ) -> Result<Vec<super::Stored>, super::StoreError> {
                self.writes
                    .transaction((record.clone(), notices.to_vec()), |tx, (record, notices)| {
                        Box::pin(Self::create_in(tx, record, notices))
                    })
                    .await
            }

            async fn update(
                &self,
                next: &super::TripRecord,
                expected_version: u64,
                notices: &[super::NewNotice],
            ) -> Result<Vec<super::Stored>, super::StoreError> {
                let data = (next.clone(), expected_version, notices.to_vec());
                self.writes
                    .transaction(data, |tx, (next, expected_version, notices)| {
                        Box::pin(Self::update_in(tx, next, *expected_version, notices))
                    })
                    .await
            }

            async fn update_many(
                &self,
                changes: &[super::Change],
            ) -> Result<Vec<Result<Vec<super::Stored>, super::StoreError>>, super::StoreError> {
                self.writes
                    .transaction(changes.to_vec(), |tx, changes| {
                        Box::pin(Self::update_many_in(tx, changes))
                    })
                    .await
            }

            async fn get(
                &self,
                id: domain::TripId,
            ) -> Result<Option<super::TripRecord>, super::StoreError> {
                let body: Option<String> = sqlx::query_scalar("SELECT body FROM trips WHERE id = $1")
                .bind(sql::id_text(&id))
                .fetch_optional(&self.pool)
                .await?;
                body.map(|b| sql::decode(&b)).transpose()
            }

            async fn by_quote(
                &self,
                quote_id: uuid::Uuid,
            ) -> Result<Option<super::TripRecord>, super::StoreError> {
                let body: Option<String> = sqlx::query_scalar("SELECT body FROM trips WHERE quote_id = $1")
                .bind(sql::id_text(&quote_id))
                .fetch_optional(&self.pool)
                .await?;
                body.map(|b| sql::decode(&b)).transpose()
            }

            fn concurrent_writes(&self) -> usize {
                <Self as super::Backend>::CONCURRENT_WRITES
            }

            async fn list_for(
                &self,
                account: domain::AccountId,
                limit: u32,
            ) -> Result<Vec<super::TripRecord>, super::StoreError> {
                let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM trips WHERE rider_id = $1 OR driver_id = $1 \
                     ORDER BY requested_at DESC, id DESC LIMIT $2")
                .bind(sql::id_text(&account))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                bodies.iter().map(|b| sql::decode(b)).collect()
            }

            async fn open_trips(
                &self,
                limit: u32,
            ) -> Result<Vec<super::TripRecord>, super::StoreError> {
                let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM trips WHERE status IN ('searching', 'offered') \
                     ORDER BY requested_at, id LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                bodies.iter().map(|b| sql::decode(b)).collect()
            }

            async fn busy_drivers(&self) -> Result<Vec<domain::AccountId>, super::StoreError> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT active_driver FROM trips WHERE active_driver IS NOT NULL",
                )
                .fetch_all(&self.pool)
                .await?;
                ids.iter()
                    .map(|id| {
                        id.parse().map_err(|e| {
                            super::StoreError::Backend(format!("stored driver id {id:?}: {e}"))
                        })
                    })
                    .collect()
            }

            async fn notice_head(&self) -> Result<i64, super::StoreError> {
                let head: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(MAX(id) AS BIGINT) FROM trip_notices")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(head.unwrap_or(0))
            }

            async fn notices_for(
                &self,
                account: domain::AccountId,
                after: i64,
                limit: u32,
            ) -> Result<Vec<crate::TripNotice>, super::StoreError> {
                let rows: Vec<sql::NoticeRow> = sqlx::query_as(
                    "SELECT id, kind, at, rider_id, driver_id, body FROM trip_notices \
                     WHERE (rider_id = $1 OR driver_id = $1) AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(sql::id_text(&account))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let account = sql::id_text(&account);
                rows.into_iter()
                    .map(|mut row| {
                        // Only the caller is named: a rider does not learn the notices' other
                        // recipients beyond the trip itself.
                        if row.3.as_deref() != Some(account.as_str()) {
                            row.3 = None;
                        }
                        if row.4.as_deref() != Some(account.as_str()) {
                            row.4 = None;
                        }
                        sql::notice_of(row)
                    })
                    .collect()
            }

            async fn set_driver_statuses(
                &self,
                statuses: &[(domain::AccountId, Option<domain::Package>, domain::Timestamp)],
            ) -> Result<(), super::StoreError> {
                self.writes
                    .transaction(statuses.to_vec(), |tx, statuses| {
                        Box::pin(Self::set_driver_statuses_in(tx, statuses))
                    })
                    .await
            }

            async fn online_drivers(
                &self,
            ) -> Result<Vec<(domain::AccountId, domain::Package)>, super::StoreError> {
                let rows: Vec<(String, Option<String>)> = sqlx::query_as(
                    "SELECT driver_id, package FROM driver_status WHERE online",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .filter_map(|(driver, package)| Some((driver, package?)))
                    .map(|(driver, package)| {
                        let bad = |e: String| super::StoreError::Backend(format!("stored driver status: {e}"));
                        Ok((
                            driver.parse().map_err(|e: uuid::Error| bad(e.to_string()))?,
                            package.parse().map_err(|e: domain::pricing::UnknownPackage| bad(e.to_string()))?,
                        ))
                    })
                    .collect()
            }

            fn outbox(&self) -> std::sync::Arc<dyn platform::outbox::OutboxTable> {
                self.outbox_table()
            }

            fn idempotency(&self) -> platform::idempotency::IdempotencyKeys {
                self.idempotency_keys()
            }
        }
    };
}

pub(super) use impl_trip_store;
