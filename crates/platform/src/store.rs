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

/// The one connection that writes to the database `pool` reads from (the same pool where it
/// has only one connection: an in-memory database). SQLite has one writer at a time; writers on
/// several connections meet a locked database and sleep in SQLite's busy handler while it is
/// free, where one connection's writers queue in order.
pub async fn sqlite_writer(pool: &SqlitePool) -> Result<SqlitePool, sqlx::Error> {
    if pool.options().get_max_connections() <= 1 {
        return Ok(pool.clone());
    }
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone())
        .await
}

/// Where a store's write transactions run, and how they commit.
///
/// - On SQLite: one writer connection of their own ([`sqlite_writer`]) on a [`Lane`], with **group
///   commit**. SQLite commits one transaction at a time, and each commit is an fsync of the
///   write-ahead log (`synchronous = FULL`): a few milliseconds on an ordinary disk, so one
///   transaction a commit caps a database at a few hundred writes a second however fast its
///   statements are. The lane's committer takes every transaction waiting when it is free (up to
///   [`GROUP_MAX`]), runs their bodies one after another in one transaction, and commits them
///   together: one fsync for the group. If a body fails (or panics), the group is rolled back, that
///   caller is given its error, and the others' bodies run again, without it, in a new group: a
///   body must be safe to run more than once (a body is only statements on its connection, so a
///   rolled-back run leaves nothing behind). Savepoints would spare the second run, but cost two
///   more round trips to sqlx's SQLite worker for every body, and most bodies are one to three
///   statements that do not fail. Nobody is told of a success before the group's commit: a caller
///   that hears `Ok` has its writes on disk, as before. Alone in the queue, a transaction is
///   committed on its own at once: no waiting to fill a group.
/// - On PostgreSQL: the pool, in the caller's task (its connections commit in parallel, and a
///   statement waits on the network, not on a lock); each body runs once, in its own transaction.
#[derive(Debug)]
pub struct Writes<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    group: Option<Group<DB>>,
}

impl<DB: sqlx::Database> Clone for Writes<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            group: self.group.clone(),
        }
    }
}

/// The most transactions one group commit takes: their bodies run one after another with the
/// database's lock held, so a bound keeps the first caller's wait short.
pub const GROUP_MAX: usize = 128;

/// A transaction's body, as the caller wrote it: its statements on the connection it is given,
/// with the data it was handed. It runs in a transaction that the [`Writes`] opens and ends: `Ok`
/// keeps its writes, `Err` rolls them back. It may run more than once (see [`Writes`]).
pub trait Body<DB: sqlx::Database, D, T, E>:
    for<'c> Fn(&'c mut DB::Connection, &'c D) -> BoxFuture<'c, Result<T, E>> + Send + Sync + 'static
{
}

impl<DB, D, T, E, F> Body<DB, D, T, E> for F
where
    DB: sqlx::Database,
    F: for<'c> Fn(&'c mut DB::Connection, &'c D) -> BoxFuture<'c, Result<T, E>>
        + Send
        + Sync
        + 'static,
{
}

impl<DB: sqlx::Database> Writes<DB> {
    /// Writes with `pool`, in the caller's task.
    pub fn direct(pool: sqlx::Pool<DB>) -> Self {
        Self { pool, group: None }
    }

    /// The pool the writes use.
    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    /// Runs `body` over `data` in a transaction and returns its output once that is committed
    /// (its error once it is rolled back). On SQLite the transaction is shared by a group.
    pub async fn transaction<D, T, E>(&self, data: D, body: impl Body<DB, D, T, E>) -> Result<T, E>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
    {
        if let Some(group) = &self.group {
            return group.run(data, body).await;
        }
        let mut tx = self.pool.begin().await?;
        match body(&mut tx, &data).await {
            Ok(output) => {
                tx.commit().await?;
                Ok(output)
            }
            Err(e) => {
                tx.rollback().await?;
                Err(e)
            }
        }
    }
}

