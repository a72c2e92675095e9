//! The trip service's rules end to end over a real store (SQLite and PostgreSQL): dispatch, the
//! lifecycle, who may do what, fees, and the races that real systems lose.

use std::sync::Arc;

use domain::events::{DriverLocated, DriverStatusChanged};
use domain::{AccountId, LatLng, Package, Role, Timestamp, TripId};
use platform::bus::{InProcessBus, SharedBus};
use pricing::{PricingService, QuoteBook, Router};
use trip::TripsConfig;
use trip::{Action, BookTrip, Caller, Dispatcher, TripApi, TripError, TripService, TripStore};

const KEY: &[u8] = b"test key, thirty-two bytes long!";

pub struct Harness {
    pub service: TripService,
    pub dispatcher: Dispatcher,
    pricing: PricingService,
    pub t0: Timestamp,
}

impl Harness {
    pub async fn new(store: Arc<dyn TripStore>) -> Self {
        Self::on(store, Arc::new(InProcessBus::new())).await
    }

    /// The service and dispatcher on `bus`.
    pub async fn on(store: Arc<dyn TripStore>, bus: SharedBus) -> Self {
        let config = TripsConfig::default();
        let service = TripService::new(
            store,
            bus.clone(),
            QuoteBook::new(KEY),
            config.policy(),
            Arc::new(crate::NoCharge),
        );
        let shards = Arc::new(matching::AllShards(config.shards));
        let dispatcher = Dispatcher::build(service.clone(), &bus, config, shards)
            .await
            .expect("subscribes");
        Self {
            service,
            dispatcher,
            pricing: PricingService::new(
                Router::straight_line(Default::default()),
                QuoteBook::new(KEY),
                300,
            ),
            t0: platform::clock::now(),
        }
    }

    pub fn at(&self, ms: i64) -> Timestamp {
        self.t0.plus_millis(ms)
    }

    pub fn rider(&self) -> Caller {
        Caller::new(AccountId::from_uuid(uuid::Uuid::now_v7()), Role::Rider, "")
    }

    /// A driver online for cars, `metres_north` of the standard pickup.
    pub fn driver(&self, metres_north: f64) -> Caller {
        let caller = Caller::new(AccountId::from_uuid(uuid::Uuid::now_v7()), Role::Driver, "");
        let fleet = self.dispatcher.fleet();
        let mut fleet = fleet.lock().expect("fleet");
        fleet.status(&DriverStatusChanged {
            driver: caller.account,
            online: true,
            package: Some(Package::Car),
            at: self.t0,
        });
        fleet.located(&DriverLocated {
            driver: caller.account,
            position: LatLng::new(23.78 + metres_north / 111_195.0, 90.40).expect("valid"),
            at: self.t0,
        });
        caller
    }

    pub async fn book(&self, rider: &Caller) -> TripId {
        let preview = self
            .pricing
            .preview_at(
                rider.account,
                LatLng::new(23.78, 90.40).expect("valid"),
                LatLng::new(23.75, 90.39).expect("valid"),
                self.t0,
            )
            .await
            .expect("preview");
        let trip = self
            .service
            .book_at(
                rider,
                BookTrip {
                    quote_id: preview.quote_id,
                    package: Package::Car,
                    payment_method: None,
                    idempotency_key: None,
                },
                self.t0,
            )
            .await
            .expect("booked");
        assert_eq!(trip.status, "searching");
        trip.id
    }

    pub async fn status(&self, caller: &Caller, id: TripId) -> domain::trip::TripStatus {
        self.service.get(caller, id).await.expect("visible").status
    }
}

/// Runs the service suite against the store `$make(test_name)` builds.
macro_rules! service_suite {
    ($make:path) => {
        service_suite!(@tests $make;
            the_whole_trip,
            a_declined_trip_goes_to_another_driver_never_back,
            who_may_do_what,
            cancellation_fees_follow_the_clock,
            concurrent_accepts_leave_one_active_trip_per_driver,
            a_cancelled_trip_never_becomes_assigned,
            a_restarted_dispatcher_knows_who_is_online,
        );
    };
    (@tests $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store = std::sync::Arc::new($make(stringify!($name)).await);
                crate::service::$name(crate::service::Harness::new(store).await).await;
            }
        )*
    };
}

