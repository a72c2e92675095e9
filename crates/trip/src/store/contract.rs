//! The trip store contract: every `TripStore` passes these, instantiated once per implementation
//! with `trip_store_contract!`. Tests share a database with others: they only look at their own
//! ids.

use domain::pricing::RouteEstimate;
use domain::trip::{self, Command, Trip, TripPolicy};
use domain::{AccountId, LatLng, Package, Timestamp, TripId};

use super::{NewNotice, StoreError, TripRecord, TripStore};
use crate::view::TripView;

pub fn account() -> AccountId {
    AccountId::from_uuid(uuid::Uuid::now_v7())
}

pub fn record(rider: AccountId) -> TripRecord {
    let pickup = LatLng::new(23.78, 90.40).expect("valid");
    let dropoff = LatLng::new(23.75, 90.39).expect("valid");
    TripRecord {
        id: TripId::from_uuid(uuid::Uuid::now_v7()),
        quote_id: uuid::Uuid::now_v7(),
        package: Package::Car,
        pickup,
        dropoff,
        route: RouteEstimate {
            distance_m: 4_500,
            duration_s: 800,
        },
        fare: 21_000,
        trip: Trip::new(rider, Timestamp::from_millis(1_000)),
        updated_at: Timestamp::from_millis(1_000),
    }
}

fn notice(record: &TripRecord, kind: &'static str, driver: Option<AccountId>) -> NewNotice {
    NewNotice {
        kind: crate::NoticeKind::named(kind).expect("a notice kind"),
        rider: Some(record.trip.rider),
        driver,
        trip: TripView::of(record, &domain::trip::TripPolicy::default()),
        at: record.updated_at,
    }
}

/// `record` after `command`, as the service would store it.
pub fn after(record: &TripRecord, command: Command) -> TripRecord {
    let (trip, _) = trip::apply(
        &record.trip,
        command,
        record.updated_at,
        &TripPolicy::default(),
    )
    .expect("legal");
    TripRecord {
        trip,
        ..record.clone()
    }
}

pub async fn a_trip_round_trips_and_is_found_by_quote_and_account(store: &dyn TripStore) {
    let rider = account();
    let trip = record(rider);
    let stored = store
        .create(&trip, &[notice(&trip, "trip.requested", None)])
        .await
        .expect("created");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].notice.recipients, [rider]);
    assert_eq!(store.get(trip.id).await.expect("get"), Some(trip.clone()));
    assert_eq!(
        store.by_quote(trip.quote_id).await.expect("by quote"),
        Some(trip.clone())
    );
    assert_eq!(
        store.list_for(rider, 10).await.expect("list"),
        std::slice::from_ref(&trip)
    );
    assert!(
        store
            .list_for(account(), 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        store
            .get(TripId::from_uuid(uuid::Uuid::now_v7()))
            .await
            .expect("get")
            .is_none()
    );
    let open = store.open_trips(100_000).await.expect("open");
    assert!(
        open.iter().any(|t| t.id == trip.id),
        "a searching trip is open"
    );
}

pub async fn a_stale_write_is_refused_and_changes_nothing(store: &dyn TripStore) {
    let trip = record(account());
    store.create(&trip, &[]).await.expect("created");
    let driver = account();
    let offered = after(&trip, Command::Offer { driver });
    store
        .update(
            &offered,
            trip.trip.version,
            &[notice(&offered, "trip.offered", Some(driver))],
        )
        .await
        .expect("first write wins");
    // A second writer that read the same version loses, and its notice is not stored.
    let other = after(&trip, Command::Offer { driver: account() });
    let err = store
        .update(
            &other,
            trip.trip.version,
            &[notice(&other, "trip.offered", None)],
        )
        .await
        .expect_err("stale");
    assert!(matches!(err, StoreError::Stale), "{err:?}");
    assert_eq!(store.get(trip.id).await.expect("get"), Some(offered));
    let notices = store
        .notices_for(trip.trip.rider, 0, 100)
        .await
        .expect("notices");
    assert_eq!(notices.len(), 1, "only the winner's notice: {notices:?}");
}

