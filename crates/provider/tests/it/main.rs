//! The provider store contract on SQLite and on a real PostgreSQL server; the HTTP API driven
//! through its router (Stripe's semantics: amounts, states, idempotency, errors); webhook
//! delivery to a real receiver; and the module as the composition starts it.

mod api;
mod module;
mod support;
mod webhooks;

mod sqlite {
    provider::provider_store_contract!(async {
        let pool = platform::store::open_sqlite_in_memory()
            .await
            .expect("sqlite");
        provider::SqliteProviderStore::new(pool)
            .await
            .expect("migrates")
    });
}

/// The same on a file, as `rickshaw up` opens it: writes on the store's writer connection and
/// lane, reads on the pool.
mod sqlite_file {
    provider::provider_store_contract!(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pool = platform::store::open_sqlite(&dir.keep().join("provider.db"))
            .await
            .expect("sqlite");
        provider::SqliteProviderStore::new(pool)
            .await
            .expect("migrates")
    });
}

mod postgres {
    /// `RICKSHAW_TEST_DATABASE_URL`, or the server on this machine (trust auth).
    pub fn database_url() -> String {
        std::env::var("RICKSHAW_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rickshaw_test".to_owned())
    }

    pub async fn store() -> provider::PgProviderStore {
        let url = database_url();
        platform::store::ensure_postgres_database(&url)
            .await
            .expect("a PostgreSQL server (set RICKSHAW_TEST_DATABASE_URL)");
        let store = provider::PgProviderStore::connect(&url, 12)
            .await
            .expect("connects");
        store.migrate().await.expect("migrates");
        store
    }

    provider::provider_store_contract!(store());
}
