//! The payment store seam: one payment per trip (changed by compare-and-set on `version`), the
//! ledger's entries written in the same transaction as the change they record, and the provider
//! events already handled. SQLite and PostgreSQL share the SQL (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`); every implementation passes `payment_store_contract!`.

#[doc(hidden)]
pub mod contract;

use async_trait::async_trait;
use domain::ledger::{LedgerAccount, Transaction, TransactionKind};
use domain::{AccountId, Timestamp, TripId};
use platform::bus::Envelope;
use platform::outbox::{self, Pending};
use platform::store::{EmbeddedMigration, PgPool, migrate_postgres, migrate_sqlite};
use serde::{Deserialize, Serialize};
use sqlx::{Row, SqlitePool};

/// The schema this service's tables live in (PostgreSQL).
pub const SCHEMA: &str = "payment";

const SQLITE_MIGRATIONS: &[EmbeddedMigration] = &[
    (
        1,
        "payments and ledger",
        include_str!("../../migrations/sqlite/0001_payments.sql"),
    ),
    (
        2,
        "outbox",
        include_str!("../../migrations/sqlite/0002_outbox.sql"),
    ),
    (
        3,
        "idempotency keys",
        include_str!("../../migrations/sqlite/0003_idempotency.sql"),
    ),
    (
        4,
        "refunds by id",
        include_str!("../../migrations/sqlite/0004_refunds.sql"),
    ),
];

const POSTGRES_MIGRATIONS: &[EmbeddedMigration] = &[
    (
        1,
        "payments and ledger",
        include_str!("../../migrations/postgres/0001_payments.sql"),
    ),
    (
        2,
        "outbox",
        include_str!("../../migrations/postgres/0002_outbox.sql"),
    ),
    (
        3,
        "idempotency keys",
        include_str!("../../migrations/postgres/0003_idempotency.sql"),
    ),
    (
        4,
        "refunds by id",
        include_str!("../../migrations/postgres/0004_refunds.sql"),
    ),
];

/// Where a trip's payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The provider is being asked (another booking of the same trip waits or answers 409).
    Authorizing,
    /// The card needs its confirmation step (`POST /v1/payments/{trip}/confirm`).
    RequiresConfirmation,
    /// Held on the card.
    Authorized,
    /// The fare or a fee was taken; the rest of the hold released.
    Captured,
    /// The hold was let go (a free cancellation, no driver found, a booking that failed).
    Voided,
    /// The provider let the hold lapse before the trip ended.
    Expired,
    Declined,
    /// The provider could not be reached while authorizing: a new booking tries again.
    Failed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 8] = [
        Self::Authorizing,
        Self::RequiresConfirmation,
        Self::Authorized,
        Self::Captured,
        Self::Voided,
        Self::Expired,
        Self::Declined,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorizing => "authorizing",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::Voided => "voided",
            Self::Expired => "expired",
            Self::Declined => "declined",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| StoreError(format!("unknown payment status {s:?}")))
    }

    /// Whether money is still held on the card.
    pub fn holds(self) -> bool {
        matches!(self, Self::Authorized)
    }
}

/// A trip's payment as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    pub trip: TripId,
    pub rider: AccountId,
    pub driver: Option<AccountId>,
    pub intent: Option<String>,
    pub payment_method: String,
    pub status: PaymentStatus,
    pub held: u64,
    pub captured: u64,
    pub refunded: u64,
    /// What the capture paid for.
    pub charge_kind: Option<TransactionKind>,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One entry of an account, with what it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountEntry {
    pub trip: TripId,
    pub kind: TransactionKind,
    pub amount: i64,
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("payment store: {0}")]
pub struct StoreError(pub String);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self(e.to_string())
    }
}

/// What recording a refund did.
#[derive(Debug, PartialEq)]
pub enum RefundWrite {
    /// Recorded with the change: the outbox rows to publish.
    Recorded(Vec<Pending>),
    /// The payment changed meanwhile (nothing written): read it again.
    Changed,
    /// This refund was recorded before (nothing written).
    AlreadyRecorded,
}

