//! Store plumbing: opening the embedded mode's SQLite files and the distributed mode's PostgreSQL
//! database, and applying a service's migrations (embedded in the binary, applied in order,
//! recorded in `_sqlx_migrations`). Each service owns its tables, its store trait and — in
//! PostgreSQL — its schema; this module knows nothing of them.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::MigrateError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
pub use sqlx::postgres::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
pub use sqlx::sqlite::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, SqlSafeStr};

/// One migration compiled into the binary: `(version, description, sql)`.
pub type EmbeddedMigration = (i64, &'static str, &'static str);

/// Opens (creating if needed) the SQLite database at `path`: WAL journal, `synchronous = FULL` so a
/// write acknowledged to a client survives a power cut, foreign keys on.
pub async fn open_sqlite(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
    }
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
}

/// An in-memory SQLite database (one connection, so every query sees the same data).
pub async fn open_sqlite_in_memory() -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
}

#[derive(Debug)]
struct Embedded(&'static [EmbeddedMigration]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    // sqlx's convention: a migration starting `-- no-transaction` runs outside
                    // one (SQLite rebuilding a referenced table must switch foreign keys off,
                    // which it cannot do inside a transaction).
                    let no_tx = sql.starts_with("-- no-transaction");
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        no_tx,
                    )
                })
                .collect())
        })
    }
}

/// A migrator over embedded migrations: `migrator(M).await?.run(&pool).await` applies those not yet
/// applied, and fails if an applied one was edited since.
pub async fn migrator(migrations: &'static [EmbeddedMigration]) -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(migrations)).await
}

/// Applies pending migrations to a SQLite database.
pub async fn migrate_sqlite(
    pool: &SqlitePool,
    migrations: &'static [EmbeddedMigration],
) -> Result<(), MigrateError> {
    migrator(migrations).await?.run(pool).await
}

/// Applies pending migrations to a service's PostgreSQL schema (the pool's `search_path`).
pub async fn migrate_postgres(
    pool: &PgPool,
    migrations: &'static [EmbeddedMigration],
) -> Result<(), MigrateError> {
    migrator(migrations).await?.run(pool).await
}

/// Connects to PostgreSQL with every connection's `search_path` set to `schema` (created if
/// missing), so a service's tables and its migration history live in its own schema.
pub async fn open_postgres(
    url: &str,
    schema: &str,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    if !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(sqlx::Error::Configuration(
            format!("invalid schema name {schema:?}").into(),
        ));
    }
    let options = PgConnectOptions::from_str(url)?;
    let bootstrap = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}"
    )))
    .execute(&bootstrap)
    .await
    .or_else(ignore_duplicate)?;
    bootstrap.close().await;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.options([("search_path", schema)]))
        .await
}

/// Creates the database named in `url` if it does not exist (connecting to `postgres` to do so).
pub async fn ensure_postgres_database(url: &str) -> Result<(), sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(sqlx::Error::Configuration(
            format!("invalid database name {name:?}").into(),
        ));
    }
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.database("postgres"))
        .await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&admin)
        .await?;
    if exists.is_none() {
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .or_else(ignore_duplicate)?;
    }
    admin.close().await;
    Ok(())
}

/// Runs one statement built at run time (administrative DDL such as `DROP DATABASE`).
pub async fn execute(pool: &PgPool, statement: String) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(statement))
        .execute(pool)
        .await
        .map(|_| ())
}

/// Two processes creating the same schema or database at once: the loser's error is success.
fn ignore_duplicate(e: sqlx::Error) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    let duplicate = e
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "42P04" || code == "42P06" || code == "23505");
    if duplicate {
        Ok(Default::default())
    } else {
        Err(e)
    }
}