pub async fn a_driver_holds_one_active_trip_and_a_rider_one_open_trip(store: &dyn TripStore) {
    let driver = account();
    let (first, second) = (record(account()), record(account()));
    for trip in [&first, &second] {
        store.create(trip, &[]).await.expect("created");
    }
    let assign = |trip: &TripRecord| {
        after(
            &after(trip, Command::Offer { driver }),
            Command::Accept { driver },
        )
    };
    let first_assigned = assign(&first);
    store
        .update(&first_assigned, first.trip.version, &[])
        .await
        .expect("the first accept wins");
    let err = store
        .update(&assign(&second), second.trip.version, &[])
        .await
        .expect_err("a second active trip");
    assert!(matches!(err, StoreError::DriverBusy), "{err:?}");
    assert!(store.busy_drivers().await.expect("busy").contains(&driver));
    // Once the first trip ends, the driver is free again.
    let done = [
        Command::Arrive { driver },
        Command::Start { driver },
        Command::Complete { driver },
    ]
    .into_iter()
    .fold(first_assigned.clone(), |t, c| after(&t, c));
    store
        .update(&done, first_assigned.trip.version, &[])
        .await
        .expect("completed");
    assert!(!store.busy_drivers().await.expect("busy").contains(&driver));
    store
        .update(&assign(&second), second.trip.version, &[])
        .await
        .expect("now free");

    // One open trip per rider; another once it ended.
    let rider = account();
    let open = record(rider);
    store.create(&open, &[]).await.expect("created");
    let err = store
        .create(&record(rider), &[])
        .await
        .expect_err("second open trip");
    assert!(matches!(err, StoreError::RiderBusy), "{err:?}");
    let cancelled = after(
        &open,
        Command::Cancel {
            by: domain::trip::Party::Rider,
            driver: None,
        },
    );
    store
        .update(&cancelled, open.trip.version, &[])
        .await
        .expect("cancelled");
    store
        .create(&record(rider), &[])
        .await
        .expect("a new trip after the end");
}

pub async fn a_quote_books_one_trip(store: &dyn TripStore) {
    let trip = record(account());
    store.create(&trip, &[]).await.expect("created");
    let mut again = record(account());
    again.quote_id = trip.quote_id;
    let err = store.create(&again, &[]).await.expect_err("same quote");
    assert!(matches!(err, StoreError::QuoteUsed), "{err:?}");
    assert!(
        store.get(again.id).await.expect("get").is_none(),
        "nothing half-written"
    );
}

pub async fn notices_are_per_account_in_order_after_an_id(store: &dyn TripStore) {
    let (rider, driver) = (account(), account());
    let trip = record(rider);
    store
        .create(&trip, &[notice(&trip, "trip.requested", None)])
        .await
        .expect("created");
    let offered = after(&trip, Command::Offer { driver });
    store
        .update(
            &offered,
            0,
            &[NewNotice {
                rider: None,
                ..notice(&offered, "trip.offered", Some(driver))
            }],
        )
        .await
        .expect("offered");
    let assigned = after(&offered, Command::Accept { driver });
    store
        .update(
            &assigned,
            1,
            &[notice(&assigned, "trip.driver_assigned", Some(driver))],
        )
        .await
        .expect("assigned");
    let kinds = |notices: &[crate::TripNotice]| -> Vec<&'static str> {
        notices.iter().map(|n| n.kind.as_str()).collect()
    };
    let for_rider = store.notices_for(rider, 0, 100).await.expect("rider");
    assert_eq!(
        kinds(&for_rider),
        ["trip.requested", "trip.driver_assigned"]
    );
    let for_driver = store.notices_for(driver, 0, 100).await.expect("driver");
    assert_eq!(kinds(&for_driver), ["trip.offered", "trip.driver_assigned"]);
    assert!(for_driver[0].id < for_driver[1].id);
    assert_eq!(
        for_driver[1].recipients,
        [driver],
        "only the caller is named"
    );
    let later = store
        .notices_for(driver, for_driver[0].id, 100)
        .await
        .expect("after");
    assert_eq!(kinds(&later), ["trip.driver_assigned"]);
    assert_eq!(later[0].trip.status, "driver_assigned");
    assert_eq!(store.notices_for(rider, 0, 1).await.expect("page").len(), 1);
    let newest = later.last().map_or(0, |n| n.id);
    assert!(
        store.notice_head().await.expect("head") >= newest,
        "the head is at least the newest notice"
    );
}