mod on_sqlite {
    async fn store(_test: &str) -> trip::SqliteTripStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = platform::store::open_sqlite(&dir.keep().join("trip.db"))
            .await
            .expect("sqlite");
        trip::SqliteTripStore::new(pool).await.expect("migrates")
    }

    service_suite!(store);
}

mod on_postgres {
    service_suite!(crate::postgres::fresh_store);
}

pub async fn the_whole_trip(h: Harness) {
    let rider = h.rider();
    let id = h.book(&rider).await;
    let near = h.driver(300.0);
    let _far = h.driver(2_000.0);
    let round = h.dispatcher.round(h.at(1_000)).await.expect("round");
    assert!(round.offers >= 1, "{round:?}");
    let offered = h
        .service
        .get(&near, id)
        .await
        .expect("the nearest driver sees the offer");
    assert_eq!(offered.status, "offered");
    assert_eq!(offered.driver_id, Some(near.account));
    assert!(offered.offer_expires_at.is_some());
    for (action, status) in [
        (Action::Accept, "driver_assigned"),
        (Action::Arrive, "arrived"),
        (Action::Start, "in_progress"),
        (Action::Complete, "completed"),
    ] {
        let view = h
            .service
            .act_at(&near, id, action, h.at(2_000))
            .await
            .expect("legal");
        assert_eq!(view.status, status);
        assert_eq!(h.status(&rider, id).await, status, "the rider sees it too");
    }
    let kinds = |notices: Vec<trip::TripNotice>| -> Vec<&'static str> {
        notices.into_iter().map(|n| n.kind.as_str()).collect()
    };
    assert_eq!(
        kinds(h.service.notices(&rider, 0, 100).await.expect("rider log")),
        [
            "trip.requested",
            "trip.driver_assigned",
            "trip.driver_arrived",
            "trip.started",
            "trip.completed"
        ]
    );
    assert_eq!(
        kinds(h.service.notices(&near, 0, 100).await.expect("driver log")),
        [
            "trip.offered",
            "trip.driver_assigned",
            "trip.driver_arrived",
            "trip.started",
            "trip.completed"
        ]
    );
    let err = h
        .service
        .act_at(&near, id, Action::Complete, h.at(3_000))
        .await
        .expect_err("final");
    assert!(
        matches!(
            err,
            TripError::Illegal {
                state: "completed",
                command: "complete"
            }
        ),
        "{err:?}"
    );
    let mine = h.service.list(&rider, 10).await.expect("list");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, id);
}

pub async fn a_declined_trip_goes_to_another_driver_never_back(h: Harness) {
    let rider = h.rider();
    let id = h.book(&rider).await;
    let first = h.driver(100.0);
    h.dispatcher.round(h.at(1_000)).await.expect("round");
    assert_eq!(h.status(&first, id).await, "offered");
    h.service
        .act_at(&first, id, Action::Decline, h.at(1_500))
        .await
        .expect("declined");
    // Alone in town, the decliner is not offered the trip again.
    h.dispatcher.round(h.at(2_000)).await.expect("round");
    assert_eq!(h.status(&rider, id).await, "searching");
    // A second driver is; the first, who declined, no longer sees who holds it.
    let second = h.driver(1_000.0);
    h.dispatcher.round(h.at(3_000)).await.expect("round");
    let seen_by_first = h.service.get(&first, id).await.expect("still readable");
    assert_eq!(
        (seen_by_first.status.as_str(), seen_by_first.driver_id),
        ("offered", None)
    );
    // Letting the offer lapse excludes the second driver too.
    let view = h.service.get(&second, id).await.expect("offered");
    assert_eq!(view.driver_id, Some(second.account));
    let late = h
        .service
        .act_at(&second, id, Action::Accept, h.at(3_000 + 15_000))
        .await;
    assert!(
        matches!(&late, Err(TripError::Conflict(m)) if m.contains("lapsed")),
        "an offer past its time cannot be accepted: {late:?}"
    );
    let lapse = h.at(3_000 + 15_000);
    let round = h.dispatcher.round(lapse).await.expect("round");
    assert_eq!(round.expired_offers, 1, "{round:?}");
    let err = h
        .service
        .act_at(&second, id, Action::Accept, lapse)
        .await
        .expect_err("lapsed");
    assert!(
        matches!(
            err,
            TripError::Illegal {
                state: "searching",
                ..
            }
        ),
        "{err:?}"
    );
    h.dispatcher.round(h.at(20_000)).await.expect("round");
    assert_eq!(h.status(&rider, id).await, "searching");
    // And after the search time, nobody was found.
    let round = h.dispatcher.round(h.at(120_000)).await.expect("round");
    assert_eq!(round.expired_searches, 1);
    assert_eq!(h.status(&rider, id).await, "no_drivers_found");
}

