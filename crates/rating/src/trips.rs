//! Two-way ratings of product trips: after a trip is completed its rider rates the driver and its
//! driver rates the rider, once each — 1 to 5 stars, an optional comment, a few tags. Each
//! account's average is kept by atomic increments of a count and a total, in the same
//! transaction as the rating, so concurrent raters never lose an update. Whether the caller may
//! rate is the trip service's answer (`TripApi::get` as the caller: their own, completed trip).

use std::sync::Arc;

use async_trait::async_trait;
use domain::events::Event;
use domain::rating::Stars;
use domain::{AccountId, Role, Timestamp, TripId};
use platform::auth::Caller;
use platform::bus::Envelope;
use platform::outbox::{self, Outbox, Pending};
use platform::store::{PgPool, SqlitePool, Writes};
use platform::{ApiError, ErrorCode, clock};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use trip::TripApi;

/// Most tags a rating carries, and the longest tag and comment.
pub const MAX_TAGS: usize = 5;
pub const MAX_TAG_CHARS: usize = 32;
pub const MAX_COMMENT_CHARS: usize = 500;

/// What a rater says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateTrip {
    pub stars: Stars,
    pub comment: Option<String>,
    pub tags: Vec<String>,
}

impl RateTrip {
    /// Checks the comment and tags (stars are checked by their type).
    pub fn validate(&self) -> Result<(), TripRatingError> {
        if let Some(comment) = &self.comment
            && comment.chars().count() > MAX_COMMENT_CHARS
        {
            return Err(TripRatingError::Invalid {
                field: "comment".into(),
                message: format!("comment must be at most {MAX_COMMENT_CHARS} characters"),
            });
        }
        if self.tags.len() > MAX_TAGS
            || self
                .tags
                .iter()
                .any(|t| t.trim().is_empty() || t.chars().count() > MAX_TAG_CHARS)
        {
            return Err(TripRatingError::Invalid {
                field: "tags".into(),
                message: format!(
                    "tags must be at most {MAX_TAGS} non-empty strings of at most {MAX_TAG_CHARS} characters"
                ),
            });
        }
        Ok(())
    }
}

/// A rating as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripRating {
    pub trip_id: TripId,
    /// `rider` (rating the driver) or `driver` (rating the rider).
    pub rater_role: Role,
    pub rater_id: AccountId,
    pub ratee_id: AccountId,
    pub stars: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    /// The rated account's average after this rating.
    pub ratee_rating: AccountRating,
}

/// A trip was rated by one side (announced through the rating service's outbox, written with the
/// rating).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripRated {
    pub trip_id: TripId,
    pub rater_role: Role,
    pub rater_id: AccountId,
    pub ratee_id: AccountId,
    pub stars: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub rated_at: Timestamp,
}

impl Event for TripRated {
    const SUBJECT: &'static str = "rating.trip_rated.v1";
}

impl TripRated {
    fn of(rating: &TripRating) -> Self {
        Self {
            trip_id: rating.trip_id,
            rater_role: rating.rater_role,
            rater_id: rating.rater_id,
            ratee_id: rating.ratee_id,
            stars: rating.stars,
            comment: rating.comment.clone(),
            tags: rating.tags.clone(),
            rated_at: rating.created_at,
        }
    }
}

/// An account's average over the ratings it received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountRating {
    pub account_id: AccountId,
    /// Rounded to two decimals; `null` before the first rating.
    pub average: Option<f64>,
    pub count: u64,
}

impl AccountRating {
    fn of(account_id: AccountId, count: i64, total: i64) -> Self {
        let count = u64::try_from(count).unwrap_or(0);
        let average = (count > 0).then(|| {
            let raw = total as f64 / count as f64;
            (raw * 100.0).round() / 100.0
        });
        Self {
            account_id,
            average,
            count,
        }
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TripRatingError {
    /// What the trip service answered (no such trip of the caller's, …), as it came.
    #[error("{}", .0.message)]
    Trip(ApiError),
    #[error("{0}")]
    NotRateable(String),
    #[error("you rated this trip already")]
    AlreadyRated,
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("rating store: {0}")]
    Store(String),
}

impl From<TripRatingError> for ApiError {
    fn from(e: TripRatingError) -> Self {
        let message = e.to_string();
        match e {
            TripRatingError::Trip(e) => e,
            TripRatingError::NotRateable(_) | TripRatingError::AlreadyRated => {
                ApiError::new(ErrorCode::Conflict, message)
            }
            TripRatingError::Invalid { field, message } => ApiError::invalid_field(field, message),
            TripRatingError::Store(_) => ApiError::unavailable(message),
        }
    }
}

impl From<ApiError> for TripRatingError {
    fn from(e: ApiError) -> Self {
        Self::Trip(e)
    }
}

impl From<sqlx::Error> for TripRatingError {
    fn from(e: sqlx::Error) -> Self {
        if e.as_database_error()
            .is_some_and(|db| db.is_unique_violation())
        {
            return Self::AlreadyRated;
        }
        Self::Store(e.to_string())
    }
}

#[async_trait]
pub trait TripRatingApi: Send + Sync + 'static {
    /// The caller (the trip's rider or driver) rates the other side of their completed trip.
    async fn rate_trip(
        &self,
        caller: &Caller,
        trip: TripId,
        rating: RateTrip,
    ) -> Result<TripRating, TripRatingError>;
    async fn account_rating(&self, account: AccountId) -> Result<AccountRating, TripRatingError>;
}

