//! The transactional outbox: an event whose loss matters is written to the service's `outbox`
//! table in the same transaction as the state change it announces, so it exists exactly when the
//! change does. After the commit the service publishes it at once ([`Outbox::publish_committed`]:
//! the fast path, no extra write); a relay ([`Outbox::relay`], one task per instance) then
//! forgets, in one batched delete a cycle, the rows published that way, and publishes every row
//! older than a grace period that is still there — its publish failed, or its process died between
//! commit and publish, or it was written by an instance that is gone. Any instance relays any row
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so instances take disjoint rows).
//!
//! Delivery is at least once. Every row keeps the envelope id it was written with, so a row
//! published twice (the fast path and a relay that came too soon) carries the same id both times:
//! JetStream drops the copy within its duplicate window, and consumers are idempotent by event id
//! beyond it.
//!
//! Each service that has an outbox creates the table in its own migrations:
//!
//! ```sql
//! CREATE TABLE outbox (seq <auto-increment> PRIMARY KEY, id TEXT NOT NULL, subject TEXT NOT NULL,
//!                      occurred_at BIGINT NOT NULL, headers TEXT NOT NULL, payload <bytes> NOT NULL);
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use domain::Timestamp;
use sqlx::{PgPool, QueryBuilder, SqlitePool};

use crate::Shutdown;
use crate::bus::{Bus, Envelope, SharedBus};
use crate::clock;

/// The values a row holds for `envelope`, in the order of [`write_many`]'s columns.
fn row(envelope: &Envelope) -> (String, String, i64, String, Vec<u8>) {
    (
        envelope.id.to_string(),
        envelope.subject.clone(),
        envelope.occurred_at.as_millis(),
        serde_json::to_string(&envelope.headers).unwrap_or_else(|_| "{}".to_owned()),
        envelope.payload.clone(),
    )
}

/// Writes `envelope` as an outbox row with `executor` (the change's transaction).
pub async fn write<'e, E, DB>(executor: E, envelope: &Envelope) -> Result<Pending, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = DB>,
    DB: sqlx::Database,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB> + Default,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    Vec<u8>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, <DB as sqlx::Database>::Row>,
{
    let mut written = write_many(executor, std::slice::from_ref(envelope)).await?;
    written
        .pop()
        .ok_or_else(|| sqlx::Error::Protocol("the outbox row was not returned".into()))
}

/// Writes `envelopes` as outbox rows in one statement with `executor` (the changes'
/// transaction), returned in the same order. One statement whatever the count: a batch of
/// changes (a dispatch round's offers) costs one round trip to the database, not one a row.
pub async fn write_many<'e, E, DB>(
    executor: E,
    envelopes: &[Envelope],
) -> Result<Vec<Pending>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = DB>,
    DB: sqlx::Database,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB> + Default,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    Vec<u8>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, <DB as sqlx::Database>::Row>,
{
    if envelopes.is_empty() {
        return Ok(Vec::new());
    }
    let mut query =
        QueryBuilder::<DB>::new("INSERT INTO outbox (id, subject, occurred_at, headers, payload) ");
    query.push_values(envelopes, |mut values, envelope| {
        let (id, subject, occurred_at, headers, payload) = row(envelope);
        values
            .push_bind(id)
            .push_bind(subject)
            .push_bind(occurred_at)
            .push_bind(headers)
            .push_bind(payload);
    });
    query.push(" RETURNING seq");
    let mut seqs: Vec<i64> = query.build_query_scalar().fetch_all(executor).await?;
    // One statement numbers its rows in the order of its VALUES (SQLite's AUTOINCREMENT and
    // PostgreSQL's sequence alike), but RETURNING need not list them in that order.
    seqs.sort_unstable();
    if seqs.len() != envelopes.len() {
        return Err(sqlx::Error::Protocol(format!(
            "the outbox returned {} rows for {} events",
            seqs.len(),
            envelopes.len()
        )));
    }
    Ok(seqs
        .into_iter()
        .zip(envelopes)
        .map(|(seq, envelope)| Pending {
            seq,
            envelope: envelope.clone(),
        })
        .collect())
}

/// An event written with its change and not yet known to be published.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub seq: i64,
    pub envelope: Envelope,
}

type Row = (i64, String, String, i64, String, Vec<u8>);