/// The claim two dispatchers rely on: a driver holds one offer at a time, whichever instance
/// (or whichever change of one batch) makes it; a declined offer frees the driver.
pub async fn a_driver_holds_one_offer_at_a_time(store: &dyn TripStore) {
    let driver = account();
    let (first, second, third) = (record(account()), record(account()), record(account()));
    for trip in [&first, &second, &third] {
        store.create(trip, &[]).await.expect("created");
    }
    let offer = |trip: &TripRecord| after(trip, Command::Offer { driver });
    let first_offered = offer(&first);
    store
        .update(&first_offered, first.trip.version, &[])
        .await
        .expect("the first offer");
    assert!(store.busy_drivers().await.expect("busy").contains(&driver));
    let err = store
        .update(&offer(&second), second.trip.version, &[])
        .await
        .expect_err("a second offer to the same driver");
    assert!(matches!(err, StoreError::DriverBusy), "{err:?}");

    let declined = after(&first_offered, Command::Decline { driver });
    store
        .update(&declined, first_offered.trip.version, &[])
        .await
        .expect("declined");
    assert!(!store.busy_drivers().await.expect("busy").contains(&driver));
    // Two offers to one driver in one batch: the first holds, the second is refused alone.
    let change = |trip: &TripRecord| super::Change {
        next: offer(trip),
        expected_version: trip.trip.version,
        notices: Vec::new(),
    };
    let outcomes = store
        .update_many(&[change(&second), change(&third)])
        .await
        .expect("batch");
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert!(
        matches!(outcomes[1], Err(StoreError::DriverBusy)),
        "{outcomes:?}"
    );
    assert_eq!(
        store.get(third.id).await.expect("get"),
        Some(third),
        "unchanged"
    );
}

pub async fn a_driver_status_is_kept_unless_an_older_one_arrives(store: &dyn TripStore) {
    let (driver, other) = (account(), account());
    let at = Timestamp::from_millis;
    store
        .set_driver_status(driver, Some(Package::Bike), at(10))
        .await
        .expect("online");
    store
        .set_driver_status(other, None, at(10))
        .await
        .expect("offline");
    let online = store.online_drivers().await.expect("online drivers");
    assert!(online.contains(&(driver, Package::Bike)));
    assert!(!online.iter().any(|(d, _)| *d == other));
    // A late, older event does not undo the newer one.
    store
        .set_driver_status(driver, None, at(5))
        .await
        .expect("stale");
    assert!(
        store
            .online_drivers()
            .await
            .expect("online")
            .contains(&(driver, Package::Bike))
    );
    store
        .set_driver_status(driver, Some(Package::Car), at(20))
        .await
        .expect("newer");
    store
        .set_driver_status(driver, None, at(30))
        .await
        .expect("offline");
    let online = store.online_drivers().await.expect("online drivers");
    assert!(!online.iter().any(|(d, _)| *d == driver));

    // Many at once: a driver named twice is recorded at its newest, whatever the order; an
    // older status than the stored one changes nothing.
    let (third, fourth) = (account(), account());
    store
        .set_driver_statuses(&[
            (third, Some(Package::Car), at(50)),
            (driver, Some(Package::Bike), at(25)),
            (third, None, at(40)),
            (fourth, Some(Package::Bike), at(50)),
            (other, Some(Package::Car), at(60)),
        ])
        .await
        .expect("a batch");
    let online = store.online_drivers().await.expect("online drivers");
    assert!(
        online.contains(&(third, Package::Car)),
        "its newest: {online:?}"
    );
    assert!(online.contains(&(fourth, Package::Bike)));
    assert!(online.contains(&(other, Package::Car)));
    assert!(
        !online.iter().any(|(d, _)| *d == driver),
        "older than its stored offline: {online:?}"
    );
    store.set_driver_statuses(&[]).await.expect("nothing to do");
}

fn ids(envelopes: &[platform::bus::Envelope]) -> Vec<domain::EventId> {
    envelopes.iter().map(|e| e.id).collect()
}