#[async_trait]
pub trait PaymentStore: Send + Sync + 'static {
    async fn get(&self, trip: TripId) -> Result<Option<PaymentRecord>, StoreError>;
    async fn by_intent(&self, intent: &str) -> Result<Option<PaymentRecord>, StoreError>;
    /// Stores `record` unless its trip has a payment already: whether it did.
    async fn insert(&self, record: &PaymentRecord) -> Result<bool, StoreError>;
    /// Replaces the payment if it is still at `expected_version`, appends `ledger` and writes
    /// `events` to the outbox, in one transaction: the outbox rows to publish, or `None` when it
    /// changed meanwhile (nothing written).
    async fn update(
        &self,
        next: &PaymentRecord,
        expected_version: u64,
        ledger: &[Transaction],
        events: &[Envelope],
    ) -> Result<Option<Vec<Pending>>, StoreError>;
    /// As `update`, for the provider's refund `refund_id` of `amount`, recorded once:
    /// `AlreadyRecorded` (nothing written) when it was, whoever recorded it.
    async fn record_refund(
        &self,
        next: &PaymentRecord,
        expected_version: u64,
        ledger: &[Transaction],
        events: &[Envelope],
        refund_id: &str,
        amount: u64,
    ) -> Result<RefundWrite, StoreError>;
    /// The outbox table the events are written to, for the relay.
    fn outbox(&self) -> std::sync::Arc<dyn platform::outbox::OutboxTable>;
    /// The `Idempotency-Key`s of refunds.
    fn idempotency(&self) -> platform::idempotency::IdempotencyKeys;
    /// The rider's payments, newest first.
    async fn of_rider(
        &self,
        rider: AccountId,
        limit: u32,
    ) -> Result<Vec<PaymentRecord>, StoreError>;
    /// The account's entries, newest first.
    async fn entries_of(
        &self,
        account: LedgerAccount,
        limit: u32,
    ) -> Result<Vec<AccountEntry>, StoreError>;
    /// The sum of every entry of the ledger (zero while it balances).
    async fn ledger_sum(&self) -> Result<i64, StoreError>;
    /// Records a provider event as handled: whether it is the first time.
    async fn first_sight(&self, event: &str, kind: &str, at: Timestamp)
    -> Result<bool, StoreError>;
    /// Whether a provider event was handled already.
    async fn seen(&self, event: &str) -> Result<bool, StoreError>;
}

fn id_text(id: &impl std::fmt::Display) -> String {
    id.to_string()
}