fn pending_of(row: Row) -> Result<Pending, String> {
    let (seq, id, subject, occurred_at, headers, payload) = row;
    Ok(Pending {
        seq,
        envelope: Envelope::new(
            id.parse()
                .map_err(|e| format!("outbox row {seq}: event id {id:?}: {e}"))?,
            subject,
            Timestamp::from_millis(occurred_at),
            serde_json::from_str(&headers)
                .map_err(|e| format!("outbox row {seq}: headers: {e}"))?,
            payload,
        ),
    })
}

const SELECT: &str = "SELECT seq, id, subject, occurred_at, headers, payload FROM outbox \
                      WHERE occurred_at < $1 ORDER BY seq LIMIT $2";
const SELECT_UNLOCKED: &str = "SELECT seq, id, subject, occurred_at, headers, payload FROM outbox \
                               WHERE occurred_at < $1 ORDER BY seq LIMIT $2 \
                               FOR UPDATE SKIP LOCKED";

/// The outbox table of one service's database.
#[async_trait]
pub trait OutboxTable: Send + Sync {
    /// Deletes the rows `seqs` (published already).
    async fn forget(&self, seqs: &[i64]) -> Result<(), String>;

    /// Publishes up to `limit` rows written before `before`, oldest first, on `bus`, deleting
    /// each one published; stops at the first failure. Returns how many were published.
    async fn relay_older(
        &self,
        before: Timestamp,
        limit: u32,
        bus: &dyn Bus,
    ) -> Result<usize, String>;

    /// Publishes the rows `seqs` (up to 500) that are still there, in order, on `bus`, deleting
    /// each one published; stops at the first failure. Returns how many were published, and the
    /// seqs of those still there and not published.
    async fn relay_these(&self, seqs: &[i64], bus: &dyn Bus) -> Result<(usize, Vec<i64>), String>;

    /// How many rows wait (a gauge for operators).
    async fn backlog(&self) -> Result<i64, String>;
}

/// Publishes `rows` in order until one fails; the seqs of those published.
async fn publish_all(rows: Vec<Pending>, bus: &dyn Bus) -> Vec<i64> {
    let mut published = Vec::with_capacity(rows.len());
    for pending in rows {
        let seq = pending.seq;
        match bus.publish(pending.envelope).await {
            Ok(()) => published.push(seq),
            Err(e) => {
                tracing::warn!(error = %e, seq, "the outbox relay cannot publish; retrying later");
                break;
            }
        }
    }
    published
}

macro_rules! delete_in {
    ($db:ty, $executor:expr, $seqs:expr) => {{
        for chunk in $seqs.chunks(500) {
            let mut query = QueryBuilder::<$db>::new("DELETE FROM outbox WHERE seq IN (");
            let mut list = query.separated(", ");
            for seq in chunk {
                list.push_bind(*seq);
            }
            query.push(")");
            query
                .build()
                .execute(&mut *$executor)
                .await
                .map_err(|e| format!("clearing the outbox: {e}"))?;
        }
    }};
}

/// Publishes the outbox `$rows` read in the transaction `$tx` in order, deletes those published
/// and commits: how many were published, and the seqs of the rest.
macro_rules! relay_rows {
    ($db:ty, $tx:expr, $rows:expr, $bus:expr) => {{
        let rows = $rows
            .into_iter()
            .map(pending_of)
            .collect::<Result<Vec<_>, _>>()?;
        let found: Vec<i64> = rows.iter().map(|row| row.seq).collect();
        let published = publish_all(rows, $bus).await;
        delete_in!($db, $tx, published);
        $tx.commit()
            .await
            .map_err(|e| format!("clearing the outbox: {e}"))?;
        (published.len(), found[published.len()..].to_vec())
    }};
}

