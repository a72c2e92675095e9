//! The rating store contract on a real PostgreSQL server.

/// `RICKSHAW_TEST_DATABASE_URL`, or the server on this machine (trust auth).
fn database_url() -> String {
    std::env::var("RICKSHAW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rickshaw_test".to_owned())
}

async fn store() -> rating::PgRatingStore {
    let url = database_url();
    platform::store::ensure_postgres_database(&url)
        .await
        .expect("a PostgreSQL server (set RICKSHAW_TEST_DATABASE_URL)");
    let store = rating::PgRatingStore::connect(&url, 2)
        .await
        .expect("connects");
    store.migrate().await.expect("migrates");
    store
}

rating::rating_store_contract!(store());
