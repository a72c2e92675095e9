//! `Idempotency-Key`, with Stripe's semantics, for the public requests that create or change a
//! trip or money: the first request with a key runs, and its answer is stored; a repeat with the
//! same key and the same parameters gets that answer again without running; the same key with
//! other parameters is refused (422); a repeat while the first still runs is refused (409, try
//! again); keys are forgotten after 24 hours. A first request whose answer says "try again" (the
//! service unavailable) frees its key, so the retry runs.
//!
//! Each service keeps its keys in its own database, in a table its migrations create:
//!
//! ```sql
//! CREATE TABLE idempotency_keys (scope TEXT NOT NULL, key TEXT NOT NULL,
//!     fingerprint TEXT NOT NULL, response TEXT, created_at BIGINT NOT NULL,
//!     updated_at BIGINT NOT NULL, PRIMARY KEY (scope, key));
//! ```
//!
//! `scope` is who and what (`book:<account>`), so two accounts never share a key. A row without
//! a response is a request still running; one left by a process that died is taken over after
//! [`RUNNING_LEASE_MS`].

use domain::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{PgPool, SqlitePool};

/// How long keys are kept.
pub const KEY_TTL_MS: i64 = 24 * 3_600 * 1_000;
/// A request still "running" this long after it started is presumed dead with its process.
pub const RUNNING_LEASE_MS: i64 = 60_000;
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// What a request with a key may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Run it, then `finish` (or `release`) the key.
    Run,
    /// It ran: here is its stored answer.
    Replay(String),
    /// The key was used with other parameters.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

/// What [`IdempotencyKeys::once`] came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Once<R> {
    /// The request's answer: run now, or the first run's, replayed.
    Answered(R),
    /// The key was used with other parameters.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

/// Checks a key as a client sent it: 1 to 255 visible ASCII characters.
pub fn valid_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        ));
    }
    Ok(())
}

/// The keys table of one service's database.
#[derive(Clone, Debug)]
pub enum IdempotencyKeys {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match $self {
            IdempotencyKeys::Sqlite($pool) => $body,
            IdempotencyKeys::Postgres($pool) => $body,
        }
    };
}

const INSERT: &str = "INSERT INTO idempotency_keys (scope, key, fingerprint, response, created_at, \
                      updated_at) VALUES ($1, $2, $3, NULL, $4, $4) ON CONFLICT (scope, key) DO NOTHING";
const SELECT: &str = "SELECT fingerprint, response, created_at, updated_at FROM idempotency_keys \
                      WHERE scope = $1 AND key = $2";
/// Takes a row over (expired, or running past its lease) if it is still as it was read.
const TAKE_OVER: &str = "UPDATE idempotency_keys SET fingerprint = $3, response = NULL, \
                         created_at = $4, updated_at = $4 \
                         WHERE scope = $1 AND key = $2 AND updated_at = $5";
const FINISH: &str =
    "UPDATE idempotency_keys SET response = $3, updated_at = $4 WHERE scope = $1 AND key = $2";
const RELEASE: &str =
    "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND response IS NULL";
const FORGET: &str = "DELETE FROM idempotency_keys WHERE created_at < $1";

type Row = (String, Option<String>, i64, i64);

impl IdempotencyKeys {
    /// What the request `(scope, key)` with parameters `fingerprint` may do at `now`.
    pub async fn claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<Claim, sqlx::Error> {
        let now = now.as_millis();
        for _ in 0..3 {
            let inserted = on_pool!(self, pool => sqlx::query(INSERT)
                .bind(scope)
                .bind(key)
                .bind(fingerprint)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected());
            if inserted == 1 {
                return Ok(Claim::Run);
            }
            let row: Option<Row> = on_pool!(self, pool => sqlx::query_as(SELECT)
                .bind(scope)
                .bind(key)
                .fetch_optional(pool)
                .await?);
            let Some((stored, response, created_at, updated_at)) = row else {
                continue; // released meanwhile: try to insert again
            };
            let expired = now - created_at >= KEY_TTL_MS;
            let abandoned = response.is_none() && now - updated_at >= RUNNING_LEASE_MS;
            if expired || abandoned {
                let taken = on_pool!(self, pool => sqlx::query(TAKE_OVER)
                    .bind(scope)
                    .bind(key)
                    .bind(fingerprint)
                    .bind(now)
                    .bind(updated_at)
                    .execute(pool)
                    .await?
                    .rows_affected());
                if taken == 1 {
                    return Ok(Claim::Run);
                }
                continue;
            }
            if stored != fingerprint {
                return Ok(Claim::Mismatch);
            }
            return Ok(match response {
                Some(response) => Claim::Replay(response),
                None => Claim::InFlight,
            });
        }
        Ok(Claim::InFlight)
    }

    /// Runs `run` once per `(scope, key)` with parameters `fingerprint` at `now`: a repeat gets the
    /// first answer (serialized with the key) without running. An answer `keep` refuses (one that
    /// says "try again") frees the key, so the retry runs. `Err`: the keys could not be read or an
    /// answer could not be decoded.
    pub async fn once<R, Fut>(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        keep: impl FnOnce(&R) -> bool,
        run: impl FnOnce() -> Fut,
    ) -> Result<Once<R>, String>
    where
        R: Serialize + DeserializeOwned,
        Fut: std::future::Future<Output = R>,
    {
        let claim = self
            .claim(scope, key, fingerprint, now)
            .await
            .map_err(|e| format!("idempotency keys: {e}"))?;
        match claim {
            Claim::Run => {
                let answer = run().await;
                let kept = match serde_json::to_string(&answer) {
                    Ok(stored) if keep(&answer) => self.finish(scope, key, &stored, now).await,
                    _ => self.release(scope, key).await,
                };
                if let Err(e) = kept {
                    tracing::warn!(error = %e, "cannot record an Idempotency-Key's answer");
                }
                Ok(Once::Answered(answer))
            }
            Claim::Replay(stored) => {
                metrics::counter!("idempotent_replays_total").increment(1);
                serde_json::from_str(&stored)
                    .map(Once::Answered)
                    .map_err(|e| format!("a stored answer: {e}"))
            }
            Claim::Mismatch => Ok(Once::Mismatch),
            Claim::InFlight => Ok(Once::InFlight),
        }
    }