pub async fn who_may_do_what(h: Harness) {
    let rider = h.rider();
    let id = h.book(&rider).await;
    let driver = h.driver(100.0);
    let stranger_driver = Caller::new(AccountId::from_uuid(uuid::Uuid::now_v7()), Role::Driver, "");
    let other_rider = h.rider();
    h.dispatcher.round(h.at(1_000)).await.expect("round");

    // A rider cannot call driver endpoints: 403.
    let err = h
        .service
        .act_at(&rider, id, Action::Accept, h.at(1_100))
        .await;
    assert!(matches!(err, Err(TripError::Forbidden(_))), "{err:?}");
    // Someone else's trip does not exist for them: 404.
    assert!(matches!(
        h.service.get(&other_rider, id).await,
        Err(TripError::NotFound(_))
    ));
    assert!(matches!(
        h.service.get(&stranger_driver, id).await,
        Err(TripError::NotFound(_))
    ));
    let err = h
        .service
        .act_at(&other_rider, id, Action::Cancel, h.at(1_100))
        .await;
    assert!(matches!(err, Err(TripError::NotFound(_))), "{err:?}");
    let err = h
        .service
        .act_at(&stranger_driver, id, Action::Accept, h.at(1_100))
        .await;
    assert!(matches!(err, Err(TripError::NotFound(_))), "{err:?}");
    assert!(
        h.service
            .list(&other_rider, 10)
            .await
            .expect("list")
            .is_empty()
    );
    // A driver cannot book.
    let err = h
        .service
        .book_at(
            &driver,
            BookTrip {
                quote_id: "x".into(),
                package: Package::Car,
                payment_method: None,
                idempotency_key: None,
            },
            h.at(0),
        )
        .await;
    assert!(matches!(err, Err(TripError::Forbidden(_))), "{err:?}");
    // A quote is bound to its rider, and a forged one is refused.
    let err = h
        .service
        .book_at(
            &other_rider,
            BookTrip {
                quote_id: "not.a.quote".into(),
                package: Package::Car,
                payment_method: None,
                idempotency_key: None,
            },
            h.at(0),
        )
        .await;
    assert!(
        matches!(
            err,
            Err(TripError::InvalidField {
                field: "quote_id",
                ..
            })
        ),
        "{err:?}"
    );
    // The offered driver acts; nobody else did anything.
    assert_eq!(h.status(&driver, id).await, "offered");
}

