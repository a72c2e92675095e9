//! Ratings in SQLite (the embedded mode), one database file owned by this service.

use std::sync::Arc;

use async_trait::async_trait;
use domain::rating::{RatingSummary, Stars};
use domain::{CarNumber, PersonName, Timestamp};
use platform::bus::Envelope;
use platform::outbox::{self, OutboxTable, Pending};
use platform::store::{EmbeddedMigration, Writes, migrate_sqlite};
use sqlx::{Row, SqlitePool};

use super::{DriverRef, KnownDriver, RatingStore, StoreError, known_driver};

pub const MIGRATIONS: &[EmbeddedMigration] = &[
    (
        1,
        "drivers and ratings",
        include_str!("../../migrations/sqlite/0001_drivers_and_ratings.sql"),
    ),
    (
        2,
        "outbox",
        include_str!("../../migrations/sqlite/0002_outbox.sql"),
    ),
    (
        3,
        "trip ratings",
        include_str!("../../migrations/sqlite/0003_trip_ratings.sql"),
    ),
];

/// A driver's name and car, kept unless a newer report already changed the car.
const REMEMBER_DRIVER: &str = "INSERT INTO drivers (name, car_number, first_seen_ms, car_since_ms) \
     VALUES (?1, ?2, ?3, ?3) ON CONFLICT (name) DO UPDATE SET car_number = excluded.car_number, \
     car_since_ms = excluded.car_since_ms WHERE excluded.car_since_ms >= drivers.car_since_ms";

#[derive(Clone, Debug)]
pub struct SqliteRatingStore {
    pool: SqlitePool,
    /// rating.db's writes: its writer connection, group-committed on a lane of its own.
    writes: Writes<sqlx::Sqlite>,
}

impl SqliteRatingStore {
    /// Applies pending migrations, then serves from `pool`.
    /// Its database, for the trip ratings kept beside the course's.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Its database's writes, for the trip ratings kept beside the course's.
    pub fn writes(&self) -> &Writes<sqlx::Sqlite> {
        &self.writes
    }

    pub async fn new(pool: SqlitePool) -> Result<Self, StoreError> {
        migrate_sqlite(&pool, MIGRATIONS)
            .await
            .map_err(|e| StoreError(format!("migrating the rating database: {e}")))?;
        let writes = Writes::sqlite(&pool, "rating-db")
            .await
            .map_err(|e| StoreError(format!("opening the rating database's writer: {e}")))?;
        Ok(Self { pool, writes })
    }
}

async fn summary_in<'e, E>(executor: E, driver: &PersonName) -> Result<RatingSummary, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(stars), 0) AS total FROM ratings WHERE driver_name = ?",
    )
    .bind(driver.as_str())
    .fetch_one(executor)
    .await?;
    let count: i64 = row.try_get("n")?;
    let total: i64 = row.try_get("total")?;
    Ok(RatingSummary::from_totals(
        u64::try_from(count).unwrap_or(0),
        u64::try_from(total).unwrap_or(0),
    ))
}

#[async_trait]
impl RatingStore for SqliteRatingStore {
    async fn remember_drivers(
        &self,
        reports: &[(PersonName, CarNumber, Timestamp)],
    ) -> Result<(), StoreError> {
        self.writes
            .transaction(reports.to_vec(), |tx, reports| {
                Box::pin(async move {
                    for (name, car_number, seen_at) in reports {
                        sqlx::query(REMEMBER_DRIVER)
                            .bind(name.as_str())
                            .bind(car_number.as_str())
                            .bind(seen_at.as_millis())
                            .execute(&mut *tx)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn find_driver(&self, driver: &DriverRef) -> Result<Option<KnownDriver>, StoreError> {
        let row = match driver {
            DriverRef::Name(name) => {
                sqlx::query("SELECT name, car_number FROM drivers WHERE name = ?")
                    .bind(name.as_str())
                    .fetch_optional(&self.pool)
                    .await?
            }
            DriverRef::Car(car) => {
                sqlx::query(
                    "SELECT name, car_number FROM drivers WHERE car_number = ? ORDER BY car_since_ms DESC, name LIMIT 1",
                )
                .bind(car.as_str())
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.map(|row| known_driver(row.try_get("name")?, row.try_get("car_number")?))
            .transpose()
    }

    async fn add_rating(
        &self,
        id: uuid::Uuid,
        driver: &PersonName,
        stars: Stars,
        rated_at: Timestamp,
        announcement: &Envelope,
    ) -> Result<(RatingSummary, Pending), StoreError> {
        let data = (id, driver.clone(), stars, rated_at, announcement.clone());
        self.writes
            .transaction(data, |tx, (id, driver, stars, rated_at, announcement)| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO ratings (id, driver_name, stars, rated_at_ms) \
                         VALUES (?, ?, ?, ?)",
                    )
                    .bind(id.to_string())
                    .bind(driver.as_str())
                    .bind(i64::from(stars.get()))
                    .bind(rated_at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                    let summary = summary_in(&mut *tx, driver).await?;
                    let pending = outbox::write(&mut *tx, announcement).await?;
                    Ok((summary, pending))
                })
            })
            .await
    }

    fn outbox(&self) -> Arc<dyn OutboxTable> {
        Arc::new(outbox::SqliteOutbox(self.writes.pool().clone()))
    }

    async fn summary(&self, driver: &PersonName) -> Result<RatingSummary, StoreError> {
        summary_in(&self.pool, driver).await
    }
}

#[cfg(test)]
mod tests {
    crate::rating_store_contract!(async {
        let pool = platform::store::open_sqlite_in_memory()
            .await
            .expect("sqlite");
        super::SqliteRatingStore::new(pool).await.expect("migrates")
    });
}
