//! Password rules and Argon2id hashing (PHC strings, the crate's default parameters). Hashing and
//! verifying take tens of milliseconds of CPU each, so they run on tokio's blocking threads.

use std::sync::LazyLock;

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

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, IdentityError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| IdentityError::Store(format!("password hashing task: {e}")))?
        .map_err(IdentityError::Store)
}

/// The Argon2id PHC string of `password`, with a fresh random salt.
pub async fn hash(password: String) -> Result<String, IdentityError> {
    blocking(move || hash_now(&password)).await
}

/// Whether `password` matches `hash`; with no hash (an unknown email), checks it against the dummy
/// hash and answers `false`, taking as long as a real check.
pub async fn verify(password: String, hash: Option<String>) -> Result<bool, IdentityError> {
    blocking(move || match hash {
        Some(hash) => verify_now(&password, &hash),
        None => {
            let dummy = DUMMY_HASH.as_ref().map_err(Clone::clone)?;
            verify_now(&password, dummy).map(|_| false)
        }
    })
    .await
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
        let first = hash("correct horse".into()).await.expect("hashed");
        let second = hash("correct horse".into()).await.expect("hashed");
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "a fresh salt every time");
        assert!(!first.contains("correct horse"));
        assert!(
            verify("correct horse".into(), Some(first.clone()))
                .await
                .expect("checked")
        );
        assert!(
            !verify("correct horsE".into(), Some(first))
                .await
                .expect("checked")
        );
        assert!(
            !verify("correct horse".into(), None).await.expect("checked"),
            "no account: never a match"
        );
        assert!(
            verify("x".into(), Some("not a phc string".into()))
                .await
                .is_err(),
            "a corrupt stored hash is an error, not a mismatch"
        );
    }
}