pub async fn cancellation_fees_follow_the_clock(h: Harness) {
    let policy = *h.service.policy();
    let fee = |view: &trip::TripView| view.cancellation_fee.as_ref().map(|m| m.amount);

    // Within the free window: free.
    let (rider, driver, id) = assigned(&h).await;
    let view = h
        .service
        .act_at(&rider, id, Action::Cancel, h.at(119_000))
        .await
        .expect("ok");
    assert_eq!((view.status.as_str(), fee(&view)), ("cancelled", Some(0)));
    h.service
        .act_at(&driver, id, Action::Cancel, h.at(119_000))
        .await
        .expect_err("ended");

    // After it: the late fee.
    let (rider, driver, id) = assigned(&h).await;
    let view = h
        .service
        .act_at(&rider, id, Action::Cancel, h.at(121_000))
        .await
        .expect("ok");
    assert_eq!(fee(&view), Some(policy.late_cancel_fee));
    let _ = driver;

    // The driver cancels before the no-show wait: the trip searches again, without them.
    let (rider, driver, id) = assigned(&h).await;
    h.service
        .act_at(&driver, id, Action::Arrive, h.at(1_000))
        .await
        .expect("arrived");
    let view = h
        .service
        .act_at(&driver, id, Action::Cancel, h.at(60_000))
        .await
        .expect("ok");
    assert_eq!(view.status, "searching");
    assert_eq!(h.status(&rider, id).await, "searching");
    h.service
        .act_at(&rider, id, Action::Cancel, h.at(61_000))
        .await
        .expect("rider cancels");

    // After the rider kept the driver waiting 5 minutes: the no-show fee.
    let (rider, driver, id) = assigned(&h).await;
    h.service
        .act_at(&driver, id, Action::Arrive, h.at(1_000))
        .await
        .expect("arrived");
    let view = h
        .service
        .act_at(&driver, id, Action::Cancel, h.at(1_000 + 300_000))
        .await
        .expect("no-show");
    assert_eq!(
        (view.status.as_str(), fee(&view)),
        ("cancelled", Some(policy.no_show_fee))
    );
    assert_eq!(h.status(&rider, id).await, "cancelled");
}