    /// Stores the answer of the request that ran.
    pub async fn finish(
        &self,
        scope: &str,
        key: &str,
        response: &str,
        now: Timestamp,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query(FINISH)
            .bind(scope)
            .bind(key)
            .bind(response)
            .bind(now.as_millis())
            .execute(pool)
            .await
            .map(drop))
    }

    /// Frees the key of a request that ran without an answer worth keeping (try again).
    pub async fn release(&self, scope: &str, key: &str) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query(RELEASE)
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await
            .map(drop))
    }

    /// Forgets keys older than the TTL at `now`; how many.
    pub async fn forget_expired(&self, now: Timestamp) -> Result<u64, sqlx::Error> {
        let before = now.as_millis() - KEY_TTL_MS;
        Ok(on_pool!(self, pool => sqlx::query(FORGET)
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "CREATE TABLE idempotency_keys (scope TEXT NOT NULL, key TEXT NOT NULL, \
        fingerprint TEXT NOT NULL, response TEXT, created_at BIGINT NOT NULL, \
        updated_at BIGINT NOT NULL, PRIMARY KEY (scope, key))";

    async fn keys() -> IdempotencyKeys {
        let pool = crate::store::open_sqlite_in_memory().await.expect("sqlite");
        sqlx::query(TABLE).execute(&pool).await.expect("table");
        IdempotencyKeys::Sqlite(pool)
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[tokio::test]
    async fn the_first_runs_repeats_replay_others_are_refused() {
        let keys = keys().await;
        let claim = |fp: &'static str, ms: i64| {
            let keys = keys.clone();
            async move { keys.claim("book:a", "k1", fp, at(ms)).await.expect("claim") }
        };
        assert_eq!(claim("p1", 0).await, Claim::Run);
        assert_eq!(claim("p1", 10).await, Claim::InFlight, "still running");
        assert_eq!(claim("p2", 10).await, Claim::Mismatch);
        keys.finish("book:a", "k1", "{\"ok\":1}", at(20))
            .await
            .expect("finish");
        assert_eq!(claim("p1", 30).await, Claim::Replay("{\"ok\":1}".into()));
        assert_eq!(claim("p2", 30).await, Claim::Mismatch);
        // Another scope (account) has its own keys.
        assert_eq!(
            keys.claim("book:b", "k1", "p2", at(30))
                .await
                .expect("claim"),
            Claim::Run
        );
        // After 24 h the key is new again.
        assert_eq!(claim("p2", KEY_TTL_MS + 1).await, Claim::Run);
    }

    #[tokio::test]
    async fn a_released_or_abandoned_key_runs_again() {
        let keys = keys().await;
        assert_eq!(
            keys.claim("s", "k", "p", at(0)).await.expect("claim"),
            Claim::Run
        );
        keys.release("s", "k").await.expect("release");
        assert_eq!(
            keys.claim("s", "k", "p", at(1)).await.expect("claim"),
            Claim::Run
        );
        assert_eq!(
            keys.claim("s", "k", "p", at(RUNNING_LEASE_MS))
                .await
                .expect("claim"),
            Claim::InFlight
        );
        assert_eq!(
            keys.claim("s", "k", "p", at(RUNNING_LEASE_MS + 1))
                .await
                .expect("claim"),
            Claim::Run,
            "the first died with its process"
        );
        keys.finish("s", "k", "done", at(RUNNING_LEASE_MS + 2))
            .await
            .expect("finish");
        assert_eq!(
            keys.forget_expired(at(KEY_TTL_MS)).await.expect("forget"),
            0
        );
        assert_eq!(
            keys.forget_expired(at(RUNNING_LEASE_MS + 2 + KEY_TTL_MS))
                .await
                .expect("forget"),
            1
        );
    }

    #[tokio::test]
    async fn once_runs_the_first_and_replays_it_unless_it_said_try_again() {
        let keys = keys().await;
        let run = |keys: IdempotencyKeys, key: &'static str, answer: Result<u32, String>| async move {
            let ran = std::cell::Cell::new(false);
            let outcome = keys
                .once(
                    "s",
                    key,
                    "p",
                    at(0),
                    |a: &Result<u32, String>| a.is_ok(),
                    || async {
                        ran.set(true);
                        answer
                    },
                )
                .await
                .expect("keys");
            (outcome, ran.get())
        };
        assert_eq!(
            run(keys.clone(), "k", Ok(7)).await,
            (Once::Answered(Ok(7)), true)
        );
        assert_eq!(
            run(keys.clone(), "k", Ok(8)).await,
            (Once::Answered(Ok(7)), false),
            "replayed, not run"
        );
        assert_eq!(
            run(keys.clone(), "t", Err("try again".into())).await,
            (Once::Answered(Err("try again".into())), true)
        );
        assert_eq!(
            run(keys.clone(), "t", Ok(9)).await,
            (Once::Answered(Ok(9)), true),
            "a try-again answer is not kept"
        );
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(valid_key("order-2026-11-29:7").is_ok());
        assert!(valid_key("").is_err());
        assert!(valid_key("with space").is_err());
        assert!(valid_key(&"k".repeat(256)).is_err());
        assert!(valid_key("ключ").is_err());
    }
}