/// `OutboxTable` for a pool of `$db`, whose relay reads with `$select` (and `$lock` after a
/// list of seqs).
macro_rules! impl_outbox_table {
    ($table:ty, $db:ty, $select:expr, $lock:expr) => {
        #[async_trait]
        impl OutboxTable for $table {
            async fn forget(&self, seqs: &[i64]) -> Result<(), String> {
                let mut connection = self
                    .0
                    .acquire()
                    .await
                    .map_err(|e| format!("clearing the outbox: {e}"))?;
                delete_in!($db, connection, seqs);
                Ok(())
            }

            async fn relay_older(
                &self,
                before: Timestamp,
                limit: u32,
                bus: &dyn Bus,
            ) -> Result<usize, String> {
                let mut tx = self
                    .0
                    .begin()
                    .await
                    .map_err(|e| format!("reading the outbox: {e}"))?;
                let rows: Vec<Row> = sqlx::query_as($select)
                    .bind(before.as_millis())
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| format!("reading the outbox: {e}"))?;
                Ok(relay_rows!($db, tx, rows, bus).0)
            }

            async fn relay_these(
                &self,
                seqs: &[i64],
                bus: &dyn Bus,
            ) -> Result<(usize, Vec<i64>), String> {
                if seqs.is_empty() {
                    return Ok((0, Vec::new()));
                }
                let mut tx = self
                    .0
                    .begin()
                    .await
                    .map_err(|e| format!("reading the outbox: {e}"))?;
                let mut select = QueryBuilder::<$db>::new(
                    "SELECT seq, id, subject, occurred_at, headers, payload FROM outbox \
                     WHERE seq IN (",
                );
                let mut list = select.separated(", ");
                for seq in seqs.iter().take(500) {
                    list.push_bind(*seq);
                }
                select.push(") ORDER BY seq");
                select.push($lock);
                let rows: Vec<Row> = select
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| format!("reading the outbox: {e}"))?;
                Ok(relay_rows!($db, tx, rows, bus))
            }

            async fn backlog(&self) -> Result<i64, String> {
                sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
                    .fetch_one(&self.0)
                    .await
                    .map_err(|e| format!("counting the outbox: {e}"))
            }
        }
    };
}

/// The outbox of an SQLite database (one process owns the file: one relay).
#[derive(Clone, Debug)]
pub struct SqliteOutbox(pub SqlitePool);

impl_outbox_table!(SqliteOutbox, sqlx::Sqlite, SELECT, "");

/// The outbox of a PostgreSQL schema (the pool's `search_path`): any number of relays, each
/// taking rows the others have not locked.
#[derive(Clone, Debug)]
pub struct PgOutbox(pub PgPool);

impl_outbox_table!(
    PgOutbox,
    sqlx::Postgres,
    SELECT_UNLOCKED,
    " FOR UPDATE SKIP LOCKED"
);

/// An outbox kept in memory, for a service with no database: the course matcher, whose pool of
/// waiting riders is in memory by design. A publish that fails is retried by the relay like any
/// other (same envelope id), so a bus outage loses nothing; the rows die with the process, as the
/// pool does. At most `MEMORY_OUTBOX_ROWS` wait; past it the oldest are dropped (counted in
/// `outbox_dropped_total`).
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    rows: Mutex<(i64, std::collections::BTreeMap<i64, Envelope>)>,
}

/// Most rows a [`MemoryOutbox`] keeps.
pub const MEMORY_OUTBOX_ROWS: usize = 100_000;

impl MemoryOutbox {
    /// Keeps `envelope` until it is known to be published.
    pub fn write(&self, envelope: &Envelope) -> Pending {
        let mut guard = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        let (next, rows) = &mut *guard;
        *next += 1;
        rows.insert(*next, envelope.clone());
        while rows.len() > MEMORY_OUTBOX_ROWS {
            if let Some((seq, dropped)) = rows.pop_first() {
                metrics::counter!("outbox_dropped_total").increment(1);
                tracing::error!(seq, subject = %dropped.subject, "the in-memory outbox is full; dropping its oldest event");
            }
        }
        Pending {
            seq: *next,
            envelope: envelope.clone(),
        }
    }
}

#[async_trait]
impl OutboxTable for MemoryOutbox {
    async fn forget(&self, seqs: &[i64]) -> Result<(), String> {
        let mut guard = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        for seq in seqs {
            guard.1.remove(seq);
        }
        Ok(())
    }

    async fn relay_older(
        &self,
        before: Timestamp,
        limit: u32,
        bus: &dyn Bus,
    ) -> Result<usize, String> {
        let rows: Vec<Pending> = {
            let guard = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
            guard
                .1
                .iter()
                .filter(|(_, envelope)| envelope.occurred_at < before)
                .take(limit as usize)
                .map(|(seq, envelope)| Pending {
                    seq: *seq,
                    envelope: envelope.clone(),
                })
                .collect()
        };
        let published = publish_all(rows, bus).await;
        self.forget(&published).await?;
        Ok(published.len())
    }