/// Two trips offered to one driver (as two dispatchers racing could), and each accept sent ten
/// times at once: exactly one trip is the driver's, every other accept is refused.
pub async fn concurrent_accepts_leave_one_active_trip_per_driver(h: Harness) {
    for _ in 0..3 {
        let driver = h.driver(10.0);
        let riders = [h.rider(), h.rider()];
        let trips = [h.book(&riders[0]).await, h.book(&riders[1]).await];
        offer(&h, trips[0], driver.account).await;
        // The claim: a driver holding an offer is not offered another trip.
        let store = h.service.store();
        let second = store.get(trips[1]).await.expect("get").expect("exists");
        let next = trip::store::contract::after(
            &second,
            domain::trip::Command::Offer {
                driver: driver.account,
            },
        );
        let refused = store.update(&next, second.trip.version, &[]).await;
        assert!(
            matches!(refused, Err(trip::store::StoreError::DriverBusy)),
            "{refused:?}"
        );
        let service = Arc::new(h.service.clone());
        let mut accepts = Vec::new();
        for i in 0..20 {
            let (service, driver) = (service.clone(), driver.clone());
            let id = trips[i % 2];
            accepts.push(tokio::spawn(async move {
                service.act(&driver, id, Action::Accept).await.map(|v| v.id)
            }));
        }
        let mut won = std::collections::BTreeSet::new();
        for accept in accepts {
            match accept.await.expect("joined") {
                Ok(id) => {
                    won.insert(id);
                }
                // The trip not offered to them is not theirs to see.
                Err(
                    TripError::Conflict(_) | TripError::Illegal { .. } | TripError::NotFound(_),
                ) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(
            won,
            std::collections::BTreeSet::from([trips[0]]),
            "the driver holds exactly the trip offered"
        );
        let active: Vec<_> = h
            .service
            .list(&driver, 10)
            .await
            .expect("list")
            .into_iter()
            .filter(|t| t.status == "driver_assigned")
            .collect();
        assert_eq!(active.len(), 1);
        // Free the riders for the next round.
        for (rider, id) in riders.iter().zip(trips) {
            let _ = h.service.act(rider, id, Action::Cancel).await;
        }
    }
}

/// Offers trip `id` to `driver` through the dispatcher's own path (a round with only them near).
async fn offer(h: &Harness, id: TripId, driver: AccountId) {
    let store = h.service.store();
    let record = store.get(id).await.expect("get").expect("exists");
    let next = trip::store::contract::after(&record, domain::trip::Command::Offer { driver });
    store
        .update(&next, record.trip.version, &[])
        .await
        .expect("offered");
}

/// The rider cancels while the driver accepts, many times over: whatever the order, the trip
/// ends cancelled, and an accept that "won" happened before the cancel.
pub async fn a_cancelled_trip_never_becomes_assigned(h: Harness) {
    for _ in 0..10 {
        let rider = h.rider();
        let driver = h.driver(10.0);
        let id = h.book(&rider).await;
        offer(&h, id, driver.account).await;
        let service = Arc::new(h.service.clone());
        let (s1, s2) = (service.clone(), service.clone());
        let (d, r) = (driver.clone(), rider.clone());
        let accept = tokio::spawn(async move { s1.act(&d, id, Action::Accept).await });
        let cancel = tokio::spawn(async move { s2.act(&r, id, Action::Cancel).await });
        let (accept, cancel) = (accept.await.expect("joined"), cancel.await.expect("joined"));
        let cancelled = cancel.expect("a rider may always cancel an open trip");
        assert_eq!(cancelled.status, "cancelled");
        assert_eq!(h.status(&rider, id).await, "cancelled");
        if let Ok(accepted) = accept {
            assert!(
                accepted.version < cancelled.version,
                "the accept came first: {accepted:?} then {cancelled:?}"
            );
        }
        let log: Vec<trip::NoticeKind> = h
            .service
            .notices(&rider, 0, 100)
            .await
            .expect("log")
            .into_iter()
            .map(|n| n.kind)
            .collect();
        assert_eq!(log.last(), Some(&trip::NoticeKind::Cancelled), "{log:?}");
    }
}

/// A trip booked by a new rider and accepted (at t0) by a new driver 50 m away.
async fn assigned(h: &Harness) -> (Caller, Caller, TripId) {
    let rider = h.rider();
    let id = h.book(&rider).await;
    h.driver(50.0);
    h.dispatcher.round(h.at(0)).await.expect("round");
    // Drivers of earlier scenarios are free again and as near: take whoever got the offer (the
    // rider is not told who that is).
    let view = h.service.get(&rider, id).await.expect("visible");
    assert_eq!((view.status.as_str(), view.driver_id), ("offered", None));
    let record = h
        .service
        .store()
        .get(id)
        .await
        .expect("get")
        .expect("exists");
    let offered_to = record.trip.state.driver().expect("offered");
    let driver = Caller::new(offered_to, Role::Driver, "");
    h.service
        .act_at(&driver, id, Action::Accept, h.at(0))
        .await
        .expect("accepted");
    (rider, driver, id)
}

/// Online status outlives the process: a new dispatcher loads it from the store, and the
/// driver's next position makes them available again.
pub async fn a_restarted_dispatcher_knows_who_is_online(h: Harness) {
    let driver = AccountId::from_uuid(uuid::Uuid::now_v7());
    h.service
        .store()
        .set_driver_status(driver, Some(Package::Car), h.t0)
        .await
        .expect("recorded");
    let bus: SharedBus = Arc::new(InProcessBus::new());
    let config = TripsConfig::default();
    let shards = Arc::new(matching::AllShards(config.shards));
    let restarted = Dispatcher::build(h.service.clone(), &bus, config, shards)
        .await
        .expect("builds");
    let fleet = restarted.fleet();
    assert_eq!(fleet.lock().expect("fleet").online(), 1);
    let id = h.book(&h.rider()).await;
    fleet.lock().expect("fleet").located(&DriverLocated {
        driver,
        position: LatLng::new(23.7801, 90.40).expect("valid"),
        at: h.t0,
    });
    let round = restarted.round(h.at(1_000)).await.expect("round");
    assert_eq!(round.offers, 1, "{round:?}");
    let view = h
        .service
        .get(&Caller::new(driver, Role::Driver, ""), id)
        .await
        .expect("offered to the remembered driver");
    assert_eq!(view.status, "offered");
}
