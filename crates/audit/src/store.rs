//! The audit log's own database: SQLite (`audit.db`) in the embedded mode, PostgreSQL schema
//! `audit` in the distributed one, the same SQL on both. Rows are only ever inserted (the
//! migrations' triggers refuse updates and deletes); an event already recorded is skipped by
//! its id, so redeliveries and a second instance recording the same event leave one row.

use domain::{AccountId, EventId, Timestamp, TripId};
use platform::clock;
use platform::store::{
    EmbeddedMigration, PgPool, SqlitePool, Writes, migrate_postgres, migrate_sqlite,
};
use sqlx::Row;

use crate::record::{Actor, ActorKind, Recorded};
use crate::{AuditEntry, AuditQuery, Cursor};

/// The schema the tables live in (PostgreSQL).
pub const SCHEMA: &str = "audit";

const SQLITE_MIGRATIONS: &[EmbeddedMigration] = &[(
    1,
    "audit log",
    include_str!("../migrations/sqlite/0001_audit.sql"),
)];

const POSTGRES_MIGRATIONS: &[EmbeddedMigration] = &[(
    1,
    "audit log",
    include_str!("../migrations/postgres/0001_audit.sql"),
)];

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit store: {0}")]
pub struct StoreError(pub String);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self(e.to_string())
    }
}

/// The log's database: SQLite's pool to read with and its writes (group-committed, so the
/// audited subjects' consumers share a commit), or PostgreSQL's pool.
#[derive(Clone, Debug)]
pub enum AuditStore {
    Sqlite(SqlitePool, Writes<sqlx::Sqlite>),
    Postgres(PgPool),
}

macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match $self {
            AuditStore::Sqlite($pool, _) => $body,
            AuditStore::Postgres($pool) => $body,
        }
    };
}

const INSERT_EVENT: &str = "INSERT INTO audit_events (event_id, subject, kind, occurred_at, \
     actor_kind, actor_id, trip_id, accounts, data, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (event_id) DO NOTHING RETURNING seq";

const INSERT_ACCOUNT: &str =
    "INSERT INTO audit_event_accounts (account_id, occurred_at, seq) VALUES ($1, $2, $3)";

/// Filters that are `NULL` match everything; `$3` is the kind's family pattern (`payment.%`).
const QUERY: &str = "SELECT seq, event_id, subject, kind, occurred_at, actor_kind, actor_id, \
     trip_id, accounts, data FROM audit_events e \
     WHERE ($1 IS NULL OR e.trip_id = $1) \
     AND ($2 IS NULL OR e.kind = $2 OR e.kind LIKE $3) \
     AND ($4 IS NULL OR e.seq IN \
          (SELECT a.seq FROM audit_event_accounts a WHERE a.account_id = $4)) \
     AND e.occurred_at >= $5 AND e.occurred_at < $6 \
     AND (e.occurred_at > $7 OR (e.occurred_at = $7 AND e.seq > $8)) \
     ORDER BY e.occurred_at, e.seq LIMIT $9";

