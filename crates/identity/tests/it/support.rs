//! Fixtures: stores, services and sign-up requests.

use std::sync::Arc;

use domain::{Email, PersonName, Role};
use identity::IdentityConfig;
use identity::{AccountStore, IdentityService, SignUp, SigningKey};

pub const PASSWORD: &str = "correct horse battery";

/// `RICKSHAW_TEST_DATABASE_URL`, or the server on this machine (trust auth).
pub fn database_url() -> String {
    std::env::var("RICKSHAW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rickshaw_test".to_owned())
}

/// The PostgreSQL store (schema `identity` of the test database, created and migrated).
pub async fn pg_store() -> identity::PgAccountStore {
    let url = database_url();
    platform::store::ensure_postgres_database(&url)
        .await
        .expect("a PostgreSQL server (set RICKSHAW_TEST_DATABASE_URL)");
    let store = identity::PgAccountStore::connect(&url, 8)
        .await
        .expect("connects");
    store.migrate().await.expect("migrates");
    store
}

/// A SQLite store on disk, as the embedded mode opens it; lives as long as the directory.
pub async fn sqlite_store(dir: &tempfile::TempDir) -> identity::SqliteAccountStore {
    let pool = platform::store::open_sqlite(&dir.path().join("identity.db"))
        .await
        .expect("sqlite");
    identity::SqliteAccountStore::new(pool)
        .await
        .expect("migrates")
}

/// `login_free_failures` failures free, then a minute's wait (doubling).
pub fn config(login_free_failures: u32) -> IdentityConfig {
    IdentityConfig {
        signing_key: None,
        access_ttl_s: 900,
        refresh_ttl_s: 3600,
        login_free_failures,
        login_backoff_ms: 60_000,
        login_backoff_max_ms: 600_000,
        ..IdentityConfig::default()
    }
}

pub fn key() -> SigningKey {
    SigningKey::from_bytes("test-signing-key-of-at-least-32-bytes").expect("valid key")
}

pub fn service(store: Arc<dyn AccountStore>, config: &IdentityConfig) -> IdentityService {
    IdentityService::new(store, key(), config)
}

/// A service over a fresh SQLite store; keep the directory alive as long as the service.
pub async fn sqlite_service(config: &IdentityConfig) -> (IdentityService, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sqlite_store(&dir).await;
    (service(Arc::new(store), config), dir)
}

/// An email unique to this run (the PostgreSQL database is shared between runs).
pub fn email(base: &str) -> Email {
    identity::store::contract::unique_email(base)
}

pub fn sign_up(email: &Email, role: Role) -> SignUp {
    SignUp {
        email: email.clone(),
        password: PASSWORD.to_owned(),
        name: PersonName::parse("Ana Rahman").expect("valid name"),
        role,
    }
}
