//! The audit store on SQLite and on a real PostgreSQL server (a fresh database each run): events
//! are recorded once by id, read back in the order they happened through every filter and
//! across pages, and never changed or removed.

use std::collections::BTreeMap;

use audit::{AuditQuery, AuditStore, Cursor, Recorded};
use domain::events::Event;
use domain::{AccountId, Role, Timestamp, TripId};
use platform::bus::Envelope;

fn id<T: From<uuid::Uuid>>(n: u128) -> T {
    T::from(uuid::Uuid::from_u128(n))
}

fn rated(trip: TripId, rater: AccountId, ratee: AccountId, at: i64, n: u128) -> Recorded {
    let event = rating::TripRated {
        trip_id: trip,
        rater_role: Role::Rider,
        rater_id: rater,
        ratee_id: ratee,
        stars: 5,
        comment: None,
        tags: vec![],
        rated_at: Timestamp::from_millis(at),
    };
    Recorded::of(Envelope::from_event(&event, id(n), Timestamp::from_millis(at)).expect("encodes"))
}

fn status(driver: AccountId, online: bool, at: i64, n: u128) -> Recorded {
    let event = domain::events::DriverStatusChanged {
        driver,
        online,
        package: None,
        at: Timestamp::from_millis(at),
    };
    assert_eq!(
        domain::events::DriverStatusChanged::SUBJECT,
        "supply.driver_status.v1"
    );
    Recorded::of(Envelope::from_event(&event, id(n), Timestamp::from_millis(at)).expect("encodes"))
}

async fn all(store: &AuditStore, mut query: AuditQuery, page: u32) -> Vec<String> {
    let mut kinds = Vec::new();
    loop {
        let rows = store.query(&query, page).await.expect("reads");
        let full = rows.len() == page as usize;
        query.after = rows.last().map(|(cursor, _)| *cursor);
        kinds.extend(
            rows.into_iter()
                .map(|(_, e)| format!("{}@{}", e.kind, e.occurred_at.as_millis())),
        );
        if !full {
            return kinds;
        }
    }
}

async fn contract(store: AuditStore) {
    let (trip, other_trip) = (id::<TripId>(1), id::<TripId>(2));
    let (rider, driver) = (id::<AccountId>(10), id::<AccountId>(11));
    // Recorded out of order, in two batches, with a duplicate across them.
    let first = vec![
        rated(trip, rider, driver, 3_000, 100),
        status(driver, true, 1_000, 101),
        rated(other_trip, rider, driver, 2_000, 102),
    ];
    assert_eq!(store.record(&first).await.expect("records"), 3);
    let second = vec![
        status(driver, false, 4_000, 103),
        rated(trip, rider, driver, 3_000, 100),
    ];
    assert_eq!(
        store.record(&second).await.expect("records"),
        1,
        "an event recorded already is skipped by its id"
    );
    assert_eq!(store.record(&second).await.expect("again"), 0);

    let everything = all(&store, AuditQuery::default(), 2).await;
    assert_eq!(
        everything,
        [
            "driver.online@1000",
            "rating.trip_rated@2000",
            "rating.trip_rated@3000",
            "driver.offline@4000"
        ],
        "in the order things happened, across pages"
    );
    let of_trip = all(
        &store,
        AuditQuery {
            trip: Some(trip),
            ..AuditQuery::default()
        },
        10,
    )
    .await;
    assert_eq!(of_trip, ["rating.trip_rated@3000"]);
    let of_rider = all(
        &store,
        AuditQuery {
            account: Some(rider),
            ..AuditQuery::default()
        },
        10,
    )
    .await;
    assert_eq!(of_rider.len(), 2, "the rider is named by both ratings");
    let family = all(
        &store,
        AuditQuery {
            kind: Some("driver".into()),
            ..AuditQuery::default()
        },
        10,
    )
    .await;
    assert_eq!(family, ["driver.online@1000", "driver.offline@4000"]);
    let exact = all(
        &store,
        AuditQuery {
            kind: Some("driver.online".into()),
            ..AuditQuery::default()
        },
        10,
    )
    .await;
    assert_eq!(exact, ["driver.online@1000"]);
    let not_a_family = all(
        &store,
        AuditQuery {
            kind: Some("driv".into()),
            ..AuditQuery::default()
        },
        10,
    )
    .await;
    assert!(not_a_family.is_empty(), "{not_a_family:?}");
    let window = all(
        &store,
        AuditQuery {
            since: Some(Timestamp::from_millis(2_000)),
            until: Some(Timestamp::from_millis(4_000)),
            ..AuditQuery::default()
        },
        10,
    )
    .await;
    assert_eq!(
        window,
        ["rating.trip_rated@2000", "rating.trip_rated@3000"],
        "since is inclusive, until exclusive"
    );
    let rows = store
        .query(
            &AuditQuery {
                trip: Some(trip),
                ..AuditQuery::default()
            },
            10,
        )
        .await
        .expect("reads");
    let entry = &rows[0].1;
    assert_eq!(entry.actor.account_id, Some(rider));
    assert_eq!(entry.data["stars"], 5, "the event as published");
    assert_eq!(entry.subject, "rating.trip_rated.v1");
    let beyond = Cursor {
        occurred_at: 9_000,
        seq: 0,
    };
    let none = store
        .query(
            &AuditQuery {
                after: Some(beyond),
                ..AuditQuery::default()
            },
            10,
        )
        .await
        .expect("reads");
    assert!(none.is_empty());
}

/// Rows cannot be changed or removed, whoever asks.
macro_rules! append_only {
    ($pool:expr) => {{
        for statement in [
            "UPDATE audit_events SET kind = 'forged'",
            "DELETE FROM audit_events",
        ] {
            let e = sqlx::query(statement)
                .execute($pool)
                .await
                .expect_err(statement);
            assert!(e.to_string().contains("append-only"), "{statement}: {e}");
        }
    }};
}

#[test]
fn query_parameters_reach_the_store() {
    let params: BTreeMap<String, String> = [("kind".to_owned(), "payment".to_owned())].into();
    assert_eq!(
        AuditQuery::from_params(&params)
            .expect("valid")
            .kind
            .as_deref(),
        Some("payment")
    );
}

#[tokio::test]
async fn on_sqlite() {
    let pool = platform::store::open_sqlite_in_memory()
        .await
        .expect("sqlite");
    let store = AuditStore::sqlite(pool.clone()).await.expect("migrates");
    contract(store).await;
    append_only!(&pool);
}

#[tokio::test]
async fn on_postgres() {
    let base = std::env::var("RICKSHAW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rickshaw_test".to_owned());
    let (server, _) = base.rsplit_once('/').expect("a database URL");
    let name = format!(
        "rickshaw_audit_{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let url = format!("{server}/{name}");
    platform::store::ensure_postgres_database(&url)
        .await
        .expect("a PostgreSQL server (set RICKSHAW_TEST_DATABASE_URL)");
    let store = AuditStore::postgres(&url, 2).await.expect("connects");
    store.migrate().await.expect("migrates");
    store
        .migrate()
        .await
        .expect("migrating again changes nothing");
    contract(store.clone()).await;
    if let AuditStore::Postgres(pool) = &store {
        append_only!(pool);
    }
    store.close().await;
    let admin = platform::store::open_postgres(&format!("{server}/postgres"), "public", 1)
        .await
        .expect("admin");
    let _ = platform::store::execute(
        &admin,
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
    admin.close().await;
}
