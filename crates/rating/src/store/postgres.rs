//! Ratings in PostgreSQL (the distributed mode), in the `rating` schema owned by this service.

use std::sync::Arc;

use async_trait::async_trait;
use domain::rating::{RatingSummary, Stars};
use domain::{CarNumber, PersonName, Timestamp};
use platform::bus::Envelope;
use platform::outbox::{self, OutboxTable, Pending};
use platform::store::{EmbeddedMigration, PgPool, migrate_postgres};
use sqlx::Row;

use super::{DriverRef, KnownDriver, RatingStore, StoreError, known_driver};

/// The schema this service's tables live in.
pub const SCHEMA: &str = "rating";

pub const MIGRATIONS: &[EmbeddedMigration] = &[
    (
        1,
        "drivers and ratings",
        include_str!("../../migrations/postgres/0001_drivers_and_ratings.sql"),
    ),
    (
        2,
        "outbox",
        include_str!("../../migrations/postgres/0002_outbox.sql"),
    ),
    (
        3,
        "trip ratings",
        include_str!("../../migrations/postgres/0003_trip_ratings.sql"),
    ),
];

#[derive(Clone, Debug)]
pub struct PgRatingStore {
    pool: PgPool,
}

impl PgRatingStore {
    /// Connects with `search_path = rating` (the schema is created if missing).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = platform::store::open_postgres(url, SCHEMA, max_connections)
            .await
            .map_err(|e| StoreError(format!("connecting to PostgreSQL: {e}")))?;
        Ok(Self { pool })
    }

    /// Applies pending migrations (`rickshaw migrate`, and every start).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate_postgres(&self.pool, MIGRATIONS)
            .await
            .map_err(|e| StoreError(format!("migrating the rating schema: {e}")))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

async fn summary_in<'e, E>(executor: E, driver: &PersonName) -> Result<RatingSummary, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let row = sqlx::query(
        "SELECT COUNT(*)::BIGINT AS n, COALESCE(SUM(stars), 0)::BIGINT AS total FROM ratings WHERE driver_name = $1",
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
impl RatingStore for PgRatingStore {
    async fn remember_drivers(
        &self,
        reports: &[(PersonName, CarNumber, Timestamp)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (name, car_number, seen_at) in reports {
            sqlx::query(
            "INSERT INTO drivers (name, car_number, first_seen_ms, car_since_ms) VALUES ($1, $2, $3, $3)
             ON CONFLICT (name) DO UPDATE SET car_number = EXCLUDED.car_number, car_since_ms = EXCLUDED.car_since_ms
             WHERE EXCLUDED.car_since_ms >= drivers.car_since_ms",
            )
            .bind(name.as_str())
            .bind(car_number.as_str())
            .bind(seen_at.as_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_driver(&self, driver: &DriverRef) -> Result<Option<KnownDriver>, StoreError> {
        let row = match driver {
            DriverRef::Name(name) => {
                sqlx::query("SELECT name, car_number FROM drivers WHERE name = $1")
                    .bind(name.as_str())
                    .fetch_optional(&self.pool)
                    .await?
            }
            DriverRef::Car(car) => {
                sqlx::query(
                    "SELECT name, car_number FROM drivers WHERE car_number = $1 ORDER BY car_since_ms DESC, name LIMIT 1",
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO ratings (id, driver_name, stars, rated_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(driver.as_str())
        .bind(i16::from(stars.get()))
        .bind(rated_at.as_millis())
        .execute(&mut *tx)
        .await?;
        let summary = summary_in(&mut *tx, driver).await?;
        let pending = outbox::write(&mut *tx, announcement).await?;
        tx.commit().await?;
        Ok((summary, pending))
    }

    fn outbox(&self) -> Arc<dyn OutboxTable> {
        Arc::new(outbox::PgOutbox(self.pool.clone()))
    }

    async fn summary(&self, driver: &PersonName) -> Result<RatingSummary, StoreError> {
        summary_in(&self.pool, driver).await
    }
}