/// Where trip ratings are kept: the rating service's own database.
#[derive(Clone, Debug)]
pub enum TripRatingStore {
    /// rating.db's pool to read with, and its writes (shared with the course's ratings).
    Sqlite(SqlitePool, Writes<sqlx::Sqlite>),
    Postgres(PgPool),
}

macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match $self {
            TripRatingStore::Sqlite($pool, _) => $body,
            TripRatingStore::Postgres($pool) => $body,
        }
    };
}

/// The rating, the ratee's count and total, and the announcement `$event` in the outbox, on the
/// connection `$tx` (in a transaction).
macro_rules! add_in {
    ($tx:expr, $r:expr, $tags:expr, $event:expr) => {{
        sqlx::query(
            "INSERT INTO trip_ratings (trip_id, rater_role, rater_id, ratee_id, stars, comment, \
             tags, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($r.trip_id.to_string())
        .bind($r.rater_role.to_string())
        .bind($r.rater_id.to_string())
        .bind($r.ratee_id.to_string())
        .bind(i64::from($r.stars))
        .bind($r.comment.clone())
        .bind($tags)
        .bind($r.created_at.as_millis())
        .execute(&mut *$tx)
        .await?;
        let row = sqlx::query(
            "INSERT INTO account_ratings (account_id, count, total) VALUES ($1, 1, $2) \
             ON CONFLICT (account_id) DO UPDATE SET count = account_ratings.count + 1, \
             total = account_ratings.total + excluded.total RETURNING count, total",
        )
        .bind($r.ratee_id.to_string())
        .bind(i64::from($r.stars))
        .fetch_one(&mut *$tx)
        .await?;
        let pending = outbox::write(&mut *$tx, $event).await?;
        let (count, total): (i64, i64) = (row.try_get("count")?, row.try_get("total")?);
        (AccountRating::of($r.ratee_id, count, total), pending)
    }};
}

impl TripRatingStore {
    async fn add(
        &self,
        rating: &TripRating,
        event: &Envelope,
    ) -> Result<(AccountRating, Pending), TripRatingError> {
        let tags = serde_json::to_string(&rating.tags)
            .map_err(|e| TripRatingError::Store(e.to_string()))?;
        match self {
            Self::Sqlite(_, writes) => {
                writes
                    .transaction(
                        (rating.clone(), tags, event.clone()),
                        |tx, (rating, tags, event)| {
                            Box::pin(async move { Ok(add_in!(tx, rating, tags.clone(), event)) })
                        },
                    )
                    .await
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let added = add_in!(tx, rating, tags, event);
                tx.commit().await?;
                Ok(added)
            }
        }
    }

    async fn account(&self, account: AccountId) -> Result<AccountRating, TripRatingError> {
        let row: Option<(i64, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT count, total FROM account_ratings WHERE account_id = $1",
        )
        .bind(account.to_string())
        .fetch_optional(pool)
        .await?);
        let (count, total) = row.unwrap_or((0, 0));
        Ok(AccountRating::of(account, count, total))
    }
}

pub struct TripRatingService {
    store: TripRatingStore,
    trips: Arc<dyn TripApi>,
    /// The rating service's outbox (the same table as the course ratings').
    outbox: Outbox,
}

impl TripRatingService {
    pub fn new(store: TripRatingStore, trips: Arc<dyn TripApi>, outbox: Outbox) -> Self {
        Self {
            store,
            trips,
            outbox,
        }
    }
}

#[async_trait]
impl TripRatingApi for TripRatingService {
    #[tracing::instrument(skip(self, caller, rating), fields(rater = %caller.account))]
    async fn rate_trip(
        &self,
        caller: &Caller,
        trip: TripId,
        rating: RateTrip,
    ) -> Result<TripRating, TripRatingError> {
        rating.validate()?;
        let view = self
            .trips
            .get(caller, trip)
            .await
            .map_err(|e| TripRatingError::Trip(e.into()))?;
        if view.status != domain::trip::TripStatus::Completed {
            return Err(TripRatingError::NotRateable(format!(
                "a trip is rated once it is completed; this one is {}",
                view.status.as_str()
            )));
        }
        let ratee = match caller.role {
            Role::Rider => view.driver_id,
            // A driver who declined or missed the offer sees the trip too, but did not drive it.
            Role::Driver if view.driver_id == Some(caller.account) => Some(view.rider_id),
            Role::Driver | Role::Admin => None,
        }
        .ok_or_else(|| TripRatingError::NotRateable("this trip has nobody to rate".into()))?;
        let mut stored = TripRating {
            trip_id: trip,
            rater_role: caller.role,
            rater_id: caller.account,
            ratee_id: ratee,
            stars: rating.stars.get(),
            comment: rating.comment.filter(|c| !c.trim().is_empty()),
            tags: rating.tags.iter().map(|t| t.trim().to_owned()).collect(),
            created_at: clock::now(),
            ratee_rating: AccountRating::of(ratee, 0, 0),
        };
        let event =
            Envelope::from_event(&TripRated::of(&stored), clock::new_id(), stored.created_at)
                .map_err(|e| TripRatingError::Store(e.to_string()))?;
        let (ratee_rating, pending) = self.store.add(&stored, &event).await?;
        stored.ratee_rating = ratee_rating;
        metrics::counter!("trip_ratings_total", "rater" => caller.role.to_string()).increment(1);
        // Durable with the rating: a publish lost now is relayed.
        self.outbox.publish_committed(vec![pending]).await;
        Ok(stored)
    }

    async fn account_rating(&self, account: AccountId) -> Result<AccountRating, TripRatingError> {
        self.store.account(account).await
    }
}