impl Writes<sqlx::Sqlite> {
    /// The writes of the SQLite database `pool` reads from: its writer connection, committing in
    /// groups on a lane named `name`.
    pub async fn sqlite(pool: &SqlitePool, name: &str) -> Result<Self, sqlx::Error> {
        let writer = sqlite_writer(pool).await?;
        let lane = Lane::start(name).map_err(sqlx::Error::Io)?;
        Ok(Self {
            group: Some(Group::start(writer.clone(), lane, name)),
            pool: writer,
        })
    }
}

/// A transaction queued for the committer: its body and data, the output of its last run, and
/// its caller.
trait Queued<DB: sqlx::Database>: Send {
    /// Runs the body on `conn`; `false` if it failed (or panicked): its writes must go.
    fn run<'c>(&'c mut self, conn: &'c mut DB::Connection) -> BoxFuture<'c, bool>;
    /// Tells the caller: the last run's output if `committed`, the commit's error if not.
    fn answer(self: Box<Self>, committed: Result<(), &sqlx::Error>);
}

type Answer<T, E> = std::thread::Result<Result<T, E>>;

struct Waiting<D, B, T, E> {
    data: D,
    body: B,
    output: Option<Answer<T, E>>,
    caller: tokio::sync::oneshot::Sender<Answer<T, E>>,
}

impl<DB, D, B, T, E> Queued<DB> for Waiting<D, B, T, E>
where
    DB: sqlx::Database,
    D: Send + Sync + 'static,
    B: Body<DB, D, T, E>,
    T: Send + 'static,
    E: From<sqlx::Error> + Send + 'static,
{
    fn run<'c>(&'c mut self, conn: &'c mut DB::Connection) -> BoxFuture<'c, bool> {
        use futures_util::FutureExt;
        Box::pin(async move {
            let ran = std::panic::AssertUnwindSafe((self.body)(conn, &self.data))
                .catch_unwind()
                .await;
            let kept = matches!(ran, Ok(Ok(_)));
            self.output = Some(ran);
            kept
        })
    }

    fn answer(self: Box<Self>, committed: Result<(), &sqlx::Error>) {
        let answer = match (self.output, committed) {
            (Some(Ok(Ok(_))), Err(e)) => Ok(Err(E::from(group_failed(e)))),
            (Some(output), _) => output,
            (None, Err(e)) => Ok(Err(E::from(group_failed(e)))),
            (None, Ok(())) => Ok(Err(E::from(committer_gone()))),
        };
        let _ = self.caller.send(answer);
    }
}

type Job<DB> = Box<dyn Queued<DB>>;

/// The group committer's queue, on its lane.
struct Group<DB: sqlx::Database> {
    jobs: tokio::sync::mpsc::Sender<Job<DB>>,
    _lane: Lane,
}

impl<DB: sqlx::Database> Clone for Group<DB> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            _lane: self._lane.clone(),
        }
    }
}

impl<DB: sqlx::Database> std::fmt::Debug for Group<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("lane", &self._lane).finish()
    }
}

impl<DB: sqlx::Database> Group<DB> {
    /// Starts the committer on `lane`, writing with `pool` to the database `name`.
    fn start(pool: sqlx::Pool<DB>, lane: Lane, name: &str) -> Self {
        let (jobs, queue) = tokio::sync::mpsc::channel(GROUP_MAX * 8);
        let figures = GroupFigures {
            sizes: metrics::histogram!("store_group_commit_size", "database" => name.to_owned()),
            reruns: metrics::counter!("store_group_reruns_total", "database" => name.to_owned()),
        };
        lane.handle.spawn(commit_groups(pool, queue, figures));
        Self { jobs, _lane: lane }
    }

    async fn run<D, T, E>(&self, data: D, body: impl Body<DB, D, T, E>) -> Result<T, E>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
    {
        let (caller, answered) = tokio::sync::oneshot::channel::<Answer<T, E>>();
        let job: Job<DB> = Box::new(Waiting {
            data,
            body,
            output: None,
            caller,
        });
        if self.jobs.send(job).await.is_err() {
            return Err(E::from(committer_gone()));
        }
        match answered.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(E::from(committer_gone())),
        }
    }
}

