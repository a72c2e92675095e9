//! The payment store contract on SQLite (in memory and on a file) and on a real PostgreSQL server.

mod sqlite {
    payment::payment_store_contract!(async {
        let pool = platform::store::open_sqlite_in_memory()
            .await
            .expect("sqlite");
        payment::SqlitePaymentStore::new(pool)
            .await
            .expect("migrates")
    });
}

/// The same on a file, as `rickshaw up` opens it: writes on the store's writer connection and
/// lane, reads on the pool.
mod sqlite_file {
    payment::payment_store_contract!(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pool = platform::store::open_sqlite(&dir.keep().join("payment.db"))
            .await
            .expect("sqlite");
        payment::SqlitePaymentStore::new(pool)
            .await
            .expect("migrates")
    });
}

mod postgres {
    /// `RICKSHAW_TEST_DATABASE_URL`, or the server on this machine (trust auth).
    async fn store() -> payment::PgPaymentStore {
        let url = std::env::var("RICKSHAW_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rickshaw_test".to_owned());
        platform::store::ensure_postgres_database(&url)
            .await
            .expect("a PostgreSQL server (set RICKSHAW_TEST_DATABASE_URL)");
        let store = payment::PgPaymentStore::connect(&url, 4)
            .await
            .expect("connects");
        store.migrate().await.expect("migrates");
        store
    }

    payment::payment_store_contract!(store());
}