fn parse_id<T: From<uuid::Uuid>>(text: &str) -> Result<T, StoreError> {
    uuid::Uuid::parse_str(text)
        .map(T::from)
        .map_err(|e| StoreError(format!("a stored id {text:?}: {e}")))
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The payments table's columns, in the order the queries bind and read them (a macro, so the
/// statements stay string literals).
macro_rules! columns {
    () => {
        "trip_id, rider_id, driver_id, intent_id, payment_method, status, held, captured, \
         refunded, charge_kind, version, created_at, updated_at"
    };
}

fn record_of<R>(row: &R) -> Result<PaymentRecord, StoreError>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let text = |column: &str| row.try_get::<String, _>(column);
    let driver: Option<String> = row.try_get("driver_id")?;
    let kind: Option<String> = row.try_get("charge_kind")?;
    Ok(PaymentRecord {
        trip: parse_id::<uuid::Uuid>(&text("trip_id")?).map(TripId::from_uuid)?,
        rider: parse_id::<uuid::Uuid>(&text("rider_id")?).map(AccountId::from_uuid)?,
        driver: driver
            .map(|d| parse_id::<uuid::Uuid>(&d).map(AccountId::from_uuid))
            .transpose()?,
        intent: row.try_get("intent_id")?,
        payment_method: text("payment_method")?,
        status: PaymentStatus::parse(&text("status")?)?,
        held: unsigned(row.try_get("held")?),
        captured: unsigned(row.try_get("captured")?),
        refunded: unsigned(row.try_get("refunded")?),
        charge_kind: kind
            .map(|k| k.parse().map_err(|e| StoreError(format!("{e}"))))
            .transpose()?,
        version: unsigned(row.try_get("version")?),
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

/// `PaymentStore` for a store type with a `pool` of `$db` (the SQL is the same on both).
macro_rules! impl_payment_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The payment replaced if still at `expected_version`, with its ledger entries, its
            /// events and (once) the provider's refund `refund_id`, in one transaction.
            async fn change(
                &self,
                r: &PaymentRecord,
                expected_version: u64,
                ledger: &[Transaction],
                events: &[Envelope],
                refund: Option<(&str, u64)>,
            ) -> Result<RefundWrite, StoreError> {
                let refund = refund.map(|(id, amount)| (id.to_owned(), amount));
                let data = (r.clone(), expected_version, ledger.to_vec(), events.to_vec(), refund);
                self.writes
                    .transaction(data, |conn, (r, expected_version, ledger, events, refund)| {
                        let refund = refund.as_ref().map(|(id, amount)| (id.as_str(), *amount));
                        Box::pin(Self::change_in(conn, r, *expected_version, ledger, events, refund))
                    })
                    .await
            }

            /// [`Self::change`]'s transaction body, run where the store's writes run (`Writes`:
            /// SQLite's group commit on its lane; PostgreSQL's pool here).
            async fn change_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                r: &PaymentRecord,
                expected_version: u64,
                ledger: &[Transaction],
                events: &[Envelope],
                refund: Option<(&str, u64)>,
            ) -> Result<RefundWrite, StoreError> {
                use sqlx::Connection;
                // A savepoint of its own: a refund already recorded, or a payment changed
                // meanwhile, is an answer that leaves nothing written.
                let mut tx = conn.begin().await?;
                if let Some((refund_id, amount)) = refund {
                    let new = sqlx::query(
                        "INSERT INTO payment_refunds (refund_id, trip_id, amount, at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (refund_id) DO NOTHING",
                    )
                    .bind(refund_id)
                    .bind(id_text(&r.trip))
                    .bind(signed(amount))
                    .bind(r.updated_at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                    if new.rows_affected() != 1 {
                        tx.rollback().await?;
                        return Ok(RefundWrite::AlreadyRecorded);
                    }
                }
                let done = sqlx::query(
                    "UPDATE payments SET driver_id = $1, intent_id = $2, payment_method = $3, \
                     status = $4, held = $5, captured = $6, refunded = $7, charge_kind = $8, \
                     version = $9, updated_at = $10 WHERE trip_id = $11 AND version = $12",
                )
                .bind(r.driver.as_ref().map(id_text))
                .bind(r.intent.clone())
                .bind(r.payment_method.clone())
                .bind(r.status.as_str())
                .bind(signed(r.held))
                .bind(signed(r.captured))
                .bind(signed(r.refunded))
                .bind(r.charge_kind.map(|k| k.as_str()))
                .bind(signed(r.version))
                .bind(r.updated_at.as_millis())
                .bind(id_text(&r.trip))
                .bind(signed(expected_version))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(RefundWrite::Changed);
                }
                for transaction in ledger {
                    let txn = uuid::Uuid::now_v7().to_string();
                    for entry in transaction.entries() {
                        sqlx::query(
                            "INSERT INTO ledger_entries (txn_id, trip_id, kind, account, amount, at) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(&txn)
                        .bind(id_text(&r.trip))
                        .bind(transaction.kind().as_str())
                        .bind(entry.account.to_string())
                        .bind(entry.amount)
                        .bind(r.updated_at.as_millis())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let mut pending = Vec::with_capacity(events.len());
                for event in events {
                    pending.push(outbox::write(&mut *tx, event).await?);
                }
                tx.commit().await?;
                Ok(RefundWrite::Recorded(pending))
            }

        }

        #[async_trait]
        impl PaymentStore for $store {
            async fn get(&self, trip: TripId) -> Result<Option<PaymentRecord>, StoreError> {
                let row = sqlx::query(concat!("SELECT ", columns!(), " FROM payments WHERE trip_id = $1"))
                    .bind(id_text(&trip))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(record_of).transpose()
            }

            async fn by_intent(&self, intent: &str) -> Result<Option<PaymentRecord>, StoreError> {
                let row =
                    sqlx::query(concat!("SELECT ", columns!(), " FROM payments WHERE intent_id = $1"))
                        .bind(intent)
                        .fetch_optional(&self.pool)
                        .await?;
                row.as_ref().map(record_of).transpose()
            }

            async fn insert(&self, r: &PaymentRecord) -> Result<bool, StoreError> {
                self.writes
                    .transaction(r.clone(), |conn, r| Box::pin(async move {
                        let done = sqlx::query(concat!(
                            "INSERT INTO payments (",
                            columns!(),
                            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                             ON CONFLICT (trip_id) DO NOTHING"
                        ))
                        .bind(id_text(&r.trip))
                        .bind(id_text(&r.rider))
                        .bind(r.driver.as_ref().map(id_text))
                        .bind(r.intent.clone())
                        .bind(r.payment_method.clone())
                        .bind(r.status.as_str())
                        .bind(signed(r.held))
                        .bind(signed(r.captured))
                        .bind(signed(r.refunded))
                        .bind(r.charge_kind.map(|k| k.as_str()))
                        .bind(signed(r.version))
                        .bind(r.created_at.as_millis())
                        .bind(r.updated_at.as_millis())
                        .execute(&mut *conn)
                        .await?;
                        Ok(done.rows_affected() == 1)
                    }))
                    .await
            }

            async fn update(
                &self,
                r: &PaymentRecord,
                expected_version: u64,
                ledger: &[Transaction],
                events: &[Envelope],
            ) -> Result<Option<Vec<Pending>>, StoreError> {
                Ok(
                    match self.change(r, expected_version, ledger, events, None).await? {
                        RefundWrite::Recorded(pending) => Some(pending),
                        RefundWrite::Changed | RefundWrite::AlreadyRecorded => None,
                    },
                )
            }

            async fn record_refund(
                &self,
                r: &PaymentRecord,
                expected_version: u64,
                ledger: &[Transaction],
                events: &[Envelope],
                refund_id: &str,
                amount: u64,
            ) -> Result<RefundWrite, StoreError> {
                self.change(r, expected_version, ledger, events, Some((refund_id, amount)))
                    .await
            }

            fn outbox(&self) -> std::sync::Arc<dyn platform::outbox::OutboxTable> {
                self.outbox_table()
            }

            fn idempotency(&self) -> platform::idempotency::IdempotencyKeys {
                self.idempotency_keys()
            }

            async fn of_rider(
                &self,
                rider: AccountId,
                limit: u32,
            ) -> Result<Vec<PaymentRecord>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM payments WHERE rider_id = $1 \
                     ORDER BY created_at DESC, trip_id DESC LIMIT $2"
                ))
                .bind(id_text(&rider))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(record_of).collect()
            }

            async fn entries_of(
                &self,
                account: LedgerAccount,
                limit: u32,
            ) -> Result<Vec<AccountEntry>, StoreError> {
                let rows = sqlx::query(
                    "SELECT trip_id, kind, amount, at FROM ledger_entries WHERE account = $1 \
                     ORDER BY at DESC, seq DESC LIMIT $2",
                )
                .bind(account.to_string())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let trip: String = row.try_get("trip_id")?;
                        let kind: String = row.try_get("kind")?;
                        Ok(AccountEntry {
                            trip: parse_id::<uuid::Uuid>(&trip).map(TripId::from_uuid)?,
                            kind: kind.parse().map_err(|e| StoreError(format!("{e}")))?,
                            amount: row.try_get("amount")?,
                            at: Timestamp::from_millis(row.try_get("at")?),
                        })
                    })
                    .collect()
            }

            async fn ledger_sum(&self) -> Result<i64, StoreError> {
                let sum: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(SUM(amount) AS BIGINT) FROM ledger_entries")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(sum.unwrap_or(0))
            }

            async fn first_sight(
                &self,
                event: &str,
                kind: &str,
                at: Timestamp,
            ) -> Result<bool, StoreError> {
                let data = (event.to_owned(), kind.to_owned(), at);
                self.writes
                    .transaction(data, |conn, (event, kind, at)| Box::pin(async move {
                        let done = sqlx::query(
                            "INSERT INTO webhook_events (event_id, type, received_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (event_id) DO NOTHING",
                        )
                        .bind(event)
                        .bind(kind)
                        .bind(at.as_millis())
                        .execute(&mut *conn)
                        .await?;
                        Ok(done.rows_affected() == 1)
                    }))
                    .await
            }

            async fn seen(&self, event: &str) -> Result<bool, StoreError> {
                let found: Option<String> =
                    sqlx::query_scalar("SELECT event_id FROM webhook_events WHERE event_id = $1")
                        .bind(event)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(found.is_some())
            }
        }
    };
}

