//! Password rules and Argon2id hashing (PHC strings, the crate's default parameters). Hashing and
//! verifying take ~150 ms of CPU and ~19 MiB of memory each, so they run on a bounded pool: at
//! most `hash_workers` at once on dedicated threads, at most `hash_queue` more waiting, none
//! waiting longer than `hash_queue_timeout_ms`. Past that a sign-up or login is refused at once
//! with [`IdentityError::Busy`] (503 and `Retry-After`), so a flood of logins costs the flooder
//! refusals, not the process its memory. A caller that gives up while waiting leaves the queue;
//! one already hashing finishes on its worker, whose slot is only then free again.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use crate::IdentityConfig;
use tokio::sync::{mpsc, oneshot};

use std::cell::RefCell;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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

thread_local! {
    /// Argon2's working memory (~19 MiB at the default parameters), allocated once per hashing
    /// thread and reused by every hash on it: allocating it per hash let the allocator keep a
    /// freed copy per arena (measured: +19 MiB a login, up to ~230 MiB, after ten logins).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// `argon2`'s output for `password` and `salt` into `out`, in this thread's working memory.
fn hash_into(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let blocks = argon2.params().block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(|e| format!("hashing a password: {e}"))
    })
}

/// A fresh Argon2id PHC string (the crate's default parameters, a random 16-byte salt): what
/// `PasswordHasher::hash_password` makes, in reused memory.
fn hash_now(password: &str) -> Result<String, String> {
    let argon2 = Argon2::default();
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; 32];
    hash_into(&argon2, password.as_bytes(), &salt, &mut out)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `hash` (its own algorithm, version, parameters and
/// salt), compared in constant time; an unreadable hash is an error, not a mismatch.
fn verify_now(password: &str, hash: &str) -> Result<bool, String> {
    let unreadable =
        |e: &dyn std::fmt::Display| format!("checking a password against its stored hash: {e}");
    let parsed = PasswordHash::new(hash).map_err(|e| unreadable(&e))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(unreadable(&"the stored hash has no salt or output"));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| unreadable(&e))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| unreadable(&e))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| unreadable(&e))?;
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    hash_into(&argon2, password.as_bytes(), salt.as_ref(), &mut out)?;
    let computed = Output::new(&out).map_err(|e| unreadable(&e))?;
    // `Output`'s equality is constant-time.
    Ok(&computed == expected)
}

/// One hash or check waiting for a worker.
struct Job {
    work: Box<dyn FnOnce() + Send>,
    /// Told when a worker takes the job; dropped by a caller that stopped waiting.
    started: oneshot::Sender<()>,
}

/// The bounded pool every password hash and check runs on (cheap to clone: one pool).
///
/// Its workers are dedicated threads, not tokio's blocking pool: Argon2id allocates ~19 MiB a
/// hash, and the allocator keeps a freed block in the arena of the thread that freed it — spread
/// over the blocking pool's many threads (up to 512) that was hundreds of MiB kept after a flood
/// (measured: +510 MiB). A few long-lived threads reuse their own arenas.
#[derive(Clone, Debug)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
    queue_timeout: Duration,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Hasher {
    /// `workers` threads (at least one), `queue` jobs waiting at most (at least one).
    pub fn new(workers: usize, queue: usize, queue_timeout: Duration) -> Self {
        let (jobs, receiver) = mpsc::channel::<Job>(queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..workers.max(1) {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rickshaw-hash-{n}"))
                .spawn(move || {
                    loop {
                        // One worker waits on the queue at a time; the others wait for it.
                        let job = receiver
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .blocking_recv();
                        let Some(job) = job else { break };
                        // A caller that gave up (past the deadline, or gone) costs no hash.
                        if job.started.send(()).is_ok() {
                            (job.work)();
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        Self {
            jobs,
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

    /// Runs `work` on a worker once one is free, or refuses at once when the queue is full, or
    /// when no worker took it within the queue deadline.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, IdentityError> {
        let (done, result) = oneshot::channel();
        let (started, taken) = oneshot::channel();
        let job = Job {
            work: Box::new(move || {
                let _ = done.send(work());
            }),
            started,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Err(self.busy("queue_full")),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(IdentityError::Store("the password workers stopped".into()));
            }
        }
        match tokio::time::timeout(self.queue_timeout, taken).await {
            Ok(Ok(())) => {}
            // Dropping `taken` tells the worker that reaches the job to skip it.
            Ok(Err(_)) | Err(_) => return Err(self.busy("queue_timeout")),
        }
        result
            .await
            .map_err(|_| IdentityError::Store("a password worker stopped".into()))?
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

    #[test]
    fn hashes_interoperate_with_the_argon2_crates_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Stored by an earlier version (the crate's own hasher): still verified.
        let theirs = Argon2::default()
            .hash_password(b"correct horse")
            .expect("hashed")
            .to_string();
        assert_eq!(verify_now("correct horse", &theirs), Ok(true));
        assert_eq!(verify_now("correct horsE", &theirs), Ok(false));
        // Ours: the crate verifies it, so it is a standard PHC string.
        let ours = hash_now("correct horse").expect("hashed");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert_eq!(
            ours.split('$').nth(3),
            theirs.split('$').nth(3),
            "the same parameters"
        );
    }

    /// Work that tells `started` it runs, then holds its worker until `release` says so.
    fn held(
        started: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    ) -> impl FnOnce() -> Result<u32, String> + Send + 'static {
        move || {
            let _ = started.send(());
            let _ = release.recv();
            Ok(7)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_runs_its_workers_queues_a_few_and_refuses_the_rest_at_once() {
        let hasher = Hasher::new(1, 1, Duration::from_secs(30));
        let (started, running) = std::sync::mpsc::channel();
        let (release, hold) = std::sync::mpsc::channel();
        let first = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.run(held(started, hold)).await }
        });
        running.recv().expect("the first holds the only worker");
        let queued = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.run(|| Ok(8)).await }
        });
        while hasher.jobs.capacity() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The queue (of one) is full: the next is refused at once.
        let started = std::time::Instant::now();
        let refused = hasher.run(|| Ok(9)).await.expect_err("refused");
        assert_eq!(refused, IdentityError::Busy { retry_after_s: 30 });
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused without waiting"
        );
        release.send(()).expect("released");
        assert_eq!(first.await.expect("joined").expect("ran"), 7);
        assert_eq!(queued.await.expect("joined").expect("ran"), 8);
        assert_eq!(hasher.run(|| Ok(10)).await.expect("free again"), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_waiting_past_the_deadline_is_refused_and_never_runs() {
        let hasher = Hasher::new(1, 4, Duration::from_millis(100));
        let (started, running) = std::sync::mpsc::channel();
        let (release, hold) = std::sync::mpsc::channel();
        let first = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.run(held(started, hold)).await }
        });
        running.recv().expect("the first holds the only worker");
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waited = hasher
            .run({
                let ran = ran.clone();
                move || {
                    ran.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok(1)
                }
            })
            .await;
        assert_eq!(waited, Err(IdentityError::Busy { retry_after_s: 1 }));
        release.send(()).expect("released");
        assert_eq!(first.await.expect("joined").expect("ran"), 7);
        assert_eq!(hasher.run(|| Ok(2)).await.expect("the worker is free"), 2);
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "a job its caller gave up on is skipped"
        );
    }
}
