//! The trip store contract on SQLite and on a real PostgreSQL server, and the service's rules
//! under concurrency.

mod outbox;
mod service;
mod sharded;

/// Bookings held by nobody: these tests are about trips, not payments (the payment service's own
/// tests, and the end-to-end ones, run the real thing against the provider).
pub struct NoCharge;

#[async_trait::async_trait]
impl payment::PaymentApi for NoCharge {
    async fn authorize(
        &self,
        request: payment::Authorize,
    ) -> Result<payment::Authorization, payment::PaymentError> {
        Ok(payment::Authorization {
            trip: request.trip,
            held: request.fare,
            status: payment::PaymentStatus::Authorized,
        })
    }

    async fn void(&self, _trip: domain::TripId) -> Result<(), payment::PaymentError> {
        Ok(())
    }

    async fn confirm(
        &self,
        _rider: domain::AccountId,
        trip: domain::TripId,
    ) -> Result<payment::Authorization, payment::PaymentError> {
        Err(payment::PaymentError::NotFound(trip))
    }

    async fn payments_of(
        &self,
        _rider: domain::AccountId,
    ) -> Result<Vec<payment::PaymentView>, payment::PaymentError> {
        Ok(Vec::new())
    }

    async fn earnings_of(
        &self,
        _driver: domain::AccountId,
    ) -> Result<payment::Earnings, payment::PaymentError> {
        Err(payment::PaymentError::Unavailable(
            "no payments in these tests".into(),
        ))
    }

    async fn refund(
        &self,
        trip: domain::TripId,
        _amount: Option<u64>,
        _idempotency_key: String,
        _by: domain::AccountId,
    ) -> Result<payment::PaymentView, payment::PaymentError> {
        Err(payment::PaymentError::NotFound(trip))
    }
}

mod sqlite {
    trip::trip_store_contract!(async {
        let pool = platform::store::open_sqlite_in_memory()
            .await
            .expect("sqlite");
        trip::SqliteTripStore::new(pool).await.expect("migrates")
    });
}

/// The same on a file, as `rickshaw up` opens it: reads on the pool, writes on one connection of
/// their own, on the store's lane.
mod sqlite_file {
    trip::trip_store_contract!(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pool = platform::store::open_sqlite(&dir.keep().join("trip.db"))
            .await
            .expect("sqlite");
        trip::SqliteTripStore::new(pool).await.expect("migrates")
    });
}

mod postgres {
    /// `RICKSHAW_TEST_DATABASE_URL`, or the server on this machine (trust auth).
    pub fn database_url() -> String {
        std::env::var("RICKSHAW_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rickshaw_test".to_owned())
    }

    pub async fn store() -> trip::PgTripStore {
        let url = database_url();
        platform::store::ensure_postgres_database(&url)
            .await
            .expect("a PostgreSQL server (set RICKSHAW_TEST_DATABASE_URL)");
        let store = trip::PgTripStore::connect(&url, 8).await.expect("connects");
        store.migrate().await.expect("migrates");
        store
    }

    /// A store on a database of its own, `trip_<test>` (dropped and created again): a
    /// dispatcher's view of open trips is per database, so tests that dispatch must not share one.
    pub async fn fresh_store(test: &str) -> trip::PgTripStore {
        let url = database_url();
        let admin = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
        let name = format!("trip_{test}");
        let postgres = sqlx::PgPool::connect(&format!("{admin}/postgres"))
            .await
            .expect("a PostgreSQL server (set RICKSHAW_TEST_DATABASE_URL)");
        platform::store::execute(
            &postgres,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await
        .expect("drops");
        postgres.close().await;
        platform::store::ensure_postgres_database(&format!("{admin}/{name}"))
            .await
            .expect("creates");
        store_on(test).await
    }

    /// Another store on the database `fresh_store(test)` made (another instance, say).
    pub async fn store_on(test: &str) -> trip::PgTripStore {
        let url = database_url();
        let admin = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
        let store = trip::PgTripStore::connect(&format!("{admin}/trip_{test}"), 8)
            .await
            .expect("connects");
        store.migrate().await.expect("migrates");
        store
    }

    trip::trip_store_contract!(store());
}