fn group_failed(e: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the group commit failed: {e}"
    )))
}

fn committer_gone() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(
        "the database's writer stopped before the write ran",
    ))
}

/// What the committer records: the transactions each commit carried, and the groups run again
/// without a body that failed.
struct GroupFigures {
    sizes: metrics::Histogram,
    reruns: metrics::Counter,
}

/// The committer: takes what is queued, commits it as one group, and again.
async fn commit_groups<DB: sqlx::Database>(
    pool: sqlx::Pool<DB>,
    mut queue: tokio::sync::mpsc::Receiver<Job<DB>>,
    figures: GroupFigures,
) {
    let mut jobs = Vec::with_capacity(GROUP_MAX);
    while queue.recv_many(&mut jobs, GROUP_MAX).await > 0 {
        figures.sizes.record(jobs.len() as f64);
        let committed = commit_group(&pool, &mut jobs, &figures).await;
        for job in jobs.drain(..) {
            job.answer(committed.as_ref().map(|_| ()));
        }
    }
}

/// Runs `jobs`' bodies in one transaction and commits it. A body that fails is answered and
/// taken out, the transaction rolled back, and the rest run again. Returns the commit's outcome
/// for the jobs left.
async fn commit_group<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    jobs: &mut Vec<Job<DB>>,
    figures: &GroupFigures,
) -> Result<(), sqlx::Error> {
    use sqlx::Acquire;
    let mut conn = pool.acquire().await?;
    while !jobs.is_empty() {
        let mut group = conn.begin().await?;
        let mut failed = None;
        for (i, job) in jobs.iter_mut().enumerate() {
            if !job.run(&mut group).await {
                failed = Some(i);
                break;
            }
        }
        let Some(i) = failed else {
            return group.commit().await;
        };
        group.rollback().await?;
        // Its answer is its own error: nothing of it was written, whatever the others do.
        jobs.remove(i).answer(Ok(()));
        if !jobs.is_empty() {
            figures.reruns.increment(1);
        }
    }
    Ok(())
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

/// A thread of its own, running a single-threaded runtime, for a database's transactions (the
/// group committer of [`Writes`] runs on one).
///
/// SQLite has one writer: a write transaction holds the database's lock from its first write to
/// its commit, and every statement of it is a hop to sqlx's worker thread and back. Run on the
/// shared runtime, each hop back waits its turn behind every ready task of the process — under
/// load a millisecond or more a statement, all of it with the lock held, so the database's
/// throughput falls as the load rises. On a lane the hops are between two otherwise idle
/// threads, and the caller pays one hop for the whole transaction.
///
/// The thread ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Lane {
    handle: tokio::runtime::Handle,
    _stop: std::sync::Arc<tokio::sync::oneshot::Sender<()>>,
}

impl Lane {
    /// Starts the lane's thread, named `name`.
    pub fn start(name: &str) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Returns when every clone of the lane is gone (the sender is dropped).
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Self {
            handle,
            _stop: std::sync::Arc::new(stop),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lane_runs_work_on_its_own_thread_and_ends_with_its_last_clone() {
        let lane = Lane::start("test-lane").expect("a lane");
        let caller = std::thread::current().id();
        let (ran_on, name) = lane
            .handle
            .spawn(async {
                let me = std::thread::current();
                (me.id(), me.name().map(str::to_owned))
            })
            .await
            .expect("ran");
        assert_ne!(ran_on, caller);
        assert_eq!(name.as_deref(), Some("test-lane"));

        // Work that outlives the caller's await keeps running until the lane is dropped.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = lane.handle.clone();
        let waiting = handle.spawn(async move { rx.await.is_err() });
        drop(lane);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .expect("the lane stopped")
                .is_err(),
            "the task was dropped with the lane's runtime"
        );
        drop(tx);
    }