/// Payments in SQLite (the embedded mode): `payment.db` under the data directory.
#[derive(Clone, Debug)]
pub struct SqlitePaymentStore {
    pool: SqlitePool,
    writes: platform::store::Writes<sqlx::Sqlite>,
}

impl SqlitePaymentStore {
    /// Applies pending migrations, then serves from `pool`.
    pub async fn new(pool: SqlitePool) -> Result<Self, StoreError> {
        migrate_sqlite(&pool, SQLITE_MIGRATIONS)
            .await
            .map_err(|e| StoreError(format!("migrating the payment database: {e}")))?;
        let writes = platform::store::Writes::sqlite(&pool, "payment-db")
            .await
            .map_err(|e| StoreError(format!("opening the payment database's writer: {e}")))?;
        Ok(Self { pool, writes })
    }

    fn outbox_table(&self) -> std::sync::Arc<dyn platform::outbox::OutboxTable> {
        std::sync::Arc::new(platform::outbox::SqliteOutbox(self.writes.pool().clone()))
    }

    fn idempotency_keys(&self) -> platform::idempotency::IdempotencyKeys {
        platform::idempotency::IdempotencyKeys::Sqlite(self.writes.pool().clone())
    }
}

/// Payments in PostgreSQL (the distributed mode), schema `payment`.
#[derive(Clone, Debug)]
pub struct PgPaymentStore {
    pool: PgPool,
    writes: platform::store::Writes<sqlx::Postgres>,
}

impl PgPaymentStore {
    /// Connects with `search_path = payment` (the schema is created if missing).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = platform::store::open_postgres(url, SCHEMA, max_connections)
            .await
            .map_err(|e| StoreError(format!("connecting to PostgreSQL: {e}")))?;
        Ok(Self {
            writes: platform::store::Writes::direct(pool.clone()),
            pool,
        })
    }

    /// Applies pending migrations (`rickshaw migrate`, and every start).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate_postgres(&self.pool, POSTGRES_MIGRATIONS)
            .await
            .map_err(|e| StoreError(format!("migrating the payment schema: {e}")))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn outbox_table(&self) -> std::sync::Arc<dyn platform::outbox::OutboxTable> {
        std::sync::Arc::new(platform::outbox::PgOutbox(self.pool.clone()))
    }

    fn idempotency_keys(&self) -> platform::idempotency::IdempotencyKeys {
        platform::idempotency::IdempotencyKeys::Postgres(self.pool.clone())
    }
}

impl_payment_store!(SqlitePaymentStore, sqlx::Sqlite);
impl_payment_store!(PgPaymentStore, sqlx::Postgres);