    async fn relay_these(&self, seqs: &[i64], bus: &dyn Bus) -> Result<(usize, Vec<i64>), String> {
        let rows: Vec<Pending> = {
            let guard = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
            let mut seqs = seqs.to_vec();
            seqs.sort_unstable();
            seqs.into_iter()
                .filter_map(|seq| {
                    Some(Pending {
                        seq,
                        envelope: guard.1.get(&seq)?.clone(),
                    })
                })
                .collect()
        };
        let found: Vec<i64> = rows.iter().map(|row| row.seq).collect();
        let published = publish_all(rows, bus).await;
        self.forget(&published).await?;
        Ok((published.len(), found[published.len()..].to_vec()))
    }

    async fn backlog(&self) -> Result<i64, String> {
        let guard = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(i64::try_from(guard.1.len()).unwrap_or(i64::MAX))
    }
}

/// How a relay paces itself.
#[derive(Clone, Copy, Debug)]
pub struct RelayPace {
    /// How often it forgets what the fast path published and looks for rows left behind.
    pub every: Duration,
    /// A row younger than this is left to the fast path of the instance that wrote it.
    pub grace: Duration,
}

impl Default for RelayPace {
    fn default() -> Self {
        Self {
            every: Duration::from_millis(500),
            grace: Duration::from_secs(3),
        }
    }
}

/// Most published seqs remembered between cycles; past it they are dropped, and the relay
/// publishes those rows again after the grace (same ids: consumers drop the copies).
const PUBLISHED_MEMORY: usize = 100_000;

/// One service's outbox: the fast path after each commit and the relay (cheap to clone).
#[derive(Clone)]
pub struct Outbox {
    name: &'static str,
    bus: SharedBus,
    table: Arc<dyn OutboxTable>,
    published: Arc<Mutex<Vec<i64>>>,
    /// Rows whose publish the bus refused on the fast path: the relay's next cycle tries them
    /// again, without waiting for the grace (which is for rows whose fast path may be under way).
    refused: Arc<Mutex<Vec<i64>>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub fn new(name: &'static str, bus: SharedBus, table: Arc<dyn OutboxTable>) -> Self {
        Self {
            name,
            bus,
            table,
            published: Arc::default(),
            refused: Arc::default(),
        }
    }

    /// The fast path, right after the commit that wrote `rows`: publishes them in order; those
    /// published are forgotten by the relay's next cycle, the others it publishes after the grace.
    pub async fn publish_committed(&self, rows: Vec<Pending>) {
        for pending in rows {
            let seq = pending.seq;
            match self.bus.publish(pending.envelope).await {
                Ok(()) => {
                    let mut published = self
                        .published
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if published.len() < PUBLISHED_MEMORY {
                        published.push(seq);
                    }
                }
                Err(e) => {
                    metrics::counter!("outbox_publish_failures_total", "outbox" => self.name)
                        .increment(1);
                    tracing::warn!(error = %e, seq, outbox = self.name, "cannot publish now; the relay will");
                    let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
                    if refused.len() < PUBLISHED_MEMORY {
                        refused.push(seq);
                    }
                }
            }
        }
    }