/// The batch insert, on either database's connection (in a transaction): each event once; the
/// rows of those already there skipped.
macro_rules! record_in {
    ($tx:expr, $batch:expr) => {{
        let mut inserted = 0_u64;
        let now = clock::now().as_millis();
        for r in $batch {
            let data = String::from_utf8_lossy(&r.envelope.payload).into_owned();
            let accounts =
                serde_json::to_string(&r.accounts).map_err(|e| StoreError(e.to_string()))?;
            let seq: Option<(i64,)> = sqlx::query_as(INSERT_EVENT)
                .bind(r.envelope.id.to_string())
                .bind(r.envelope.subject.clone())
                .bind(r.kind.clone())
                .bind(r.envelope.occurred_at.as_millis())
                .bind(r.actor.kind.as_str())
                .bind(r.actor.account_id.map(|a| a.to_string()))
                .bind(r.trip.map(|t| t.to_string()))
                .bind(accounts)
                .bind(data)
                .bind(now)
                .fetch_optional(&mut *$tx)
                .await?;
            let Some((seq,)) = seq else { continue };
            inserted += 1;
            for account in &r.accounts {
                sqlx::query(INSERT_ACCOUNT)
                    .bind(account.to_string())
                    .bind(r.envelope.occurred_at.as_millis())
                    .bind(seq)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
        inserted
    }};
}

impl AuditStore {
    /// The store on SQLite, migrated.
    pub async fn sqlite(pool: SqlitePool) -> Result<Self, StoreError> {
        migrate_sqlite(&pool, SQLITE_MIGRATIONS)
            .await
            .map_err(|e| StoreError(format!("migrating the audit database: {e}")))?;
        let writes = Writes::sqlite(&pool, "audit-db")
            .await
            .map_err(|e| StoreError(format!("opening the audit database's writer: {e}")))?;
        Ok(Self::Sqlite(pool, writes))
    }

    /// Connects with `search_path = audit` (the schema is created if missing); not migrated.
    pub async fn postgres(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = platform::store::open_postgres(url, SCHEMA, max_connections)
            .await
            .map_err(|e| StoreError(format!("connecting to PostgreSQL: {e}")))?;
        Ok(Self::Postgres(pool))
    }

    /// Applies pending migrations (PostgreSQL; SQLite migrates when opened).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(..) => Ok(()),
            Self::Postgres(pool) => migrate_postgres(pool, POSTGRES_MIGRATIONS)
                .await
                .map_err(|e| StoreError(format!("migrating the audit schema: {e}"))),
        }
    }

    /// Records `batch` in one transaction; how many were new.
    pub async fn record(&self, batch: &[Recorded]) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(_, writes) => {
                writes
                    .transaction(batch.to_vec(), |conn, batch| {
                        Box::pin(async move { Ok(record_in!(conn, batch)) })
                    })
                    .await
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let inserted = record_in!(tx, batch);
                tx.commit().await?;
                Ok(inserted)
            }
        }
    }

    /// Up to `limit` entries matching `query`, oldest first, each with its cursor.
    pub async fn query(
        &self,
        query: &AuditQuery,
        limit: u32,
    ) -> Result<Vec<(Cursor, AuditEntry)>, StoreError> {
        let after = query.after.unwrap_or(Cursor {
            occurred_at: i64::MIN,
            seq: i64::MIN,
        });
        let family = query.kind.as_ref().map(|k| format!("{k}.%"));
        let rows = on_pool!(self, pool => sqlx::query(QUERY)
            .bind(query.trip.map(|t| t.to_string()))
            .bind(query.kind.clone())
            .bind(family)
            .bind(query.account.map(|a| a.to_string()))
            .bind(query.since.map_or(i64::MIN, Timestamp::as_millis))
            .bind(query.until.map_or(i64::MAX, Timestamp::as_millis))
            .bind(after.occurred_at)
            .bind(after.seq)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| entry_of(&row))
            .collect::<Result<Vec<_>, StoreError>>()?);
        Ok(rows)
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool, writes) => {
                writes.pool().close().await;
                pool.close().await;
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

fn entry_of<R: Row>(row: &R) -> Result<(Cursor, AuditEntry), StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let bad = |what: &str, e: &dyn std::fmt::Display| StoreError(format!("audit row: {what}: {e}"));
    let seq: i64 = row.try_get("seq")?;
    let occurred_at: i64 = row.try_get("occurred_at")?;
    let event_id: String = row.try_get("event_id")?;
    let actor_kind: String = row.try_get("actor_kind")?;
    let actor_id: Option<String> = row.try_get("actor_id")?;
    let trip_id: Option<String> = row.try_get("trip_id")?;
    let accounts: String = row.try_get("accounts")?;
    let data: String = row.try_get("data")?;
    let entry = AuditEntry {
        event_id: event_id
            .parse::<EventId>()
            .map_err(|e| bad("event_id", &e))?,
        subject: row.try_get("subject")?,
        kind: row.try_get("kind")?,
        occurred_at: Timestamp::from_millis(occurred_at),
        actor: Actor {
            kind: ActorKind::named(&actor_kind).ok_or_else(|| bad("actor_kind", &actor_kind))?,
            account_id: actor_id
                .map(|a| a.parse::<AccountId>())
                .transpose()
                .map_err(|e| bad("actor_id", &e))?,
        },
        trip_id: trip_id
            .map(|t| t.parse::<TripId>())
            .transpose()
            .map_err(|e| bad("trip_id", &e))?,
        accounts: serde_json::from_str(&accounts).map_err(|e| bad("accounts", &e))?,
        // A payload that is not JSON (a foreign publisher's) is shown as the text it was.
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
    };
    Ok((Cursor { occurred_at, seq }, entry))
}
