//! Password rules and Argon2id hashing (PHC strings, the crate's default parameters). Hashing and
//! verifying take ~150 ms of CPU and ~19 MiB of memory each, so they run on a bounded pool: at
//! most `hash_workers` at once on blocking threads, at most `hash_queue` more waiting, none
//! waiting longer than `hash_queue_timeout_ms`. Past that a sign-up or login is refused at once
//! with [`IdentityError::Busy`] (503 and `Retry-After`), so a flood of logins costs the flooder
//! refusals, not the process its memory. A caller that gives up while waiting leaves the queue;
//! one already hashing finishes on its worker, whose slot is only then free again.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use platform::config::IdentityConfig;
use tokio::sync::Semaphore;

use argon2::password_hash::Error as HashError;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::IdentityError;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// What an unknown email's login is checked against, so it costs what a known one does. Made
/// once per process from a random password, with the same parameters as real hashes.
static DUMMY_HASH: LazyLock<Result<String, String>> =
    LazyLock::new(|| hash_now(&crate::tokens::random_token()));

/// Makes the dummy hash now, on a blocking thread, if a tokio runtime is running: otherwise the
/// first login of an unknown email would take one hash longer than the others.
pub fn warm_up() {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn_blocking(|| LazyLock::force(&DUMMY_HASH));
    }
}