pub async fn a_notice_left_in_the_outbox_is_relayed_once(store: &dyn TripStore) {
    use domain::events::Event;
    use platform::bus::{Bus, InProcessBus, SubscribeOptions};

    let trip = record(account());
    let stored = store
        .create(&trip, &[notice(&trip, "trip.requested", None)])
        .await
        .expect("created");
    let pending = stored[0].outbox.clone();
    assert_eq!(pending.envelope.subject, crate::TripNotice::SUBJECT);
    let written: crate::TripNotice = pending.envelope.decode().expect("decodes");
    assert_eq!(written, stored[0].notice, "the outbox row is the notice");

    // Nobody published it (as if the publish after the commit failed): a relay does.
    let bus = InProcessBus::new();
    let mut sub = bus
        .subscribe(SubscribeOptions::ephemeral(crate::TripNotice::SUBJECT))
        .await
        .expect("subscribes");
    let outbox = store.outbox();
    let after_it = pending.envelope.occurred_at.plus_millis(1);
    outbox
        .relay_older(after_it, 100_000, &bus)
        .await
        .expect("relays");
    let wait = std::time::Duration::from_millis(300);
    let relayed = ids(&platform::bus::contract::drain(&mut sub, wait).await);
    assert_eq!(
        relayed
            .iter()
            .filter(|id| **id == pending.envelope.id)
            .count(),
        1,
        "relayed once, with the id it was written with"
    );
    // Relayed rows are gone: the next relay does not send it again.
    outbox
        .relay_older(after_it, 100_000, &bus)
        .await
        .expect("relays");
    assert!(
        !ids(&platform::bus::contract::drain(&mut sub, wait).await).contains(&pending.envelope.id)
    );

    // A row the fast path published is forgotten, and never relayed.
    let other = record(account());
    let stored = store
        .create(&other, &[notice(&other, "trip.requested", None)])
        .await
        .expect("created");
    let published = stored[0].outbox.clone();
    outbox.forget(&[published.seq]).await.expect("forgets");
    outbox
        .relay_older(published.envelope.occurred_at.plus_millis(1), 100_000, &bus)
        .await
        .expect("relays");
    assert!(
        !ids(&platform::bus::contract::drain(&mut sub, wait).await)
            .contains(&published.envelope.id)
    );

    // A stale write leaves nothing behind to relay.
    let before = store.get(other.id).await.expect("get").expect("exists");
    let next = after(
        &before,
        Command::Cancel {
            by: trip::Party::Rider,
            driver: None,
        },
    );
    let stale = store
        .update(
            &next,
            before.trip.version + 5,
            &[notice(&next, "trip.cancelled", None)],
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Stale)));
    outbox
        .relay_older(platform::clock::now().plus_millis(1_000), 100_000, &bus)
        .await
        .expect("relays");
    for envelope in platform::bus::contract::drain(&mut sub, wait).await {
        let relayed: crate::TripNotice = envelope.decode().expect("decodes");
        assert!(
            relayed.trip.id != other.id,
            "only rows of committed changes are relayed: {relayed:?}"
        );
    }
}