    /// The transactions queued while the committer is busy commit as one group: each body sees
    /// none of the others' rows from another connection until the group's commit; a body that
    /// fails or panics leaves nothing written, and the rest are kept.
    #[tokio::test]
    async fn queued_transactions_commit_as_one_group_and_a_failure_is_rolled_back_alone() {
        let dir = tempfile::tempdir().expect("a directory");
        let pool = open_sqlite(&dir.path().join("g.db")).await.expect("sqlite");
        let writes = Writes::sqlite(&pool, "test-group").await.expect("writes");
        writes
            .transaction((), |conn, ()| {
                Box::pin(async move {
                    sqlx::query("CREATE TABLE t (x INTEGER)")
                        .execute(&mut *conn)
                        .await
                        .map(drop)
                })
            })
            .await
            .expect("created");

        // The first holds the committer until it is told to go on.
        let started = std::sync::Arc::new(tokio::sync::Notify::new());
        let (go, told) = tokio::sync::watch::channel(false);
        let first = tokio::spawn({
            let (writes, started) = (writes.clone(), started.clone());
            async move {
                writes
                    .transaction((started, told), |conn, (started, told)| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO t VALUES (0)")
                                .execute(&mut *conn)
                                .await?;
                            started.notify_one();
                            let _ = told.clone().wait_for(|go| *go).await;
                            Ok::<_, sqlx::Error>(())
                        })
                    })
                    .await
            }
        });
        started.notified().await;

        const QUEUED: i64 = 20;
        let mut queued = Vec::new();
        for x in 1..=QUEUED {
            let (writes, reader) = (writes.clone(), pool.clone());
            queued.push(tokio::spawn(async move {
                writes
                    .transaction((x, reader), |conn, (x, reader)| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO t VALUES ($1)")
                                .bind(*x)
                                .execute(&mut *conn)
                                .await?;
                            match x {
                                7 => return Err(sqlx::Error::RowNotFound),
                                13 => panic!("in the transaction"),
                                _ => {}
                            }
                            // What another connection sees: only what is committed.
                            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM t")
                                .fetch_one(reader)
                                .await
                        })
                    })
                    .await
            }));
        }
        let group = writes.group.as_ref().expect("sqlite commits in groups");
        tokio::time::timeout(Duration::from_secs(10), async {
            while group.jobs.max_capacity() - group.jobs.capacity() < QUEUED as usize {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the transactions queue while the committer is busy");
        go.send(true).expect("the first waits");
        first.await.expect("no panic").expect("committed");

        for (x, task) in (1..=QUEUED).zip(queued) {
            match (x, task.await) {
                (7, Ok(outcome)) => assert!(matches!(outcome, Err(sqlx::Error::RowNotFound))),
                (13, outcome) => assert!(outcome.expect_err("panicked").is_panic()),
                (_, outcome) => {
                    let seen = outcome.expect("no panic").expect("committed");
                    assert_eq!(seen, 1, "transaction {x} saw rows committed in its group");
                }
            }
        }
        let kept: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(&pool)
            .await
            .expect("read");
        let expected: Vec<i64> = (0..=QUEUED).filter(|x| ![7, 13].contains(x)).collect();
        assert_eq!(kept, expected);
    }

    #[tokio::test]
    async fn a_file_database_gets_a_writer_of_its_own_and_memory_keeps_its_one() {
        let dir = tempfile::tempdir().expect("a directory");
        let pool = open_sqlite(&dir.path().join("x.db")).await.expect("sqlite");
        let writer = sqlite_writer(&pool).await.expect("a writer");
        assert_eq!(writer.options().get_max_connections(), 1);
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&writer)
            .await
            .expect("written");
        sqlx::query("INSERT INTO t VALUES (7)")
            .execute(&writer)
            .await
            .expect("written");
        let x: i64 = sqlx::query_scalar("SELECT x FROM t")
            .fetch_one(&pool)
            .await
            .expect("the pool reads the writer's rows");
        assert_eq!(x, 7);

        let memory = open_sqlite_in_memory().await.expect("sqlite");
        let writer = sqlite_writer(&memory).await.expect("a writer");
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&writer)
            .await
            .expect("written");
        sqlx::query("SELECT count(*) FROM t")
            .execute(&memory)
            .await
            .expect("one database: the same connection");
    }
}