/// `WeakPassword` unless the password has 8 to 128 characters.
pub fn check_strength(password: &str) -> Result<(), IdentityError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(IdentityError::WeakPassword(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(IdentityError::WeakPassword(format!(
            "password must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

fn hash_now(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| format!("hashing a password: {e}"))
}

fn verify_now(password: &str, hash: &str) -> Result<bool, String> {
    match Argon2::default().verify_password(password.as_bytes(), hash) {
        Ok(()) => Ok(true),
        Err(HashError::PasswordInvalid) => Ok(false),
        Err(e) => Err(format!("checking a password against its stored hash: {e}")),
    }
}

/// The bounded pool every password hash and check runs on (cheap to clone: one pool).
#[derive(Clone, Debug)]
pub struct Hasher {
    /// One permit a hash running.
    workers: Arc<Semaphore>,
    /// One permit a hash running or waiting.
    admitted: Arc<Semaphore>,
    queue_timeout: Duration,
}

impl Hasher {
    pub fn new(workers: usize, queue: usize, queue_timeout: Duration) -> Self {
        let workers = workers.max(1);
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers.saturating_add(queue))),
            queue_timeout,
        }
    }

    /// The pool `[identity]` asks for (`hash_workers = 0`: one worker per core).
    pub fn from_config(config: &IdentityConfig) -> Self {
        let workers = match config.hash_workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Self::new(
            workers,
            config.hash_queue,
            Duration::from_millis(config.hash_queue_timeout_ms),
        )
    }

    fn busy(&self, why: &str) -> IdentityError {
        metrics::counter!("identity_hashes_refused_total", "why" => why.to_owned()).increment(1);
        IdentityError::Busy {
            retry_after_s: self.queue_timeout.as_secs().max(1),
        }
    }

    /// Runs `work` on a worker once one is free, or refuses at once when the queue is full or
    /// after the queue deadline.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, IdentityError> {
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            return Err(self.busy("queue_full"));
        };
        let worker =
            match tokio::time::timeout(self.queue_timeout, self.workers.clone().acquire_owned())
                .await
            {
                Ok(Ok(worker)) => worker,
                Ok(Err(_)) | Err(_) => return Err(self.busy("queue_timeout")),
            };
        tokio::task::spawn_blocking(move || {
            let _slots = (worker, admitted);
            work()
        })
        .await
        .map_err(|e| IdentityError::Store(format!("password hashing task: {e}")))?
        .map_err(IdentityError::Store)
    }

    /// The Argon2id PHC string of `password`, with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, IdentityError> {
        self.run(move || hash_now(&password)).await
    }

    /// Whether `password` matches `hash`; with no hash (an unknown email), checks it against the
    /// dummy hash and answers `false`, taking as long as a real check.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, IdentityError> {
        self.run(move || match hash {
            Some(hash) => verify_now(&password, &hash),
            None => {
                let dummy = DUMMY_HASH.as_ref().map_err(Clone::clone)?;
                verify_now(&password, dummy).map(|_| false)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_need_8_to_128_characters() {
        assert!(check_strength("1234567").is_err());
        assert!(check_strength("12345678").is_ok());
        // Characters, not bytes: eight two-byte characters pass.
        assert!(check_strength("éééééééé").is_ok());
        assert!(check_strength(&"x".repeat(128)).is_ok());
        assert!(matches!(
            check_strength(&"x".repeat(129)),
            Err(IdentityError::WeakPassword(m)) if m.contains("128")
        ));
    }

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_verify_only_their_password() {
        let hasher = Hasher::new(2, 4, Duration::from_secs(5));
        let first = hasher.hash("correct horse".into()).await.expect("hashed");
        let second = hasher.hash("correct horse".into()).await.expect("hashed");
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "a fresh salt every time");
        assert!(!first.contains("correct horse"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(first.clone()))
                .await
                .expect("checked")
        );
        assert!(
            !hasher
                .verify("correct horsE".into(), Some(first))
                .await
                .expect("checked")
        );
        assert!(
            !hasher
                .verify("correct horse".into(), None)
                .await
                .expect("checked"),
            "no account: never a match"
        );
        assert!(
            hasher
                .verify("x".into(), Some("not a phc string".into()))
                .await
                .is_err(),
            "a corrupt stored hash is an error, not a mismatch"
        );
    }

    /// Work that holds its worker until `release` says so.
    fn held(release: &Arc<tokio::sync::Notify>) -> impl FnOnce() -> Result<u32, String> + use<> {
        let release = release.clone();
        move || {
            // On a blocking thread, which may wait on the runtime.
            tokio::runtime::Handle::current().block_on(release.notified());
            Ok(7)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_runs_its_workers_queues_a_few_and_refuses_the_rest_at_once() {
        let hasher = Hasher::new(1, 1, Duration::from_secs(30));
        let release = Arc::new(tokio::sync::Notify::new());
        let running = tokio::spawn({
            let hasher = hasher.clone();
            let work = held(&release);
            async move { hasher.run(work).await }
        });
        // Wait until the first holds the only worker.
        while hasher.workers.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let queued = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.run(|| Ok(8)).await }
        });
        while hasher.admitted.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = std::time::Instant::now();
        let refused = hasher.run(|| Ok(9)).await;
        assert!(
            matches!(refused, Err(IdentityError::Busy { retry_after_s: 30 })),
            "{refused:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused without waiting"
        );
        release.notify_one();
        assert_eq!(running.await.expect("joined").expect("ran"), 7);
        assert_eq!(queued.await.expect("joined").expect("ran"), 8);
        assert_eq!(hasher.run(|| Ok(10)).await.expect("free again"), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_waiting_past_the_deadline_is_refused_and_leaves_the_queue() {
        let hasher = Hasher::new(1, 4, Duration::from_millis(100));
        let release = Arc::new(tokio::sync::Notify::new());
        let running = tokio::spawn({
            let hasher = hasher.clone();
            let work = held(&release);
            async move { hasher.run(work).await }
        });
        while hasher.workers.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let waited = hasher.run(|| Ok(1)).await;
        assert!(
            matches!(waited, Err(IdentityError::Busy { retry_after_s: 1 })),
            "{waited:?}"
        );
        assert_eq!(
            hasher.admitted.available_permits(),
            4,
            "only the running hash is admitted"
        );
        release.notify_one();
        assert_eq!(running.await.expect("joined").expect("ran"), 7);
    }
}