pub async fn a_batch_of_changes_commits_each_one_that_holds(store: &dyn TripStore) {
    let driver = account();
    let assign = |record: &TripRecord| {
        let offered = after(record, Command::Offer { driver });
        after(&offered, Command::Accept { driver })
    };
    let (first, second, third) = (record(account()), record(account()), record(account()));
    for trip in [&first, &second, &third] {
        store.create(trip, &[]).await.expect("created");
    }
    let first_assigned = assign(&first);
    let changes = vec![
        // Holds.
        super::Change {
            next: first_assigned.clone(),
            expected_version: first.trip.version,
            notices: vec![notice(
                &first_assigned,
                "trip.driver_assigned",
                Some(driver),
            )],
        },
        // Stale: refused alone.
        super::Change {
            next: assign(&second),
            expected_version: second.trip.version + 7,
            notices: vec![notice(&second, "trip.driver_assigned", Some(driver))],
        },
        // The driver is busy with the first now: refused alone, by the unique index.
        super::Change {
            next: assign(&third),
            expected_version: third.trip.version,
            notices: vec![notice(&third, "trip.driver_assigned", Some(driver))],
        },
    ];
    let outcomes = store.update_many(&changes).await.expect("the batch runs");
    assert_eq!(outcomes.len(), 3);
    let stored = outcomes[0].as_ref().expect("the first holds");
    assert_eq!(stored.len(), 1, "its notice is in the log and the outbox");
    assert!(
        matches!(outcomes[1], Err(StoreError::Stale)),
        "{:?}",
        outcomes[1]
    );
    assert!(
        matches!(outcomes[2], Err(StoreError::DriverBusy)),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(
        store.get(first.id).await.expect("get"),
        Some(first_assigned)
    );
    assert_eq!(store.get(second.id).await.expect("get"), Some(second));
    assert_eq!(store.get(third.id).await.expect("get"), Some(third));
    let log = store.notices_for(driver, 0, 100).await.expect("log");
    assert_eq!(log.len(), 1, "only the committed change's notice: {log:?}");

    // A batch whose changes all hold commits every one, each with its own notices (two, none,
    // one), in the log in order and each in the outbox as itself.
    let trips = [record(account()), record(account()), record(account())];
    let mut changes = Vec::new();
    for (trip, notices) in trips.iter().zip([2, 0, 1]) {
        store.create(trip, &[]).await.expect("created");
        let driver = account();
        let offered = after(trip, Command::Offer { driver });
        changes.push(super::Change {
            notices: (0..notices)
                .map(|_| notice(&offered, "trip.offered", Some(driver)))
                .collect(),
            next: offered,
            expected_version: trip.trip.version,
        });
    }
    let outcomes = store.update_many(&changes).await.expect("the batch runs");
    let mut last_id = 0;
    for (outcome, change) in outcomes.iter().zip(&changes) {
        let stored = outcome.as_ref().expect("every change holds");
        assert_eq!(stored.len(), change.notices.len(), "{outcome:?}");
        for (stored, new) in stored.iter().zip(&change.notices) {
            assert_eq!(
                stored.notice.trip.id, change.next.id,
                "its own trip's notice"
            );
            assert_eq!(stored.notice.kind, new.kind);
            assert!(stored.notice.id > last_id, "the log's order is the batch's");
            last_id = stored.notice.id;
            let relayed: crate::TripNotice =
                serde_json::from_slice(&stored.outbox.envelope.payload).expect("a notice");
            assert_eq!(relayed, stored.notice, "the outbox row carries its notice");
        }
        assert_eq!(
            store.get(change.next.id).await.expect("get").as_ref(),
            Some(&change.next)
        );
    }
    let seqs: Vec<i64> = outcomes
        .iter()
        .flat_map(|o| o.as_ref().expect("held").iter().map(|s| s.outbox.seq))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let rider = changes[0].next.trip.rider;
    let log = store.notices_for(rider, 0, 100).await.expect("log");
    assert_eq!(
        log.iter().map(|n| n.id).collect::<Vec<_>>(),
        outcomes[0]
            .as_ref()
            .expect("held")
            .iter()
            .map(|s| s.notice.id)
            .collect::<Vec<_>>(),
        "the rider's log holds the first change's two notices"
    );
}

/// The keys of bookings and actions live in the trip database, on either backend.
pub async fn an_idempotency_key_runs_once(store: &dyn TripStore) {
    use platform::idempotency::Claim;
    let keys = store.idempotency();
    let scope = format!("book:{}", account());
    let at = Timestamp::from_millis(1_000);
    let claim = |fingerprint: &'static str| {
        let (keys, scope) = (keys.clone(), scope.clone());
        async move {
            keys.claim(&scope, "k", fingerprint, at)
                .await
                .expect("claim")
        }
    };
    assert_eq!(claim("p").await, Claim::Run);
    assert_eq!(claim("p").await, Claim::InFlight);
    keys.finish(&scope, "k", "answer", at)
        .await
        .expect("finish");
    assert_eq!(claim("p").await, Claim::Replay("answer".into()));
    assert_eq!(claim("q").await, Claim::Mismatch);
}

/// One `#[tokio::test]` per clause for the store built by `$make` (an async block).
#[macro_export]
macro_rules! trip_store_contract {
    ($make:expr) => {
        $crate::trip_store_contract!(@tests $make;
            a_trip_round_trips_and_is_found_by_quote_and_account,
            a_stale_write_is_refused_and_changes_nothing,
            a_driver_holds_one_active_trip_and_a_rider_one_open_trip,
            a_quote_books_one_trip,
            notices_are_per_account_in_order_after_an_id,
            a_driver_holds_one_offer_at_a_time,
            a_driver_status_is_kept_unless_an_older_one_arrives,
            a_notice_left_in_the_outbox_is_relayed_once,
            a_batch_of_changes_commits_each_one_that_holds,
            an_idempotency_key_runs_once,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store = $make.await;
                $crate::store::contract::$name(&store).await;
            }
        )*
    };
}