    /// One relay cycle: forget what the fast path published, publish again what the bus refused
    /// it (those still refused wait for the next cycle), then publish what was left behind longer
    /// than `grace`. Returns how many rows it published.
    pub async fn relay_once(&self, grace: Duration) -> Result<usize, String> {
        let published = std::mem::take(
            &mut *self
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if let Err(e) = self.table.forget(&published).await {
            // Kept for the next cycle (and bounded): better a second try than a republish.
            let mut again = self
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            again.extend(published.into_iter().take(PUBLISHED_MEMORY));
            return Err(e);
        }
        let mut total = 0;
        let refused =
            std::mem::take(&mut *self.refused.lock().unwrap_or_else(PoisonError::into_inner));
        // What the bus still refuses waits for the next cycle; rows already gone (the relay
        // took them after their grace) are dropped from the list.
        let mut left = Vec::new();
        let mut chunks = refused.chunks(500);
        let mut failed = None;
        for chunk in chunks.by_ref() {
            match self.table.relay_these(chunk, self.bus.as_ref()).await {
                Ok((published, waiting)) => {
                    total += published;
                    let stalled = !waiting.is_empty();
                    left.extend(waiting);
                    if stalled {
                        break;
                    }
                }
                Err(e) => {
                    left.extend_from_slice(chunk);
                    failed = Some(e);
                    break;
                }
            }
        }
        left.extend(chunks.flatten());
        if !left.is_empty() {
            // Ahead of those refused meanwhile, so they go out in order.
            let mut again = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            left.append(&mut again);
            left.truncate(PUBLISHED_MEMORY);
            *again = left;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let before =
            clock::now().plus_millis(-i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        loop {
            let relayed = self
                .table
                .relay_older(before, 256, self.bus.as_ref())
                .await?;
            total += relayed;
            if relayed < 256 {
                break;
            }
        }
        if total > 0 {
            metrics::counter!("outbox_relayed_total", "outbox" => self.name)
                .increment(total as u64);
            tracing::info!(
                relayed = total,
                outbox = self.name,
                "relayed events left behind"
            );
        }
        Ok(total)
    }

    /// The relay task: a cycle every `pace.every` until shutdown, then a last one.
    pub fn relay(self, pace: RelayPace) -> impl FnOnce(&Shutdown) + Send + 'static {
        move |shutdown: &Shutdown| {
            let token = shutdown.token();
            shutdown.spawn(async move {
                let mut ticks = tokio::time::interval(pace.every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = token.cancelled() => break,
                        _ = ticks.tick() => {}
                    }
                    if let Err(e) = self.relay_once(pace.grace).await {
                        tracing::warn!(error = %e, outbox = self.name, "outbox relay cycle failed");
                    }
                    if let Ok(backlog) = self.table.backlog().await {
                        metrics::gauge!("outbox_backlog", "outbox" => self.name)
                            .set(backlog as f64);
                    }
                }
                // Forget what was published meanwhile, so a restart does not send it again.
                let published = std::mem::take(
                    &mut *self
                        .published
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                );
                if let Err(e) = self.table.forget(&published).await {
                    tracing::debug!(error = %e, "outbox: cannot forget at shutdown");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusError, InProcessBus, SubscribeOptions, Subscription};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A bus that refuses every publish while it is `down`.
    struct Refusing {
        inner: InProcessBus,
        down: AtomicBool,
    }

    #[async_trait]
    impl Bus for Refusing {
        async fn publish(&self, envelope: Envelope) -> Result<(), BusError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(BusError::Backend("a consumer is behind (test)".into()));
            }
            self.inner.publish(envelope).await
        }

        async fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription, BusError> {
            self.inner.subscribe(options).await
        }
    }

    fn event(n: u8) -> Envelope {
        Envelope::new(
            clock::new_id(),
            "outbox.test".to_owned(),
            clock::now(),
            Default::default(),
            vec![b'0' + n],
        )
    }

    async fn received(subscription: &mut Subscription) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        while let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_millis(200), subscription.next()).await
        {
            got.push(delivery.envelope.payload.clone());
            delivery.ack().await.expect("acked");
        }
        got
    }

    /// A publish the bus refused goes out at the relay's next cycle, in order, without waiting
    /// for the grace; a row nobody tried to publish still waits for it.
    #[tokio::test]
    async fn what_the_bus_refused_is_published_at_the_next_cycle() {
        let bus = Arc::new(Refusing {
            inner: InProcessBus::new(),
            down: AtomicBool::new(true),
        });
        let mut subscription = bus
            .subscribe(SubscribeOptions::ephemeral("outbox.test"))
            .await
            .expect("subscribes");
        let table = Arc::new(MemoryOutbox::default());
        let outbox = Outbox::new("test", bus.clone(), table.clone());
        let grace = Duration::from_secs(3600);

        let refused = vec![table.write(&event(1)), table.write(&event(2))];
        outbox.publish_committed(refused).await;
        let untried = table.write(&event(3));
        // Still refused: nothing goes, and the rows are kept for the next cycle.
        assert_eq!(outbox.relay_once(grace).await.expect("a cycle"), 0);
        bus.down.store(false, Ordering::SeqCst);
        assert!(received(&mut subscription).await.is_empty());

        assert_eq!(outbox.relay_once(grace).await.expect("a cycle"), 2);
        assert_eq!(
            received(&mut subscription).await,
            [b"1".to_vec(), b"2".to_vec()]
        );
        assert_eq!(outbox.relay_once(grace).await.expect("a cycle"), 0, "once");
        assert_eq!(
            table.backlog().await.expect("counted"),
            1,
            "the untried row waits"
        );

        // After its grace, the untried row goes too.
        assert_eq!(outbox.relay_once(Duration::ZERO).await.expect("a cycle"), 1);
        assert_eq!(received(&mut subscription).await, [b"3".to_vec()]);
        drop(untried);
    }
}
